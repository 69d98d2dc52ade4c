//! `tessera-bench`: see the library documentation and `tessera-bench help`.

use tessera_bench::{cli, compare, restart};

const USAGE: &str = "\
tessera-bench — latency benchmark harness for Tessera and its peers

  tessera-bench run --target http://127.0.0.1:8080 [...]   one load run (closed loop, or open loop with --rate)
  tessera-bench compare [...]                              Tessera vs nginx, alternating, side-by-side table
  tessera-bench restart --tessera-bin PATH [...]           time to reopen a 1 M-object store (clean stop, kill -9)
  tessera-bench plot --out F.svg [LABEL=]F.hgrm ...        overlay latency-by-percentile plots
  tessera-bench test-server [--stall-after 3s --stall 1s]  tiny in-memory server (coordinated-omission demo)
  tessera-bench nginx-config --dir D --port P              print the peer nginx configuration

`tessera-bench SUBCOMMAND --help` lists a subcommand's options.";

fn main() {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let (command, rest) = match arguments.split_first() {
        Some((command, rest)) => (command.as_str(), rest),
        None => ("help", &[][..]),
    };
    if rest.iter().any(|a| a == "--help" || a == "-h") {
        let usage = match command {
            "run" => cli::RUN_USAGE,
            "compare" => compare::USAGE,
            "restart" => restart::USAGE,
            _ => USAGE,
        };
        println!("{usage}");
        return;
    }
    let result = match command {
        "run" => cli::run_command(rest),
        "compare" => compare::compare_command(rest),
        "restart" => restart::restart_command(rest),
        "plot" => cli::plot_command(rest),
        "test-server" => cli::test_server_command(rest),
        "nginx-config" => cli::nginx_config_command(rest),
        "help" | "--help" | "-h" => {
            println!("{USAGE}");
            Ok(0)
        }
        other => Err(format!("unknown subcommand `{other}`\n\n{USAGE}")),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(message) => {
            eprintln!("tessera-bench: {message}");
            std::process::exit(2);
        }
    }
}
