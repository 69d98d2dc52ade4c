//! `tessera` — the build-cache appliance.
//!
//! ```text
//! tessera serve  [--config FILE] [--listen ADDR] [--data DIR] [--max-size SIZE] …
//! tessera verify --data DIR
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use tessera::config::{Layers, SETTINGS};

#[derive(Parser)]
#[command(name = "tessera", version, about = "Build-cache appliance")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the cache (HTTP/1.1, h2c gRPC) until SIGTERM.
    Serve(Box<ServeArgs>),
    /// Check every record of a data directory offline; exit status 1 if anything is damaged.
    Verify {
        /// The data directory.
        #[arg(long, default_value = "./tessera-data")]
        data: PathBuf,
    },
}

/// Flags of `serve`. Each overrides the config file and `TESSERA_*` environment variable of the
/// same name (see `config::SETTINGS`).
#[derive(Args, Default, Clone)]
struct ServeArgs {
    /// TOML configuration file.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address for HTTP/1.1 and h2c gRPC [default: 127.0.0.1:8080].
    #[arg(long)]
    listen: Option<String>,
    /// Extra address that serves only gRPC.
    #[arg(long)]
    grpc_listen: Option<String>,
    /// Data directory [default: ./tessera-data].
    #[arg(long)]
    data: Option<String>,
    /// Byte budget of the whole cache, e.g. 10GiB [default: 10GiB].
    #[arg(long)]
    max_size: Option<String>,
    /// Largest accepted blob, e.g. 1GiB [default: 1GiB].
    #[arg(long)]
    max_blob_size: Option<String>,
    /// Size of one log segment [default: 64MiB].
    #[arg(long)]
    segment_size: Option<String>,
    /// Shard count of a new data directory [default: one per executor].
    #[arg(long)]
    shards: Option<String>,
    /// Executors (pinned threads) [default: one per CPU this process may run on (taskset, CPUAffinity=)].
    #[arg(long)]
    executors: Option<String>,
    /// Most open client connections [default: 10000].
    #[arg(long)]
    max_connections: Option<String>,
    /// `relaxed` (page cache + periodic sync) or `strict` (sync before acknowledging).
    #[arg(long)]
    durability: Option<String>,
    /// Log filter, e.g. `info` or `tessera=debug` [default: info].
    #[arg(long)]
    log: Option<String>,
}

impl ServeArgs {
    fn flags(&self) -> Vec<(&'static str, &str)> {
        let pairs: [(&'static str, &Option<String>); 11] = [
            ("listen", &self.listen),
            ("grpc_listen", &self.grpc_listen),
            ("data", &self.data),
            ("max_size", &self.max_size),
            ("max_blob_size", &self.max_blob_size),
            ("segment_size", &self.segment_size),
            ("shards", &self.shards),
            ("executors", &self.executors),
            ("max_connections", &self.max_connections),
            ("durability", &self.durability),
            ("log", &self.log),
        ];
        pairs
            .into_iter()
            .filter_map(|(name, value)| value.as_deref().map(|v| (name, v)))
            .collect()
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(*args),
        Command::Verify { data } => {
            ExitCode::from(u8::try_from(tessera::store::verify::run_cli(&data)).unwrap_or(2))
        }
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    let (config, unknown_env) = match layered_config(&args) {
        Ok(layered) => layered,
        Err(message) => {
            eprintln!("tessera: {message}");
            return ExitCode::from(2);
        }
    };
    tessera::logging::init(&config.log);
    for var in unknown_env {
        tracing::warn!(variable = %var, "ignoring an environment variable that is not a setting");
    }
    let reload_args = args.clone();
    let reload: tessera::server::reload::Reload =
        Box::new(move || layered_config(&reload_args).map(|(config, _)| config));
    match tessera::server::run_with_reload(config, Some(reload)) {
        Ok(()) => {
            tracing::info!("stopped cleanly");
            ExitCode::SUCCESS
        }
        Err(error) => {
            tracing::error!(%error, "stopped with an error");
            eprintln!("tessera: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The validated configuration and the unknown `TESSERA_*` variables (to warn about).
fn layered_config(args: &ServeArgs) -> Result<(tessera::config::Config, Vec<String>), String> {
    debug_assert!(args
        .flags()
        .iter()
        .all(|(n, _)| SETTINGS.iter().any(|(s, _)| s == n)));
    let mut layers = Layers::with_defaults();
    if let Some(path) = &args.config {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
        layers
            .apply_toml(&text)
            .map_err(|e| format!("{} ({})", e, path.display()))?;
    }
    let unknown_env = layers.apply_env(std::env::vars());
    for (name, value) in args.flags() {
        layers.apply_flag(name, value).map_err(|e| e.to_string())?;
    }
    let config = layers.validate().map_err(|e| e.to_string())?;
    Ok((config, unknown_env))
}
