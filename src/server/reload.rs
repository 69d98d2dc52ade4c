//! SIGHUP: re-read the configuration and apply what can change while the server runs.
//!
//! Live today: `log` (the tracing filter). Every other setting that differs from the one the
//! server started with is logged by name as taking effect only on restart, so an operator who
//! edited the file learns at once which of their edits are not in force yet.

use crate::config::Config;

/// Produces the configuration as it would be read at start now (file, environment, flags). Given
/// by `main`, which knows where the configuration came from.
pub type Reload = Box<dyn Fn() -> Result<Config, String> + Send>;

/// What a reload did, for logs and tests.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The new log filter, if it changed and was applied.
    pub log: Option<String>,
    /// Settings that changed but need a restart.
    pub restart_needed: Vec<&'static str>,
}

/// Re-reads the configuration with `reload`, applies the log filter, and updates `running` to
/// what is now in force. An unreadable or invalid configuration changes nothing.
pub fn reload(running: &mut Config, reload: &Reload) -> Result<Outcome, String> {
    let new = reload()?;
    let mut outcome = Outcome {
        log: None,
        restart_needed: restart_needed(running, &new),
    };
    if new.log != running.log {
        crate::logging::set_filter(&new.log)?;
        running.log = new.log.clone();
        outcome.log = Some(new.log);
    }
    Ok(outcome)
}

/// Runs [`reload`] and logs its outcome; the handler of SIGHUP.
pub fn reload_and_log(running: &mut Config, source: &Reload) {
    match reload(running, source) {
        Ok(outcome) => {
            match &outcome.log {
                Some(filter) => tracing::info!(log = %filter, "reloaded: log filter applied"),
                None => tracing::info!("reloaded: log filter unchanged"),
            }
            for setting in &outcome.restart_needed {
                tracing::warn!(
                    setting,
                    "changed in the configuration, takes effect only on restart"
                );
            }
        }
        Err(error) => {
            tracing::error!(%error, "reload failed; the running configuration stays in force")
        }
    }
}

/// The settings other than `log` whose value differs between `old` and `new`, by setting name
/// (every declared setting, from the configuration's own list), then `mount`,
/// `auth.read_through`, `s3.keys` and `auth.client_cert` if those tables changed. (The contents
/// of the key files and the revocation list are reloaded by `auth::reload`, and those of the
/// TLS files by `tls::reload`, not here.)
fn restart_needed(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut names: Vec<&'static str> = old
        .values
        .iter()
        .zip(&new.values)
        .filter(|((key, old), (_, new))| *key != "log" && old != new)
        .map(|((key, _), _)| *key)
        .collect();
    if old.mounts != new.mounts {
        names.push("mount");
    }
    if old.auth.read_through != new.auth.read_through {
        names.push("auth.read_through");
    }
    if old.s3.keys != new.s3.keys {
        names.push("s3.keys");
    }
    if old.auth.client_certs != new.auth.client_certs {
        names.push("auth.client_cert");
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Layers, SETTINGS};

    fn config(pairs: &[(&str, &str)]) -> Config {
        let mut layers = Layers::with_defaults();
        for (name, value) in pairs {
            layers.apply_flag(name, value).unwrap();
        }
        layers.validate().unwrap()
    }

    #[test]
    fn names_each_changed_setting_that_needs_a_restart_and_not_log() {
        let old = config(&[]);
        let new = config(&[
            ("max_connections", "5"),
            ("idle_timeout", "3s"),
            ("log", "debug"),
        ]);
        assert_eq!(
            restart_needed(&old, &new),
            ["max_connections", "idle_timeout"]
        );
        assert!(restart_needed(&old, &old.clone()).is_empty());
    }

    #[test]
    fn every_setting_but_log_is_checked() {
        // A setting added to config::SETTINGS must be added to restart_needed too. Each is set
        // to a valid non-default value and must be reported.
        let changed = [
            ("listen", "127.0.0.1:1"),
            ("grpc_listen", "127.0.0.1:2"),
            ("s3.listen", "127.0.0.1:3"),
            ("s3.buckets", "sccache"),
            ("s3.domain", "s3.example.com"),
            ("data", "/elsewhere"),
            ("max_size", "20GiB"),
            ("max_blob_size", "2GiB"),
            ("segment_size", "32MiB"),
            ("shards", "3"),
            ("executors", "3"),
            ("max_connections", "7"),
            ("durability", "strict"),
            ("sync_interval", "2s"),
            ("checkpoint_interval", "31s"),
            ("header_read_timeout", "11s"),
            ("idle_timeout", "121s"),
            ("body_stall_timeout", "31s"),
            ("write_stall_timeout", "31s"),
            ("drain_timeout", "31s"),
            ("drain_delay", "2s"),
            ("log_format", "json"),
            ("bazel_http_blake3", "true"),
            ("mount_defaults", "false"),
            ("tier.kind", "http"),
            ("tier.endpoint", "http://127.0.0.1:9"),
            ("tier.region", "eu-west-1"),
            ("tier.bucket", "b"),
            ("tier.prefix", "p"),
            ("tier.access_key", "a"),
            ("tier.secret_key", "s"),
            ("tier.virtual_host_style", "true"),
            ("tier.url", "http://127.0.0.1:9"),
            ("tier.credentials", "/gcs.json"),
            ("tier.account", "acct"),
            ("tier.account_key", "a2V5"),
            ("tier.write", "through"),
            ("tier.queue", "5"),
            ("tier.uploads", "7"),
            ("auth.public_keys", "/keys"),
            ("auth.jwks", "/jwks.json"),
            ("auth.revoked", "/revoked"),
            ("auth.audience", "ci"),
            ("auth.anonymous", "read"),
            ("auth.public_metrics", "true"),
            ("auth.rate", "10/s"),
            ("auth.burst", "5"),
            ("auth.s3_secret", "/s3.secret"),
            ("audit_log", "/audit.log"),
            ("tls_cert", "/cert.pem"),
            ("tls_key", "/key.pem"),
            ("tls_client_ca", "/ca.pem"),
            ("tls_required", "true"),
        ];
        let names: Vec<&str> = SETTINGS.iter().map(|s| s.key).collect();
        let mut expected: Vec<&str> = names.into_iter().filter(|n| *n != "log").collect();
        expected.sort_unstable();
        let mut listed: Vec<&str> = changed.iter().map(|(n, _)| *n).collect();
        listed.sort_unstable();
        assert_eq!(listed, expected, "a setting is missing from this test");
        // The TLS settings are valid only with a certificate and key: those are in both.
        let tls = [("tls_cert", "/c.pem"), ("tls_key", "/k.pem")];
        for (name, value) in changed {
            let base: &[(&str, &str)] = if name.starts_with("tls_") { &tls } else { &[] };
            let old = config(base);
            let mut pairs = base.to_vec();
            pairs.push((name, value));
            let new = config(&pairs);
            let needed = restart_needed(&old, &new);
            assert_eq!(needed.first(), Some(&name), "{name}: {needed:?}");
        }
    }

    #[test]
    fn a_failed_reload_changes_nothing() {
        let mut running = config(&[]);
        let failing: Reload = Box::new(|| Err("setting `log`: bad".into()));
        assert_eq!(
            reload(&mut running, &failing).unwrap_err(),
            "setting `log`: bad"
        );
        assert_eq!(running.log, "info");
    }
}
