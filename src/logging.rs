//! Logging through `tracing`; the `log` records of dependencies (glommio's buffer-registration
//! fallback warnings among them, stack.md §1c) are forwarded into it.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once; `filter` is an `EnvFilter` directive such as `info` or
/// `tessera=debug,glommio=warn`. Logs go to stderr; stdout carries only the ready line.
pub fn init(filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|error| {
        eprintln!("tessera: log filter `{filter}` is invalid ({error}); using `info`");
        EnvFilter::new("info")
    });
    let _ = tracing_log::LogTracer::init();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}
