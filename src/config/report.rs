//! `tessera config`: the effective configuration as TOML-like text, each value followed by where
//! it came from.
//!
//! ```text
//! listen = "127.0.0.1:8080"                  # default
//! max_size = "20GiB"                         # file /etc/tessera/tessera.toml
//! idle_timeout = "2s"                        # env TESSERA_IDLE_TIMEOUT
//! shards = 4                                 # flag --shards
//!
//! [[mount]]                                  # built-in
//! prefix = "/cache/"
//! protocol = "gradle"
//! ```

use std::fmt::Write as _;

use super::mount::MountOrigin;
use super::settings::Kind;
use super::{parse_bool, Config, Layers, Source};

/// What `tessera config` shows for a secret that is set (the value itself is never printed).
pub(super) const HIDDEN: &str = "<hidden>";

/// Column where the origin comment starts (values longer than this push it right).
const ORIGIN_COLUMN: usize = 44;

pub(super) fn render(layers: &Layers, config: &Config) -> String {
    let mut out = String::from(
        "# The effective configuration: every setting, its value and where it came from\n\
         # (default, file, env or flag; later layers override earlier ones).\n\n",
    );
    for (index, setting) in layers.settings.iter().enumerate() {
        let (value, source) = &layers.values[index];
        let line = format!("{} = {}", setting.key, toml_text(setting.kind, value));
        let origin = match source {
            Source::Default if value.is_empty() => "default (unset)".to_string(),
            Source::Default => "default".to_string(),
            Source::File => format!("file {}", layers.file.as_deref().unwrap_or("")),
            Source::Env => format!("env {}", setting.env_var()),
            Source::Flag => format!("flag --{}", setting.flag()),
        };
        line_with_comment(&mut out, &line, origin.trim_end());
    }
    out.push_str(
        "\n# The mount table: built-in entries (unless mount_defaults = false), then the\n",
    );
    out.push_str("# config file's [[mount]] entries (file-only).\n");
    if config.mounts.is_empty() {
        out.push_str("# (empty)\n");
    }
    for (index, mount) in config.mounts.iter().enumerate() {
        let origin = MountOrigin::of(config.mount_defaults, index);
        out.push('\n');
        line_with_comment(&mut out, "[[mount]]", &origin.to_string());
        let _ = writeln!(out, "prefix = {}", quoted(&mount.prefix));
        let _ = writeln!(out, "protocol = {}", quoted(mount.protocol.name()));
        match &mount.namespace {
            Some(namespace) => {
                let _ = writeln!(out, "namespace = {}", quoted(namespace));
            }
            None => out.push_str("# namespace: the protocol's own\n"),
        }
    }
    for entry in &config.auth.read_through {
        out.push_str("\n[[auth.read_through]]                      # file\n");
        let _ = writeln!(out, "namespace = {}", quoted(&entry.namespace));
        let from: Vec<String> = entry.from.iter().map(|f| quoted(f)).collect();
        let _ = writeln!(out, "from = [{}]", from.join(", "));
    }
    for entry in &config.auth.client_certs {
        out.push_str("\n[[auth.client_cert]]                       # file\n");
        let _ = writeln!(out, "subject = {}", quoted(&entry.subject));
        for (name, globs) in [("read", &entry.read), ("write", &entry.write)] {
            let globs: Vec<String> = globs.iter().map(|g| quoted(g)).collect();
            let _ = writeln!(out, "{name} = [{}]", globs.join(", "));
        }
        let _ = writeln!(out, "admin = {}", entry.admin);
    }
    out
}

fn line_with_comment(out: &mut String, line: &str, comment: &str) {
    let _ = writeln!(out, "{line:<ORIGIN_COLUMN$} # {comment}");
}

/// The value as TOML: numbers and booleans bare, everything else (and the unset value) quoted.
fn toml_text(kind: Kind, value: &str) -> String {
    match kind {
        Kind::Secret if !value.is_empty() => quoted(HIDDEN),
        Kind::Count { .. } if !value.is_empty() => value.to_string(),
        Kind::Bool => match parse_bool(value) {
            Some(b) => b.to_string(),
            None => quoted(value),
        },
        Kind::BucketList => {
            let items: Vec<String> = value
                .split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(quoted)
                .collect();
            format!("[{}]", items.join(", "))
        }
        _ => quoted(value),
    }
}

/// A TOML basic string, escaped.
fn quoted(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}
