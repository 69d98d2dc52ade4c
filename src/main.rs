//! The `tessera` binary: argument dispatch only; each subcommand lives in the library.

use std::path::Path;
use std::process::ExitCode;

const USAGE: &str = "usage: tessera verify --data DIR";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let status = match args.as_slice() {
        ["verify", "--data", dir] => tessera::store::verify::run_cli(Path::new(dir)),
        _ => {
            eprintln!("{USAGE}");
            2
        }
    };
    ExitCode::from(status as u8)
}
