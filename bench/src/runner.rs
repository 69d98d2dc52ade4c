//! One benchmark run from start to finish: build the key space and protocol for a [`Workload`],
//! preload the objects, measure, and write the outputs (table row, JSON, `.hgrm`, SVG).
//! The `run`, `compare` and `restart` subcommands are all built from these pieces.

use crate::grpc_protocol::{GrpcConnection, GrpcProtocol, GrpcScheme};
use crate::http1_client::Http1Connection;
use crate::loadgen::{run_load, LoadConfig, Mode, OperationSource};
use crate::plot::{render_svg, Series};
use crate::protocol::{HttpProtocol, Outcome, PathScheme, Protocol};
use crate::report::{parse_hgrm, to_hgrm, to_json, RunInfo};
use crate::stats::RequestError;
use crate::stats::RunStats;
use crate::workload::Operation;
use crate::workload::{KeySpace, OperationMix, Popularity, SizeDistribution};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// What to ask of the server (independent of which server it is).
#[derive(Debug, Clone)]
pub struct Workload {
    pub name: String,
    pub scheme: PathScheme,
    /// `Some`: the run speaks Bazel gRPC instead of HTTP (`scheme` is then unused).
    pub grpc: Option<GrpcScheme>,
    pub objects: usize,
    pub sizes_text: String,
    pub popularity_text: String,
    pub write_ratio: f64,
    pub miss_ratio: f64,
    pub seed: u64,
}

/// A workload with its key space generated (SHA-256 of every object computed once) — reusable
/// against every server of a comparison, so each sees byte-identical requests.
#[derive(Clone)]
pub struct Prepared {
    pub keys: Arc<KeySpace>,
    pub protocol: BenchProtocol,
    pub mix: Arc<OperationMix>,
}

impl Workload {
    pub fn prepare(&self) -> Result<Prepared, String> {
        let sizes =
            SizeDistribution::parse(&self.sizes_text).map_err(|e| format!("--sizes: {e}"))?;
        let keys = Arc::new(
            KeySpace::generate(self.objects, &sizes, self.seed).map_err(|e| e.to_string())?,
        );
        let popularity = Popularity::parse(&self.popularity_text, self.objects)
            .map_err(|e| format!("--popularity: {e}"))?;
        let mix = OperationMix {
            write_ratio: self.write_ratio,
            miss_ratio: self.miss_ratio,
            popularity,
            objects: self.objects,
        };
        mix.validate().map_err(|e| e.to_string())?;
        let protocol = match &self.grpc {
            None => BenchProtocol::Http(HttpProtocol::new(
                keys.clone(),
                self.scheme.clone(),
                "127.0.0.1".to_string(),
            )),
            Some(scheme) => BenchProtocol::Grpc(GrpcProtocol::new(keys.clone(), scheme.clone())),
        };
        Ok(Prepared {
            keys,
            protocol,
            mix: Arc::new(mix),
        })
    }
}

/// `http://host:port`, `host:port` → the first resolved address.
/// The protocol of a run: HTTP/1.1 or gRPC, chosen per workload.
// One value per load thread, built once: the size of the larger variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
pub enum BenchProtocol {
    Http(HttpProtocol),
    Grpc(GrpcProtocol),
}

pub enum BenchConnection {
    Http(Http1Connection),
    Grpc(GrpcConnection),
}

impl Protocol for BenchProtocol {
    type Connection = BenchConnection;

    fn name(&self) -> String {
        match self {
            BenchProtocol::Http(p) => p.name(),
            BenchProtocol::Grpc(p) => p.name(),
        }
    }

    async fn connect(&self, address: SocketAddr) -> Result<BenchConnection, RequestError> {
        match self {
            BenchProtocol::Http(p) => p.connect(address).await.map(BenchConnection::Http),
            BenchProtocol::Grpc(p) => p.connect(address).await.map(BenchConnection::Grpc),
        }
    }

    async fn execute(
        &self,
        connection: &mut BenchConnection,
        operation: &Operation,
    ) -> Result<Outcome, RequestError> {
        match (self, connection) {
            (BenchProtocol::Http(p), BenchConnection::Http(c)) => p.execute(c, operation).await,
            (BenchProtocol::Grpc(p), BenchConnection::Grpc(c)) => p.execute(c, operation).await,
            _ => Err(RequestError::new(
                crate::stats::ErrorKind::Malformed,
                "a connection of the other protocol",
            )),
        }
    }
}

pub fn parse_target(target: &str) -> Result<SocketAddr, String> {
    let bare = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("grpc://"))
        .unwrap_or(target)
        .trim_end_matches('/');
    if bare.contains('/') || target.starts_with("https://") {
        return Err(format!(
            "--target `{target}` must be http://HOST:PORT (no path; TLS is not supported)"
        ));
    }
    bare.to_socket_addrs()
        .map_err(|e| format!("--target `{target}`: {e}"))?
        .next()
        .ok_or_else(|| format!("--target `{target}` resolves to no address"))
}

/// Writes every object once (closed loop, bounded by the object count). Returns the stats; the
/// caller must refuse to measure after a preload with errors.
pub fn preload(prepared: &Prepared, load: &LoadConfig) -> RunStats {
    let config = LoadConfig {
        mode: Mode::Closed,
        duration: Duration::from_secs(crate::limits::DURATION_SECS_MAX),
        requests: None,
        ..load.clone()
    };
    run_load(
        &config,
        &prepared.protocol,
        &OperationSource::put_each(prepared.keys.len()),
    )
}

pub fn measure(prepared: &Prepared, load: &LoadConfig) -> RunStats {
    run_load(
        load,
        &prepared.protocol,
        &OperationSource::Mix(prepared.mix.clone()),
    )
}

pub fn run_info(
    label: &str,
    workload: &Workload,
    prepared: &Prepared,
    load: &LoadConfig,
) -> RunInfo {
    RunInfo {
        label: label.to_string(),
        target: load.address.to_string(),
        protocol: prepared.protocol.name(),
        mode: match load.mode {
            Mode::Closed => "closed".to_string(),
            Mode::Open { rate_per_sec } => format!("open@{rate_per_sec}/s"),
        },
        threads: load.threads,
        connections: load.connections,
        duration_secs: load.duration.as_secs_f64(),
        objects: workload.objects,
        sizes: workload.sizes_text.clone(),
        popularity: prepared.mix.popularity.describe(),
        write_ratio: workload.write_ratio,
        miss_ratio: workload.miss_ratio,
    }
}

/// Writes `<dir>/<file_stem>.json` and `.hgrm`.
pub fn write_outputs(
    dir: &Path,
    file_stem: &str,
    info: &RunInfo,
    stats: &RunStats,
) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let write = |extension: &str, text: String| {
        let path = dir.join(format!("{file_stem}.{extension}"));
        std::fs::write(&path, text).map_err(|e| format!("writing {}: {e}", path.display()))
    };
    write("json", to_json(info, stats))?;
    write("hgrm", to_hgrm(stats))
}

/// Renders an overlay of runs (label, stats) to `path`.
pub fn write_plot(path: &Path, title: &str, runs: &[(String, &RunStats)]) -> Result<(), String> {
    let series: Vec<Series> = runs
        .iter()
        .map(|(label, stats)| Series {
            label: label.clone(),
            points: parse_hgrm(&to_hgrm(stats)).unwrap_or_default(),
        })
        .collect();
    std::fs::write(path, render_svg(title, &series))
        .map_err(|e| format!("writing {}: {e}", path.display()))
}

/// A file-name-safe version of a label.
pub fn file_stem(label: &str) -> String {
    label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            parse_target("http://127.0.0.1:8080").unwrap(),
            "127.0.0.1:8080".parse().unwrap()
        );
        assert_eq!(
            parse_target("127.0.0.1:9/").unwrap(),
            "127.0.0.1:9".parse().unwrap()
        );
        assert!(parse_target("http://127.0.0.1:8080/cas").is_err());
        assert!(parse_target("https://127.0.0.1:443").is_err());
        assert!(parse_target("no-port").is_err());
        assert_eq!(file_stem("nginx get-4k @1000/s"), "nginx_get-4k__1000_s");
    }
}
