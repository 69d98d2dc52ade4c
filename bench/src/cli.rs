//! The `run`, `plot` and `test-server` subcommands.

use crate::args::Args;
use crate::grpc_protocol::GrpcScheme;
use crate::limits::{
    CONNECTIONS_MAX, DURATION_SECS_MAX, RATE_PER_SEC_MAX, REQUEST_TIMEOUT_MS_DEFAULT, THREADS_MAX,
};
use crate::loadgen::{Driver, LoadConfig, Mode};
use crate::plot::{render_svg, Series};
use crate::protocol::{PathScheme, SchemeOptions};
use crate::report::{parse_hgrm, problems_banner, table_header, table_row};
use crate::runner::{
    file_stem, measure, parse_target, preload, run_info, write_outputs, write_plot, Workload,
};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub const RUN_USAGE: &str = "\
tessera-bench run --target http://127.0.0.1:8080 [options]

  --protocol bazel|bazel-ac|template   bazel: GET/PUT /cas/<sha256>; bazel-ac: /ac/ lookup + /cas/ fetch
  --protocol gradle                    GET/PUT /cache/<32 hex>, Gradle's Accept / Content-Type
  --protocol nx                        GET/PUT /v1/cache/<decimal>, Bearer token; writes use fresh keys
  --protocol turbo                     GET/PUT /v8/artifacts/<16 hex>?slug=TEAM, Bearer, x-artifact-duration
  --protocol ccache                    GET/PUT /ccache/<2 hex>/<38 hex> (subdirs layout)
  --protocol grpc                      Bazel gRPC: ByteStream Read (GET) / Write (PUT); --prefix = instance
  --protocol grpc-find-missing         FindMissingBlobs of --batch N (1000) stored digests per request
  --path-template /dav/{key}           with --protocol template ({key} = sha256 hex of the object)
  --prefix /instance                   Bazel: path prefix; gradle/ccache/nx/turbo: base path of the
                                       client's URL (default /cache, /ccache, none, none)
  --team bench  --token t              turbo's team (?slug=), the Bearer token of nx and turbo
  --protocol s3                        GET/PUT /BUCKET/<sha256> signed with SigV4 (UNSIGNED-PAYLOAD);
                                       --prefix /BUCKET (bench), --access-key AK --secret-key SK
  --threads N (2)  --connections N (64)  --no-pin
  --duration 10s  --requests N         the run stops at whichever comes first
  --rate R                             open loop at R requests/s (default: closed loop)
  --objects N (1000)  --sizes 4KiB | build-artifacts | 512B=25,4KiB=30,1MiB=5
  --popularity uniform | zipf:0.99     --write-ratio 0.0  --miss-ratio 0.0
  --no-preload  --warmup 0s  --timeout 10s  --seed 1
  --driver auto|epoll                  auto: io_uring if available, else epoll (monoio FusionDriver)
  --label NAME  --out DIR              writes DIR/NAME.json, .hgrm and .svg";

const RUN_FLAGS: &[&str] = &[
    "target",
    "protocol",
    "path-template",
    "prefix",
    "team",
    "token",
    "access-key",
    "secret-key",
    "batch",
    "threads",
    "connections",
    "duration",
    "requests",
    "rate",
    "objects",
    "sizes",
    "popularity",
    "write-ratio",
    "miss-ratio",
    "warmup",
    "timeout",
    "seed",
    "driver",
    "label",
    "out",
];

/// Threads, connections, duration, rate, timeout and seed of a load, validated against limits.
pub fn load_config(args: &Args, address: SocketAddr) -> Result<LoadConfig, String> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads: usize = args.number("threads", cores)?;
    let connections: usize = args.number("connections", 64)?;
    if threads == 0 || threads > THREADS_MAX {
        return Err(format!(
            "--threads {threads} is outside 1..={THREADS_MAX} (THREADS_MAX)"
        ));
    }
    if connections < threads || connections > CONNECTIONS_MAX {
        return Err(format!("--connections {connections} must be in --threads..={CONNECTIONS_MAX} (CONNECTIONS_MAX)"));
    }
    let duration = args.duration("duration", "10s")?;
    if duration.is_zero() || duration > Duration::from_secs(DURATION_SECS_MAX) {
        return Err(format!(
            "--duration must be in (0, {DURATION_SECS_MAX}s] (DURATION_SECS_MAX)"
        ));
    }
    let mode = match args.optional_number::<u64>("rate")? {
        None => Mode::Closed,
        Some(rate) if rate < threads as u64 || rate > RATE_PER_SEC_MAX => {
            return Err(format!(
                "--rate {rate} must be in --threads..={RATE_PER_SEC_MAX} (RATE_PER_SEC_MAX)"
            ))
        }
        Some(rate_per_sec) => Mode::Open { rate_per_sec },
    };
    Ok(LoadConfig {
        address,
        threads,
        connections,
        duration,
        requests: args.optional_number("requests")?,
        mode,
        pin: !args.switch("no-pin"),
        request_timeout: args.duration("timeout", &format!("{REQUEST_TIMEOUT_MS_DEFAULT}ms"))?,
        seed: args.number("seed", 1)?,
        driver: match args.text("driver", "auto").as_str() {
            "auto" => Driver::Auto,
            "epoll" => Driver::Epoll,
            other => return Err(format!("--driver `{other}` is not auto or epoll")),
        },
    })
}

pub fn workload_from_args(args: &Args) -> Result<Workload, String> {
    let protocol = args.text("protocol", "bazel");
    let instance = args.text("prefix", "").trim_matches('/').to_string();
    let grpc = match protocol.as_str() {
        "grpc" => Some(GrpcScheme::ByteStream { instance }),
        "grpc-find-missing" => {
            let batch: usize = args.number("batch", 1000)?;
            if batch == 0 || batch > tessera::protocols::reapi::BATCH_DIGESTS_MAX {
                return Err(format!(
                    "--batch {batch} is outside 1..={} (BATCH_DIGESTS_MAX)",
                    tessera::protocols::reapi::BATCH_DIGESTS_MAX
                ));
            }
            Some(GrpcScheme::FindMissing { instance, batch })
        }
        _ => None,
    };
    let scheme = match grpc {
        Some(_) => PathScheme::BazelCas {
            prefix: String::new(),
        },
        None => PathScheme::parse(
            &protocol,
            &SchemeOptions {
                prefix: &args.text("prefix", ""),
                template: args.get("path-template"),
                team: &args.text("team", SchemeOptions::default().team),
                token: &args.text("token", SchemeOptions::default().token),
                access_key: &args.text("access-key", SchemeOptions::default().access_key),
                secret_key: &args.text("secret-key", SchemeOptions::default().secret_key),
            },
        )?,
    };
    Ok(Workload {
        name: args.text("label", ""),
        scheme,
        grpc,
        objects: args.number("objects", 1000)?,
        sizes_text: args.text("sizes", "4KiB"),
        popularity_text: args.text("popularity", "uniform"),
        write_ratio: args.number("write-ratio", 0.0)?,
        miss_ratio: args.number("miss-ratio", 0.0)?,
        seed: args.number("seed", 1)?,
    })
}

/// `tessera-bench run`: exit status 0 for a clean run, 1 when any request failed.
pub fn run_command(arguments: &[String]) -> Result<i32, String> {
    let args = Args::parse(arguments, RUN_FLAGS, &["no-pin", "no-preload"])?;
    let target = args.get("target").ok_or("--target is required")?;
    let load = load_config(&args, parse_target(target)?)?;
    let workload = workload_from_args(&args)?;
    let started = Instant::now();
    let prepared = workload.prepare()?;
    eprintln!(
        "key space: {} objects, {:.1} MB, generated in {:.1} s",
        prepared.keys.len(),
        prepared.keys.total_bytes() as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    if !args.switch("no-preload") {
        let stats = preload(&prepared, &load);
        let seconds = stats.elapsed.as_secs_f64().max(1e-9);
        eprintln!(
            "preload: {} PUTs in {:.3} s ({:.0} req/s, {:.1} MB/s, p50 {:.3} ms, p99 {:.3} ms)",
            stats.requests_ok,
            seconds,
            stats.requests_ok as f64 / seconds,
            stats.body_bytes as f64 / seconds / 1e6,
            stats.latency_ms_at(0.5),
            stats.latency_ms_at(0.99)
        );
        if let Some(banner) = problems_banner(&stats) {
            eprintln!("preload failed, not measuring:\n{banner}");
            return Ok(1);
        }
    }
    let warmup = args.duration("warmup", "0s")?;
    if !warmup.is_zero() {
        crate::runner::measure(
            &prepared,
            &LoadConfig {
                duration: warmup,
                ..load.clone()
            },
        );
    }
    let stats = measure(&prepared, &load);
    let mut info = run_info("", &workload, &prepared, &load);
    info.label = args.text("label", &format!("{} {}", info.protocol, info.mode));
    let label = info.label.clone();
    println!("{}\n{}", table_header(), table_row(&label, &stats));
    if let Some(dir) = args.get("out") {
        let dir = PathBuf::from(dir);
        let stem = file_stem(&label);
        write_outputs(&dir, &stem, &info, &stats)?;
        write_plot(
            &dir.join(format!("{stem}.svg")),
            &label,
            &[(label.clone(), &stats)],
        )?;
        eprintln!("wrote {}/{stem}.{{json,hgrm,svg}}", dir.display());
    }
    match problems_banner(&stats) {
        Some(banner) => {
            eprintln!("{banner}");
            Ok(1)
        }
        None => Ok(0),
    }
}

/// `tessera-bench plot --out FILE.svg [--title T] [LABEL=]FILE.hgrm ...`
pub fn plot_command(arguments: &[String]) -> Result<i32, String> {
    let args = Args::parse(arguments, &["out", "title"], &[])?;
    let out = args.get("out").ok_or("--out FILE.svg is required")?;
    if args.positional.is_empty() {
        return Err("give at least one [LABEL=]FILE.hgrm".into());
    }
    let mut series = Vec::new();
    for item in &args.positional {
        let (label, path) = match item.split_once('=') {
            Some((label, path)) => (label.to_string(), path.to_string()),
            None => (
                PathBuf::from(item)
                    .file_stem()
                    .map_or(item.clone(), |s| s.to_string_lossy().into_owned()),
                item.clone(),
            ),
        };
        let text = std::fs::read_to_string(&path).map_err(|e| format!("reading {path}: {e}"))?;
        let points = parse_hgrm(&text).map_err(|e| format!("{path}: {e}"))?;
        series.push(Series { label, points });
    }
    let svg = render_svg(&args.text("title", "Latency by percentile"), &series);
    std::fs::write(out, svg).map_err(|e| format!("writing {out}: {e}"))?;
    Ok(0)
}

/// `tessera-bench test-server [--listen 127.0.0.1:0] [--stall-after 3s --stall 1s] [--for 10m]`:
/// the in-memory test server, for demonstrating coordinated omission by hand.
pub fn test_server_command(arguments: &[String]) -> Result<i32, String> {
    let args = Args::parse(arguments, &["listen", "stall-after", "stall", "for"], &[])?;
    let server = crate::test_server::TestServer::start(&args.text("listen", "127.0.0.1:0"))
        .map_err(|e| format!("--listen: {e}"))?;
    if let Some(stall) = args.get("stall") {
        let length = crate::args::parse_duration(stall).ok_or("--stall is not a duration")?;
        server.stall_once(args.duration("stall-after", "3s")?, length);
    }
    println!("listening on http://{}", server.address());
    std::thread::sleep(args.duration("for", "10m")?);
    Ok(0)
}

/// `tessera-bench nginx-config --dir DIR --port PORT [--workers N]`: prints the nginx
/// configuration `compare` uses (for scripts such as `bench/wrk-check.sh`).
pub fn nginx_config_command(arguments: &[String]) -> Result<i32, String> {
    let args = Args::parse(arguments, &["dir", "port", "workers"], &[])?;
    let dir = args.get("dir").ok_or("--dir is required")?;
    let port: u16 = args.number("port", 0)?;
    if port == 0 {
        return Err("--port is required".into());
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    print!(
        "{}",
        crate::peers::nginx_config(
            std::path::Path::new(dir),
            port,
            args.number("workers", cores)?
        )
    );
    Ok(0)
}
