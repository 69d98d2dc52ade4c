//! `tessera-bench restart`: how long Tessera takes to reopen a store of many small objects,
//! after a clean stop (SIGTERM: drain + checkpoint) and after `kill -9` (recovery replays the log
//! tail after the last checkpoint). DESIGN.md's target: well under a second for 1 M objects.
//!
//! Sequence (every step bounded; any error ends the run with a message):
//! 1. start `tessera serve` on a fresh data directory, wait for `GET /healthz` → 200;
//! 2. preload `--objects` objects (PUT, closed loop over many connections);
//! 3. SIGTERM, wait for exit (timed); restart and time spawn → first `/healthz` 200;
//! 4. verify: GET a random sample of the stored objects, every byte checked;
//! 5. preload `--extra-objects` more (so the log has a tail after the last checkpoint);
//! 6. `kill -9`; restart and time spawn → `/healthz` 200; verify a sample of all objects.
//!
//! "Reopen" is the time from spawn until the server is ready for every key: the later of the
//! first `/healthz` 200 and the `tessera listening on` line (see `Plan::start`). Before each
//! restart the harness waits until the old port can be bound again (reported separately).

use crate::args::Args;
use crate::cli::load_config;
use crate::loadgen::{run_load, LoadConfig, Mode, OperationSource};
use crate::peers::{free_port, spawn_tessera, wait_port_free, ServerProcess};
use crate::protocol::PathScheme;
use crate::report::{json_string, problems_banner};
use crate::runner::{Prepared, Workload};
use crate::stats::RunStats;
use crate::workload::{OperationMix, Popularity};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const USAGE: &str = "\
tessera-bench restart --tessera-bin target/release/tessera [options]

  --objects 1000000  --sizes 256B  --extra-objects N (objects/10)
  --shards N  --max-size 4GiB  --threads N  --connections 64  --no-pin
  --verify-sample 10000    objects read back (every byte checked) after each restart
  --out DIR                (default bench/results/restart-<timestamp>; the store lives in DIR/data)";

const FLAGS: &[&str] = &[
    "tessera-bin",
    "objects",
    "sizes",
    "extra-objects",
    "shards",
    "max-size",
    "threads",
    "connections",
    "verify-sample",
    "out",
    "timeout",
    "seed",
    "driver",
];

/// What `tessera serve` prints on stdout once every shard is open.
const READY_LINE: &str = "tessera listening on";

struct Step {
    name: &'static str,
    value: String,
}

/// Everything a restart run needs, validated from the command line.
struct Plan {
    bin: String,
    objects: usize,
    extra: usize,
    sample: u64,
    shards: usize,
    max_size: String,
    out: PathBuf,
    data: PathBuf,
    port: u16,
    load: LoadConfig,
}

impl Plan {
    fn from_args(args: &Args) -> Result<Plan, String> {
        let objects: usize = args.number("objects", 1_000_000)?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let default_out = format!("bench/results/restart-{}", crate::compare::timestamp());
        let out = PathBuf::from(args.text("out", &default_out));
        let port = free_port()?;
        Ok(Plan {
            bin: args
                .get("tessera-bin")
                .ok_or("--tessera-bin PATH is required")?
                .to_string(),
            objects,
            extra: args.number("extra-objects", (objects / 10).max(1))?,
            sample: args.number("verify-sample", 10_000)?,
            shards: args.number("shards", cores)?,
            max_size: args.text("max-size", "4GiB"),
            data: fresh_data_dir(&out.join("data"))?,
            out,
            port,
            load: load_config(args, std::net::SocketAddr::from(([127, 0, 0, 1], port)))?,
        })
    }

    /// Spawns `tessera serve` and returns it with the time from spawn until it is ready: the
    /// later of the first `/healthz` 200 and its `tessera listening on` line (printed once every
    /// shard is open; `/healthz` alone can answer from an executor whose own shards are open
    /// while another executor is still opening its shards). The listening sockets exist before
    /// the shards are open, so the first health check waits in the accept backlog until an
    /// executor accepts it, rather than being refused and retried.
    fn start(&self, phase: &str) -> Result<(ServerProcess, Duration), String> {
        let log = self.out.join(format!("tessera-{phase}.log"));
        let spawned = Instant::now();
        let mut process = spawn_tessera(
            &self.bin,
            self.port,
            &self.data,
            &self.max_size,
            self.shards,
            None,
            &log,
        )?;
        process.wait_healthy()?;
        let healthy = spawned.elapsed();
        process.wait_log_line(READY_LINE)?;
        let ready = spawned.elapsed();
        eprintln!(
            "{phase}: /healthz 200 after {}, `{READY_LINE}` after {}",
            ms(healthy),
            ms(ready)
        );
        Ok((process, ready))
    }
}

/// Creates `data` (which must not hold anything yet) and returns its absolute path.
fn fresh_data_dir(data: &Path) -> Result<PathBuf, String> {
    if data.exists() && std::fs::read_dir(data).map_or(true, |mut d| d.next().is_some()) {
        return Err(format!(
            "{} exists and is not empty; the restart benchmark needs a fresh store",
            data.display()
        ));
    }
    std::fs::create_dir_all(data).map_err(|e| format!("creating {}: {e}", data.display()))?;
    data.canonicalize()
        .map_err(|e| format!("resolving {}: {e}", data.display()))
}

pub fn restart_command(arguments: &[String]) -> Result<i32, String> {
    let args = Args::parse(arguments, FLAGS, &["no-pin"])?;
    let plan = Plan::from_args(&args)?;
    let workload = Workload {
        name: "restart".into(),
        scheme: PathScheme::BazelCas {
            prefix: String::new(),
        },
        grpc: None,
        objects: plan.objects + plan.extra,
        sizes_text: args.text("sizes", "256B"),
        popularity_text: "uniform".into(),
        write_ratio: 0.0,
        miss_ratio: 0.0,
        seed: args.number("seed", 1)?,
    };
    let started = Instant::now();
    let prepared = workload.prepare()?;
    eprintln!(
        "key space of {} objects generated in {:.1} s",
        workload.objects,
        started.elapsed().as_secs_f64()
    );

    let (steps, reopen_clean, reopen_killed) = run_sequence(&plan, &prepared)?;
    let report = render(
        &steps,
        plan.objects,
        plan.extra,
        &workload.sizes_text,
        plan.shards,
    );
    println!("{report}");
    write_json(
        &plan.out,
        &steps,
        plan.objects,
        plan.extra,
        reopen_clean,
        reopen_killed,
    )?;
    std::fs::write(plan.out.join("restart.txt"), &report).map_err(|e| e.to_string())?;
    std::fs::remove_dir_all(&plan.data)
        .map_err(|e| format!("removing {}: {e}", plan.data.display()))?;
    Ok(0)
}

/// Steps 1–6 of the module documentation; returns the steps and the two reopen times.
fn run_sequence(
    plan: &Plan,
    prepared: &Prepared,
) -> Result<(Vec<Step>, Duration, Duration), String> {
    let (objects, extra, load) = (plan.objects, plan.extra, &plan.load);
    let mut steps = Vec::new();
    let (mut server, first_start) = plan.start("initial")?;
    steps.push(Step {
        name: "start on an empty store",
        value: ms(first_start),
    });
    let stats = preload_range(prepared, load, 0, objects)?;
    let rate = stats.requests_per_sec();
    let value = format!(
        "{} objects in {:.1} s ({rate:.0} PUT/s)",
        stats.requests_ok,
        stats.elapsed.as_secs_f64()
    );
    steps.push(Step {
        name: "preload",
        value,
    });
    let (stop_time, clean_exit) = server.stop(libc::SIGTERM)?;
    if !clean_exit {
        return Err(format!(
            "tessera exited unsuccessfully on SIGTERM (log: {})",
            server.log.display()
        ));
    }
    steps.push(Step {
        name: "clean stop (SIGTERM → exit)",
        value: ms(stop_time),
    });
    let released = wait_port_free(server.address)?;
    steps.push(Step {
        name: "port released after SIGTERM",
        value: ms(released),
    });
    let (mut server, reopen_clean) = plan.start("after-sigterm")?;
    steps.push(Step {
        name: "reopen after clean stop",
        value: ms(reopen_clean),
    });
    steps.push(Step {
        name: "verify after clean stop",
        value: verify(prepared, load, objects, plan.sample)?,
    });

    let stats = preload_range(prepared, load, objects, objects + extra)?;
    let value = format!(
        "{} objects in {:.1} s",
        stats.requests_ok,
        stats.elapsed.as_secs_f64()
    );
    steps.push(Step {
        name: "preload more",
        value,
    });
    server.stop(libc::SIGKILL)?;
    // The killed server's listening sockets outlive it briefly (io_uring teardown is
    // asynchronous); Tessera would refuse the port until then. Not part of the reopen time.
    let released = wait_port_free(server.address)?;
    steps.push(Step {
        name: "port released after kill -9",
        value: ms(released),
    });
    let (mut server, reopen_killed) = plan.start("after-kill-9")?;
    steps.push(Step {
        name: "reopen after kill -9",
        value: ms(reopen_killed),
    });
    steps.push(Step {
        name: "verify after kill -9",
        value: verify(prepared, load, objects + extra, plan.sample)?,
    });
    server.stop(libc::SIGTERM)?;
    Ok((steps, reopen_clean, reopen_killed))
}

fn ms(duration: Duration) -> String {
    format!("{:.1} ms", duration.as_secs_f64() * 1e3)
}

fn preload_range(
    prepared: &Prepared,
    load: &LoadConfig,
    start: usize,
    end: usize,
) -> Result<RunStats, String> {
    let config = LoadConfig {
        mode: Mode::Closed,
        duration: Duration::from_secs(crate::limits::DURATION_SECS_MAX),
        requests: None,
        ..load.clone()
    };
    let stats = run_load(
        &config,
        &prepared.protocol,
        &OperationSource::put_range(start, end),
    );
    match problems_banner(&stats) {
        Some(banner) => Err(format!(
            "preload of objects {start}..{end} failed:\n{banner}"
        )),
        None => Ok(stats),
    }
}

/// Reads `sample` random objects among the first `stored` and checks every byte.
fn verify(
    prepared: &Prepared,
    load: &LoadConfig,
    stored: usize,
    sample: u64,
) -> Result<String, String> {
    let mix = OperationMix {
        write_ratio: 0.0,
        miss_ratio: 0.0,
        popularity: Popularity::Uniform,
        objects: stored,
    };
    let config = LoadConfig {
        mode: Mode::Closed,
        duration: Duration::from_secs(600),
        requests: Some(sample),
        ..load.clone()
    };
    let stats = run_load(
        &config,
        &prepared.protocol,
        &OperationSource::Mix(Arc::new(mix)),
    );
    match problems_banner(&stats) {
        Some(banner) => Err(format!("objects missing or wrong after restart:\n{banner}")),
        None => Ok(format!(
            "{} of {stored} objects read back byte-exact",
            stats.requests_ok
        )),
    }
}

fn render(steps: &[Step], objects: usize, extra: usize, sizes: &str, shards: usize) -> String {
    let mut out =
        format!("restart benchmark: {objects} + {extra} objects of {sizes}, {shards} shards\n");
    for step in steps {
        let _ = writeln!(out, "  {:<30} {}", step.name, step.value);
    }
    out
}

fn write_json(
    out: &Path,
    steps: &[Step],
    objects: usize,
    extra: usize,
    clean: Duration,
    killed: Duration,
) -> Result<(), String> {
    let mut json = format!(
        "{{\n  \"objects\": {objects},\n  \"extra_objects\": {extra},\n  \"reopen_after_clean_stop_ms\": {},\n  \"reopen_after_kill_9_ms\": {},\n  \"steps\": {{",
        clean.as_secs_f64() * 1e3,
        killed.as_secs_f64() * 1e3
    );
    let fields: Vec<String> = steps
        .iter()
        .map(|s| format!("{}: {}", json_string(s.name), json_string(&s.value)))
        .collect();
    json.push_str(&fields.join(", "));
    json.push_str("}\n}\n");
    std::fs::write(out.join("restart.json"), json).map_err(|e| e.to_string())
}
