//! `tessera-bench compare`: Tessera against a peer on loopback — nginx (default) or npm
//! `turborepo-remote-cache` (`--peer turbo-remote-cache`) — identical workloads run against each
//! in alternation within one invocation, then a side-by-side table with Tessera/peer ratios.
//!
//! For each workload (default: GET and PUT of 4 KiB and 1 MiB objects; with `--protocol bazel`,
//! the default against nginx, GET `/cas/<sha256>`; with `--protocol gradle|nx|turbo|ccache` that
//! client's requests, [`PathScheme`]):
//! 1. preload the key space into every server (reads only; Bazel uploads go to `/ac/<sha256>`,
//!    which both servers store on every PUT, where Tessera would deduplicate a repeated `/cas/`
//!    PUT; Gradle, Turborepo and ccache uploads are stored every time under any key, Nx uploads
//!    go to fresh keys), then `--warmup` of the same load on each server;
//! 2. closed loop, `--rounds` times, servers alternating (order flipped each round): the maximum
//!    throughput at `--connections`, reported as each server's median over the rounds and the
//!    median of the per-round Tessera/nginx ratios;
//! 3. open loop at a fixed rate below either server's maximum (`--rate`, or `--rate-fraction` of
//!    the smaller maximum just measured), alternating the same way: p50/p99/p99.9.
//!
//! Results go to `--out` (JSON + `.hgrm` per server and phase, an SVG overlay per workload, and
//! `compare.md` with the table). `bench/compare.sh` installs nginx, builds, and calls this.

use crate::args::Args;
use crate::cli::load_config;
use crate::loadgen::{LoadConfig, Mode};
use crate::peers::{
    count_cpus, cpu_time_ns, free_port, spawn_tessera, start_nginx, start_turbo_remote_cache,
    ServerProcess, TURBO_REMOTE_CACHE_JS_DEFAULT,
};
use crate::protocol::{PathScheme, SchemeOptions};
use crate::report::{format_ms, problems_banner};
use crate::runner::{
    file_stem, measure, preload, run_info, write_outputs, write_plot, Prepared, Workload,
};
use crate::stats::RunStats;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

pub const USAGE: &str = "\
tessera-bench compare --tessera-bin target/release/tessera | --no-tessera  [options]

  --peer nginx | turbo-remote-cache   the server Tessera is compared with (default nginx)
  --protocol bazel|gradle|nx|turbo|ccache   request shapes (default: bazel; turbo with that peer)
  --team bench  --token t         turbo's team, the Bearer token of nx/turbo (and the peer's TURBO_TOKEN)
  --nginx-bin /usr/sbin/nginx     --out bench/results/<timestamp>
  --node-bin node  --turbo-cache-js /opt/tessera-tests/node-clients/node_modules/turborepo-remote-cache/dist/cli.js
  --workloads get-4k,put-4k,get-1m,put-1m
  --threads N  --connections N (64)  --duration 10s (per run)  --rounds 2  --no-pin
  --warmup 0s                     the same load on each server before a workload's measured rounds
  --rate R | --rate-fraction 0.5  fixed rate of the latency phase (default: half the smaller maximum)
  --server-cpus LIST              run every server under `taskset -c LIST` (e.g. 1; the load
                                  threads pin to CPUs 0.. in turn, so pair with --threads 1)
  --shards N  --max-size 4GiB     passed to `tessera serve` (shards default: server CPUs)
  --nginx-workers N               (default: server CPUs)";

const FLAGS: &[&str] = &[
    "tessera-bin",
    "peer",
    "protocol",
    "team",
    "token",
    "node-bin",
    "turbo-cache-js",
    "server-cpus",
    "warmup",
    "nginx-bin",
    "out",
    "workloads",
    "threads",
    "connections",
    "duration",
    "rounds",
    "rate",
    "rate-fraction",
    "shards",
    "max-size",
    "nginx-workers",
    "timeout",
    "seed",
    "driver",
];

/// The named workloads: (name, objects, size, write ratio). Object counts bound the key space:
/// GET workloads preload every object; PUT workloads overwrite within it, so nginx's disk use is
/// bounded by objects × size (400 MB for 4 KiB, 2 GB for 1 MiB).
pub const WORKLOADS: &[(&str, usize, &str, f64)] = &[
    ("get-4k", 10_000, "4KiB", 0.0),
    ("put-4k", 100_000, "4KiB", 1.0),
    ("get-1m", 200, "1MiB", 0.0),
    ("put-1m", 2_000, "1MiB", 1.0),
];

/// One server's closed-loop run in one round.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Round {
    requests_per_sec: f64,
    megabytes_per_sec: f64,
    /// The server's CPU time (every thread, and its child processes') per request, µs; NaN
    /// when /proc could not be read. Other load on the machine takes CPU time from a server,
    /// so its req/s drops, but changes its CPU work per request far less.
    cpu_us_per_request: f64,
}

/// Picks one metric from a closed-loop round.
type RoundPick = fn(&Round) -> f64;

/// Reads one metric from a server's (closed-loop, open-loop) stats.
type Metric = Box<dyn Fn(&RunStats, &RunStats) -> f64>;

struct Server {
    process: ServerProcess,
}

/// Per workload and server: closed-loop and open-loop stats merged over rounds, and each
/// closed-loop [`Round`] in round order (the table reports their medians).
struct Measured {
    workload: String,
    rate: u64,
    closed: Vec<RunStats>,
    open: Vec<RunStats>,
    closed_rounds: Vec<Vec<Round>>,
}

pub fn compare_command(arguments: &[String]) -> Result<i32, String> {
    let args = Args::parse(arguments, FLAGS, &["no-tessera", "no-pin"])?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let out = PathBuf::from(args.text("out", &format!("bench/results/{}", timestamp())));
    std::fs::create_dir_all(&out).map_err(|e| format!("creating {}: {e}", out.display()))?;
    // nginx resolves relative paths against its prefix, so every path handed to a server is absolute.
    let out = out
        .canonicalize()
        .map_err(|e| format!("resolving {}: {e}", out.display()))?;
    let rounds: usize = args.number("rounds", 2)?;
    if rounds == 0 {
        return Err("--rounds must be at least 1".into());
    }
    let peer = Peer::parse(&args.text("peer", "nginx"))?;
    let protocol = args.text("protocol", peer.default_protocol());
    if peer == Peer::TurboRemoteCache && protocol != "turbo" {
        return Err(format!(
            "--peer turbo-remote-cache speaks only the Turborepo API, not --protocol {protocol}"
        ));
    }
    if peer == Peer::Nginx && protocol == "nx" {
        // nginx's WebDAV answers a new file with 201, which Nx counts as a failed upload.
        return Err("--protocol nx needs an Nx cache server: nginx answers uploads with 201, and Nx accepts only 200".into());
    }
    let scheme = PathScheme::parse(
        &protocol,
        &SchemeOptions {
            team: &args.text("team", SchemeOptions::default().team),
            token: &args.text("token", SchemeOptions::default().token),
            ..SchemeOptions::default()
        },
    )?;
    let workloads = select_workloads(
        &args.text("workloads", "get-4k,put-4k,get-1m,put-1m"),
        args.number("seed", 1)?,
        &scheme,
    )?;
    let server_cpus = match args.get("server-cpus") {
        Some(list) => Some((list.to_string(), count_cpus(list)?)),
        None => None,
    };
    let servers = start_servers(&args, &out, peer, server_cpus.as_ref(), cores)?;
    let names: Vec<String> = servers.iter().map(|s| s.process.name.clone()).collect();
    let mut results = Vec::new();
    for workload in &workloads {
        eprintln!("== {}: generating key space", workload.name);
        let prepared = workload.prepare()?;
        let base = load_config(&args, servers[0].process.address)?;
        results.push(run_workload(
            &args, &out, &servers, workload, &prepared, &base, rounds,
        )?);
    }
    let table = comparison_table(
        &names,
        &results,
        &load_config(&args, servers[0].process.address)?,
        rounds,
    );
    println!("\n{table}");
    let markdown = format!(
        "# tessera-bench compare — {}\n\nCommand: `tessera-bench compare {}`\n\n```\n{table}```\n",
        timestamp(),
        arguments.join(" ")
    );
    std::fs::write(out.join("compare.md"), markdown).map_err(|e| e.to_string())?;
    eprintln!("results in {}", out.display());
    let failed = results
        .iter()
        .flat_map(|m| m.closed.iter().chain(&m.open))
        .any(|s| s.errors_total() > 0);
    Ok(i32::from(failed))
}

/// The server Tessera is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    Nginx,
    TurboRemoteCache,
}

impl Peer {
    pub fn parse(name: &str) -> Result<Peer, String> {
        match name {
            "nginx" => Ok(Peer::Nginx),
            "turbo-remote-cache" | "turborepo-remote-cache" => Ok(Peer::TurboRemoteCache),
            other => Err(format!(
                "unknown --peer `{other}` (nginx, turbo-remote-cache)"
            )),
        }
    }

    fn default_protocol(self) -> &'static str {
        match self {
            Peer::Nginx => "bazel",
            Peer::TurboRemoteCache => "turbo",
        }
    }
}

fn select_workloads(list: &str, seed: u64, scheme: &PathScheme) -> Result<Vec<Workload>, String> {
    list.split(',')
        .map(|name| {
            let &(name, objects, size, write_ratio) =
                WORKLOADS.iter().find(|w| w.0 == name).ok_or_else(|| {
                    format!("unknown workload `{name}` (known: get-4k, put-4k, get-1m, put-1m)")
                })?;
            Ok(Workload {
                name: name.to_string(),
                scheme: match scheme {
                    // A repeated /cas/ PUT is deduplicated by Tessera (nothing is stored), which
                    // would flatter it: uploads go to /ac/<sha256> instead, which both servers
                    // store every time (last writer wins; nginx rewrites the file).
                    PathScheme::BazelCas { .. } if write_ratio >= 1.0 => {
                        PathScheme::Template("/ac/{key}".into())
                    }
                    // The other clients' uploads are stored every time: last writer wins for
                    // Gradle, Turborepo and ccache, and Nx writes go to fresh keys.
                    other => other.clone(),
                },
                grpc: None,
                objects,
                sizes_text: size.to_string(),
                popularity_text: "uniform".to_string(),
                write_ratio,
                miss_ratio: 0.0,
                seed,
            })
        })
        .collect()
}

fn start_servers(
    args: &Args,
    out: &Path,
    peer: Peer,
    server_cpus: Option<&(String, usize)>,
    cores: usize,
) -> Result<Vec<Server>, String> {
    let cpus = server_cpus.map(|(list, _)| list.as_str());
    let server_cores = server_cpus.map_or(cores, |&(_, count)| count);
    let mut servers = Vec::new();
    if !args.switch("no-tessera") {
        let bin = args
            .get("tessera-bin")
            .ok_or("--tessera-bin PATH (or --no-tessera) is required")?;
        let data = out.join("tessera-data");
        let shards: usize = args.number("shards", server_cores)?;
        let log = out.join("tessera.log");
        let mut process = spawn_tessera(
            bin,
            free_port()?,
            &data,
            &args.text("max-size", "4GiB"),
            shards,
            cpus,
            &log,
        )?;
        process.wait_healthy()?;
        servers.push(Server { process });
    }
    let process = match peer {
        Peer::Nginx => start_nginx(
            &args.text("nginx-bin", "/usr/sbin/nginx"),
            &out.join("nginx"),
            args.number("nginx-workers", server_cores)?,
            cpus,
        )?,
        Peer::TurboRemoteCache => start_turbo_remote_cache(
            &args.text("node-bin", "node"),
            &args.text("turbo-cache-js", TURBO_REMOTE_CACHE_JS_DEFAULT),
            &out.join("turbo-remote-cache"),
            &args.text("token", SchemeOptions::default().token),
            cpus,
        )?,
    };
    servers.push(Server { process });
    Ok(servers)
}

fn run_workload(
    args: &Args,
    out: &Path,
    servers: &[Server],
    workload: &Workload,
    prepared: &Prepared,
    base: &LoadConfig,
    rounds: usize,
) -> Result<Measured, String> {
    if workload.write_ratio < 1.0 {
        preload_all(servers, workload, prepared, base)?;
    }
    let warmup = args.duration("warmup", "0s")?;
    if !warmup.is_zero() {
        for server in servers {
            let stats = measure(
                prepared,
                &LoadConfig {
                    address: server.process.address,
                    mode: Mode::Closed,
                    duration: warmup,
                    ..base.clone()
                },
            );
            eprintln!(
                "   warm-up  {:<8} {:>9.0} req/s errors {}",
                server.process.name,
                stats.requests_per_sec(),
                stats.errors_total()
            );
        }
    }
    let (closed, closed_rounds) = alternate(servers, rounds, |address| {
        measure(
            prepared,
            &LoadConfig {
                address,
                mode: Mode::Closed,
                ..base.clone()
            },
        )
    });
    let rate = fixed_rate(args, &closed, base.threads)?;
    eprintln!(
        "== {}: closed-loop maxima {:?} req/s; open loop at {rate}/s",
        workload.name,
        closed
            .iter()
            .map(|s| s.requests_per_sec() as u64)
            .collect::<Vec<_>>()
    );
    let (open, _) = alternate(servers, rounds, |address| {
        let mode = Mode::Open { rate_per_sec: rate };
        measure(
            prepared,
            &LoadConfig {
                address,
                mode,
                ..base.clone()
            },
        )
    });
    let measured = Measured {
        workload: workload.name.clone(),
        rate,
        closed,
        open,
        closed_rounds,
    };
    write_workload_outputs(out, servers, workload, prepared, base, &measured)?;
    Ok(measured)
}

/// Every server gets the whole key space before reads are measured; a failed preload ends the
/// comparison (its reads would be misses, not measurements).
fn preload_all(
    servers: &[Server],
    workload: &Workload,
    prepared: &Prepared,
    base: &LoadConfig,
) -> Result<(), String> {
    for server in servers {
        let stats = preload(
            prepared,
            &LoadConfig {
                address: server.process.address,
                ..base.clone()
            },
        );
        if let Some(banner) = problems_banner(&stats) {
            return Err(format!(
                "preloading {} for {}:\n{banner}",
                server.process.name, workload.name
            ));
        }
    }
    Ok(())
}

/// The open-loop rate: `--rate`, or `--rate-fraction` (default 0.5) of the smallest closed-loop
/// maximum, so that it is below every server's maximum.
fn fixed_rate(args: &Args, closed: &[RunStats], threads: usize) -> Result<u64, String> {
    if let Some(rate) = args.optional_number::<u64>("rate")? {
        return Ok(rate);
    }
    let fraction: f64 = args.number("rate-fraction", 0.5)?;
    if !(fraction > 0.0 && fraction <= 1.0) {
        return Err(format!("--rate-fraction {fraction} is outside (0, 1]"));
    }
    let smallest = closed
        .iter()
        .map(RunStats::requests_per_sec)
        .fold(f64::INFINITY, f64::min);
    Ok(((smallest * fraction) as u64).max(threads as u64))
}

/// JSON + `.hgrm` per server and phase, and one SVG overlaying the servers' open-loop runs.
fn write_workload_outputs(
    out: &Path,
    servers: &[Server],
    workload: &Workload,
    prepared: &Prepared,
    base: &LoadConfig,
    measured: &Measured,
) -> Result<(), String> {
    let rate = measured.rate;
    let mut plotted = Vec::new();
    for (index, server) in servers.iter().enumerate() {
        let name = &server.process.name;
        let phases = [
            ("closed", &measured.closed[index], Mode::Closed),
            (
                "open",
                &measured.open[index],
                Mode::Open { rate_per_sec: rate },
            ),
        ];
        for (phase, stats, mode) in phases {
            let label = format!("{name} {} {phase}", workload.name);
            let load = LoadConfig {
                mode,
                address: server.process.address,
                ..base.clone()
            };
            write_outputs(
                out,
                &file_stem(&label),
                &run_info(&label, workload, prepared, &load),
                stats,
            )?;
            if let Some(banner) = problems_banner(stats) {
                eprintln!("{label}:\n{banner}");
            }
        }
        plotted.push((format!("{name} @ {rate}/s"), &measured.open[index]));
    }
    let title = format!(
        "{} — latency by percentile at {rate} req/s (open loop)",
        workload.name
    );
    write_plot(
        &out.join(format!("{}.svg", workload.name)),
        &title,
        &plotted,
    )
}

/// Runs `run` against every server `rounds` times, flipping the order every round so that
/// neither server always goes first (machine noise and page-cache state hit both alike), and
/// merges each server's rounds; also returns each server's [`Round`]s.
fn alternate(
    servers: &[Server],
    rounds: usize,
    mut run: impl FnMut(std::net::SocketAddr) -> RunStats,
) -> (Vec<RunStats>, Vec<Vec<Round>>) {
    let mut merged: Vec<Option<RunStats>> = vec![None; servers.len()];
    let mut per_round = vec![Vec::with_capacity(rounds); servers.len()];
    for round in 0..rounds {
        let mut order: Vec<usize> = (0..servers.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for index in order {
            let process = &servers[index].process;
            let cpu_before = process.pid().and_then(cpu_time_ns);
            let stats = run(process.address);
            let cpu_after = process.pid().and_then(cpu_time_ns);
            let requests = (stats.requests_ok + stats.errors_total()) as f64;
            let cpu_us_per_request = match (cpu_before, cpu_after) {
                (Some(before), Some(after)) if requests > 0.0 => {
                    after.saturating_sub(before) as f64 / requests / 1e3
                }
                _ => f64::NAN,
            };
            eprintln!(
                "   round {round} {:<8} {:>9.0} req/s p99 {} ms CPU {:.2} µs/req errors {}",
                process.name,
                stats.requests_per_sec(),
                format_ms(stats.latency_ms_at(0.99)),
                cpu_us_per_request,
                stats.errors_total()
            );
            per_round[index].push(Round {
                requests_per_sec: stats.requests_per_sec(),
                megabytes_per_sec: stats.megabytes_per_sec(),
                cpu_us_per_request,
            });
            match &mut merged[index] {
                Some(total) => total.merge_sequential(&stats),
                slot => *slot = Some(stats),
            }
        }
    }
    let merged = merged.into_iter().map(|s| s.expect("rounds ≥ 1")).collect();
    (merged, per_round)
}

/// The median of `values` (mean of the middle two for an even count); 0 for none.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// Width of the ratio column: fits `tessera/<peer>`.
fn ratio_width(names: &[String]) -> usize {
    names.iter().map(String::len).sum::<usize>().max(13) + 1
}

/// The closed-loop metrics of the table: label, how to read it from a round, decimals.
const ROUND_ROWS: [(&str, RoundPick, usize); 3] = [
    ("median req/s (closed loop)", |r| r.requests_per_sec, 0),
    ("median MB/s (closed loop)", |r| r.megabytes_per_sec, 0),
    ("median CPU µs/req (closed)", |r| r.cpu_us_per_request, 2),
];

/// first/second of a metric in each round both servers measured (two servers only).
fn round_ratios(measured: &Measured, pick: RoundPick) -> Vec<f64> {
    match measured.closed_rounds.as_slice() {
        [first, second] => first
            .iter()
            .zip(second)
            .filter(|(a, b)| pick(b) > 0.0 && pick(a).is_finite())
            .map(|(a, b)| pick(a) / pick(b))
            .collect(),
        _ => Vec::new(),
    }
}

/// Closed-loop rows from the rounds: each server's median, and (two servers) the median of
/// the per-round ratios, each ratio taken between runs of the same round.
fn throughput_lines(names: &[String], measured: &Measured) -> String {
    let width = ratio_width(names);
    let mut out = String::new();
    for (metric, pick, decimals) in ROUND_ROWS {
        let mut line = format!("{:<8} {:<26}", measured.workload, metric);
        for rounds in measured.closed_rounds.iter().take(names.len()) {
            let values: Vec<f64> = rounds.iter().map(pick).filter(|v| v.is_finite()).collect();
            let value = median(&values);
            let _ = write!(line, " {value:>12.decimals$}");
        }
        if names.len() == 2 {
            let ratios = round_ratios(measured, pick);
            let ratio = if ratios.is_empty() {
                "-".to_string()
            } else {
                format!("{:.2}", median(&ratios))
            };
            let _ = write!(line, " {ratio:>width$}");
        }
        let _ = writeln!(out, "{line}");
    }
    out
}

/// The side-by-side table; with two servers a ratio column (first / second; for throughput
/// higher is better, for latency lower is better).
fn comparison_table(
    names: &[String],
    results: &[Measured],
    load: &LoadConfig,
    rounds: usize,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} threads, {} connections, {:?} per run, {rounds} alternating rounds per server (loopback; numbers from one run on a shared machine are noisy — compare ratios)\n",
        load.threads, load.connections, load.duration
    );
    let mut header = format!("{:<8} {:<26}", "workload", "metric");
    for name in names {
        let _ = write!(header, " {name:>12}");
    }
    if names.len() == 2 {
        let ratio = format!("{}/{}", names[0], names[1]);
        let _ = write!(header, " {ratio:>width$}", width = ratio_width(names));
    }
    let _ = writeln!(out, "{header}\n{}", "-".repeat(header.len()));
    for measured in results {
        out.push_str(&throughput_lines(names, measured));
        let rows: [(String, Metric, bool); 4] = [
            (
                format!("p50 ms @ {}/s", measured.rate),
                Box::new(|_, o| o.latency_ms_at(0.5)),
                true,
            ),
            (
                format!("p99 ms @ {}/s", measured.rate),
                Box::new(|_, o| o.latency_ms_at(0.99)),
                true,
            ),
            (
                format!("p99.9 ms @ {}/s", measured.rate),
                Box::new(|_, o| o.latency_ms_at(0.999)),
                true,
            ),
            (
                "errors + unsent (all runs)".to_string(),
                Box::new(|c, o| (c.errors_total() + o.errors_total() + o.not_sent) as f64),
                false,
            ),
        ];
        for (metric, value, is_latency) in rows {
            let mut line = format!("{:<8} {:<26}", measured.workload, metric);
            let values: Vec<f64> = (0..names.len())
                .map(|i| value(&measured.closed[i], &measured.open[i]))
                .collect();
            for v in &values {
                let text = if is_latency {
                    format_ms(*v)
                } else {
                    format!("{v:.0}")
                };
                let _ = write!(line, " {text:>12}");
            }
            if values.len() == 2 {
                let width = ratio_width(names);
                let ratio = if values[1] > 0.0 {
                    format!("{:.2}", values[0] / values[1])
                } else {
                    "-".to_string()
                };
                let _ = write!(line, " {ratio:>width$}");
            }
            let _ = writeln!(out, "{line}");
        }
    }
    if names.len() == 2 {
        let _ = writeln!(
            out,
            "\nper-round {}/{} ratios, closed loop (round order):",
            names[0], names[1]
        );
        for measured in results {
            let mut line = format!("{:<8}", measured.workload);
            for (label, pick) in [("req/s", ROUND_ROWS[0].1), ("CPU/req", ROUND_ROWS[2].1)] {
                let ratios: Vec<String> = round_ratios(measured, pick)
                    .iter()
                    .map(|r| format!("{r:.2}"))
                    .collect();
                let _ = write!(line, "  {label} {}", ratios.join(" "));
            }
            let _ = writeln!(out, "{line}");
        }
    }
    out
}

/// UTC `YYYYMMDD-HHMMSS` for result directory names.
pub fn timestamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}{month:02}{day:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn workloads_are_selected_by_name() {
        let bazel = PathScheme::parse("bazel", &SchemeOptions::default()).unwrap();
        let chosen = select_workloads("put-1m,get-4k", 1, &bazel).unwrap();
        assert_eq!(
            chosen.iter().map(|w| w.name.as_str()).collect::<Vec<_>>(),
            ["put-1m", "get-4k"]
        );
        assert_eq!(chosen[0].write_ratio, 1.0);
        assert_eq!(chosen[0].scheme, PathScheme::Template("/ac/{key}".into()));
        assert_eq!(
            chosen[1].scheme,
            PathScheme::BazelCas {
                prefix: String::new()
            }
        );
        assert!(select_workloads("get-2k", 1, &bazel)
            .unwrap_err()
            .contains("unknown workload"));
        // Other clients: the same scheme for reads and writes.
        let turbo = PathScheme::parse("turbo", &SchemeOptions::default()).unwrap();
        let chosen = select_workloads("get-4k,put-4k", 1, &turbo).unwrap();
        assert!(chosen.iter().all(|w| w.scheme == turbo));
        assert_eq!(
            Peer::parse("turbo-remote-cache"),
            Ok(Peer::TurboRemoteCache)
        );
        assert!(Peer::parse("varnish").is_err());
    }

    fn round(requests_per_sec: f64, megabytes_per_sec: f64, cpu_us_per_request: f64) -> Round {
        Round {
            requests_per_sec,
            megabytes_per_sec,
            cpu_us_per_request,
        }
    }

    #[test]
    fn table_has_ratios_for_two_servers() {
        let mut fast = RunStats::default();
        let mut slow = RunStats::default();
        for _ in 0..100 {
            fast.record_ok(std::time::Duration::from_micros(100), 4096);
            slow.record_ok(std::time::Duration::from_micros(200), 4096);
        }
        fast.elapsed = std::time::Duration::from_secs(1);
        slow.elapsed = std::time::Duration::from_secs(2);
        let measured = Measured {
            workload: "get-4k".into(),
            rate: 50,
            closed: vec![fast.clone(), slow.clone()],
            open: vec![fast, slow],
            closed_rounds: vec![
                vec![round(150.0, 0.6, 10.0), round(50.0, 0.2, 30.0)],
                vec![round(100.0, 0.4, 20.0), round(20.0, 0.1, f64::NAN)],
            ],
        };
        let load = LoadConfig {
            address: "127.0.0.1:1".parse().unwrap(),
            threads: 1,
            connections: 1,
            duration: std::time::Duration::from_secs(1),
            requests: None,
            mode: Mode::Closed,
            pin: false,
            request_timeout: std::time::Duration::from_secs(1),
            seed: 1,
            driver: crate::loadgen::Driver::Auto,
        };
        let table = comparison_table(&["tessera".into(), "nginx".into()], &[measured], &load, 2);
        // Medians 100 vs 60 req/s; per-round ratios 1.5 and 2.5, so the ratio column says 2.00.
        let throughput = table.lines().find(|l| l.contains("median req/s")).unwrap();
        let fields: Vec<&str> = throughput.split_whitespace().collect();
        assert_eq!(
            fields[fields.len() - 3..],
            ["100", "60", "2.00"],
            "{throughput}"
        );
        let p50 = table.lines().find(|l| l.contains("p50 ms @ 50/s")).unwrap();
        assert!(p50.trim_end().ends_with("0.50"), "{p50}");
        assert!(table.contains("tessera/nginx"));
        // CPU per request: medians 20 and 20 (the unreadable round is left out); the only
        // round with both values gives 10/20.
        let cpu = table.lines().find(|l| l.contains("CPU µs/req")).unwrap();
        let fields: Vec<&str> = cpu.split_whitespace().collect();
        assert_eq!(
            fields[fields.len() - 3..],
            ["20.00", "20.00", "0.50"],
            "{cpu}"
        );
        let rounds = table.lines().find(|l| l.contains("req/s 1.50")).unwrap();
        assert!(
            rounds.ends_with("req/s 1.50 2.50  CPU/req 0.50"),
            "{rounds}"
        );
    }
}
