//! Logging through `tracing`; the `log` records of dependencies (glommio's buffer-registration
//! fallback warnings among them, stack.md §1c) are forwarded into it.
//!
//! The filter can be replaced while the server runs ([`set_filter`]): SIGHUP re-reads the
//! configuration and applies its `log` setting (`server::reload`).

use std::sync::OnceLock;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

/// The handle that swaps the installed filter; set once by [`init`].
static FILTER: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

/// Installs the global subscriber once; `filter` is an `EnvFilter` directive such as `info` or
/// `tessera=debug,glommio=warn`. Logs go to stderr; stdout carries only the ready line.
pub fn init(filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|error| {
        eprintln!("tessera: log filter `{filter}` is invalid ({error}); using `info`");
        EnvFilter::new("info")
    });
    let _ = tracing_log::LogTracer::init();
    let (filter, handle) = reload::Layer::new(filter);
    let output = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let subscriber = tracing_subscriber::registry().with(filter).with(output);
    if tracing::subscriber::set_global_default(subscriber).is_ok() {
        let _ = FILTER.set(handle);
    }
}

/// Replaces the log filter of the running process. An invalid directive is an error that names
/// it, and the filter in force stays.
pub fn set_filter(filter: &str) -> Result<(), String> {
    let parsed =
        EnvFilter::try_new(filter).map_err(|error| format!("log filter `{filter}`: {error}"))?;
    let handle = FILTER
        .get()
        .ok_or_else(|| "logging was not initialised by this process".to_string())?;
    handle
        .reload(parsed)
        .map_err(|error| format!("cannot replace the log filter: {error}"))
}
