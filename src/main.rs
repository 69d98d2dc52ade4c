//! `tessera` — the build-cache appliance.
//!
//! ```text
//! tessera serve  [--config FILE] [--listen ADDR] [--data DIR] [--max-size SIZE] …
//! tessera config [--config FILE] [the same flags as serve]
//! tessera verify --data DIR
//! tessera keygen --dir DIR [--kid NAME]
//! tessera token  --key DIR/NAME.key --subject S [--read GLOB]… [--write GLOB]… [--admin] [--ttl 30d]
//! tessera token  --inspect TOKEN [--config FILE]
//! tessera stats | namespaces | purge NS | get NS KEY [FILE] | put NS KEY FILE  [--server URL] [--token T]
//! ```
//!
//! `serve` and `config` take the same options: `--config FILE` (a TOML file) and one flag per
//! setting of `tessera::config::SETTINGS`. Each setting is layered: its default, then the file,
//! then its `TESSERA_*` environment variable, then its flag. `config` prints the result (every
//! setting, its value and where it came from, and the mount table) and exits; `serve` runs it.
//! A bad or unknown setting in the file or on the command line exits with status 2 and a message
//! naming the setting; an unknown `TESSERA_*` variable gets a warning.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use tessera::config::{default_of, Config, Layers, SettingFlags, ENV_PREFIX};

/// Exit status for a configuration error (as clap's for a usage error).
const EXIT_CONFIG_ERROR: u8 = 2;

#[derive(Parser)]
#[command(name = "tessera", version, about = "Build-cache appliance")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the cache (HTTP/1.1, h2c gRPC) until SIGTERM.
    Serve(Box<SettingArgs>),
    /// Print the effective configuration of `serve` with the same options, and exit.
    Config(Box<SettingArgs>),
    /// Check every record of a data directory offline; exit status 1 if anything is damaged.
    Verify {
        /// The data directory.
        #[arg(long, default_value = default_of("data"))]
        data: PathBuf,
    },
    /// Make an Ed25519 key pair: DIR/NAME.key (PKCS#8 PEM, mode 0600) and DIR/NAME.pub (SPKI PEM).
    Keygen {
        /// Where to write the pair (created if missing).
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// The key id: the files' stem, and the `kid` of the tokens it signs.
        #[arg(long, value_name = "NAME", default_value = "tessera")]
        kid: String,
    },
    /// Mint a token signed by a private key, or inspect one (--inspect).
    Token(Box<TokenArgs>),
    /// Print a running server's statistics (admin API).
    Stats(AdminArgs),
    /// List the namespaces of a running server: the objects and bytes each stores, and its request counts.
    Namespaces(AdminArgs),
    /// Purge one namespace of a running server.
    Purge {
        namespace: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Fetch one entry (in a Bazel namespace KEY is ac/HASH or cas/HASH) into FILE or stdout.
    Get {
        namespace: String,
        key: String,
        file: Option<PathBuf>,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Store FILE as one entry (in a Bazel namespace KEY is ac/HASH or cas/HASH).
    Put {
        namespace: String,
        key: String,
        file: PathBuf,
        #[command(flatten)]
        admin: AdminArgs,
    },
}

/// The options of `tessera token`.
#[derive(Args)]
struct TokenArgs {
    /// The private key (PKCS#8 PEM); its file stem is the token's `kid`.
    #[arg(long, value_name = "FILE", required_unless_present = "inspect")]
    key: Option<PathBuf>,
    /// Who the token is for (`sub`; shown in logs and the audit log).
    #[arg(long, value_name = "NAME", required_unless_present = "inspect")]
    subject: Option<String>,
    /// A namespace glob the token may read (repeatable; `*` crosses `/`).
    #[arg(long, value_name = "GLOB")]
    read: Vec<String>,
    /// A namespace glob the token may write, and so read (repeatable).
    #[arg(long, value_name = "GLOB")]
    write: Vec<String>,
    /// Grant the admin scope (metrics when not public, status, admin API).
    #[arg(long)]
    admin: bool,
    /// Lifetime, such as 1h or 30d [default: 24h].
    #[arg(long, value_name = "DURATION")]
    ttl: Option<String>,
    /// The `aud` claim (checked against auth.audience).
    #[arg(long, value_name = "TEXT")]
    audience: Option<String>,
    /// Print S3 credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) with the token's scopes.
    #[arg(long)]
    s3: bool,
    /// With --s3: the server's S3 secret [default: s3.secret beside --key].
    #[arg(long, value_name = "FILE", requires = "s3")]
    s3_secret: Option<PathBuf>,
    /// Print a token's header and claims instead of minting one.
    #[arg(long, value_name = "TOKEN", conflicts_with_all = ["key", "subject"])]
    inspect: Option<String>,
    /// With --inspect: say whether this configuration's keys would accept the token.
    #[arg(long, value_name = "FILE", requires = "inspect")]
    config: Option<PathBuf>,
}

/// Where the running server is and the token to show it.
#[derive(Args)]
struct AdminArgs {
    /// The server's URL.
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// A token with the `admin` claim, sent as `Authorization: Bearer`.
    #[arg(long, value_name = "TOKEN")]
    token: Option<String>,
}

/// The options of `serve` and `config`: the config file and one flag per setting.
#[derive(Args, Clone)]
struct SettingArgs {
    /// TOML configuration file (overridden by TESSERA_* variables, overridden by flags).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(flatten)]
    settings: SettingFlags,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(&args),
        Command::Config(args) => print_config(&args),
        Command::Verify { data } => {
            ExitCode::from(u8::try_from(tessera::store::verify::run_cli(&data)).unwrap_or(2))
        }
        Command::Keygen { dir, kid } => report(tessera::auth::cli::keygen(&dir, &kid)),
        Command::Token(args) => token(&args),
        Command::Stats(admin) => admin_command(&admin, tessera::cli::stats),
        Command::Namespaces(admin) => admin_command(&admin, tessera::cli::namespaces),
        Command::Purge { namespace, admin } => {
            admin_command(&admin, |s| tessera::cli::purge(s, &namespace))
        }
        Command::Get {
            namespace,
            key,
            file,
            admin,
        } => admin_command(&admin, |s| {
            tessera::cli::get(s, &namespace, &key, file.as_deref())
        }),
        Command::Put {
            namespace,
            key,
            file,
            admin,
        } => admin_command(&admin, |s| tessera::cli::put(s, &namespace, &key, &file)),
    }
}

fn admin_command(
    args: &AdminArgs,
    run: impl FnOnce(&tessera::cli::Server) -> Result<(), tessera::cli::CliError>,
) -> ExitCode {
    let outcome = tessera::cli::Server::new(&args.server, args.token.clone()).and_then(|s| run(&s));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("tessera: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

/// Prints an `Ok` to stdout (exit 0) or an `Err` to stderr (exit 1).
fn report(outcome: Result<String, String>) -> ExitCode {
    match outcome {
        Ok(text) => {
            println!("{}", text.trim_end());
            ExitCode::SUCCESS
        }
        Err(text) => {
            eprintln!("tessera: {}", text.trim_end());
            ExitCode::FAILURE
        }
    }
}

fn token(args: &TokenArgs) -> ExitCode {
    use tessera::auth::cli;
    let now = cli::now_seconds();
    if let Some(token) = &args.inspect {
        return report(cli::inspect(token, args.config.as_deref(), now));
    }
    let request = cli::MintRequest {
        key: args.key.clone().unwrap_or_default(),
        subject: args.subject.clone().unwrap_or_default(),
        read: args.read.clone(),
        write: args.write.clone(),
        admin: args.admin,
        ttl: args.ttl.clone(),
        audience: args.audience.clone(),
        s3: args.s3.then(|| args.s3_secret.clone()),
    };
    report(cli::mint(&request, now))
}

fn serve(args: &SettingArgs) -> ExitCode {
    let (_, config, unknown_env) = match load(args) {
        Ok(loaded) => loaded,
        Err(message) => {
            eprintln!("tessera: {message}");
            return ExitCode::from(EXIT_CONFIG_ERROR);
        }
    };
    tessera::logging::init(&config.log, &config.log_format);
    for var in unknown_env {
        tracing::warn!(variable = %var, "ignoring an environment variable that is not a setting");
    }
    let reload_args = args.clone();
    let reload: tessera::server::reload::Reload =
        Box::new(move || load(&reload_args).map(|(_, config, _)| config));
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

fn print_config(args: &SettingArgs) -> ExitCode {
    match load(args) {
        Ok((layers, config, unknown_env)) => {
            for var in unknown_env {
                eprintln!("tessera: warning: ignoring {var}: not a setting");
            }
            print!("{}", layers.render(&config));
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("tessera: {message}");
            ExitCode::from(EXIT_CONFIG_ERROR)
        }
    }
}

/// The layers, the validated configuration, and the unknown `TESSERA_*` variables (to warn
/// about).
fn load(args: &SettingArgs) -> Result<(Layers, Config, Vec<String>), String> {
    let mut layers = Layers::with_defaults();
    if let Some(path) = &args.config {
        layers.apply_file(path).map_err(|e| e.to_string())?;
    }
    let unknown_env = layers.apply_env(tessera_env_vars()?);
    layers
        .apply_flags(&args.settings)
        .map_err(|e| e.to_string())?;
    let config = layers.validate().map_err(|e| e.to_string())?;
    Ok((layers, config, unknown_env))
}

/// The `TESSERA_*` environment variables; one whose name or value is not UTF-8 is an error (it
/// cannot be a valid setting, and dropping it silently would hide the operator's intent).
fn tessera_env_vars() -> Result<Vec<(String, String)>, String> {
    let prefix = OsString::from(ENV_PREFIX);
    let mut vars = Vec::new();
    for (name, value) in std::env::vars_os() {
        if !name
            .as_encoded_bytes()
            .starts_with(prefix.as_encoded_bytes())
        {
            continue;
        }
        match (name.into_string(), value.into_string()) {
            (Ok(name), Ok(value)) => vars.push((name, value)),
            (Ok(name), Err(_)) => return Err(format!("environment variable {name} is not UTF-8")),
            (Err(name), _) => {
                return Err(format!(
                    "environment variable {} is not UTF-8",
                    name.to_string_lossy()
                ))
            }
        }
    }
    Ok(vars)
}
