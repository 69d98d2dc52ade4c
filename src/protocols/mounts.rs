//! The mount table: which front-end serves which path prefix, in which namespace.
//!
//! | prefix          | front-end  | namespace        |
//! |-----------------|------------|------------------|
//! | `/cache/`       | Gradle     | `gradle`         |
//! | `/v1/cache/`    | Nx         | `nx`             |
//! | `/v8/artifacts` | Turborepo  | `turbo/TEAM`     |
//! | `/ccache/`      | ccache     | `ccache`         |
//! | `/`             | Bazel HTTP | `bazel[/PREFIX]` |
//!
//! The longest matching prefix wins, on a segment boundary (`/cache` matches `/cache` and
//! `/cache/x`, never `/cachex`). Bazel at `/` keeps `[/prefix]/ac|cas/<hash>` working for any
//! prefix that no other mount claims; a Bazel instance whose name collides with a mount
//! (`--remote_instance_name=cache`) is still reachable over gRPC, where no mount applies.
//! The table comes from the validated configuration (`config::mount`), which refuses two
//! mounts on one prefix with an error that names both.

use crate::config::mount::{MountConfig, MountProtocol, BUILT_IN_MOUNTS};

use super::backend::Namespace;

/// A front-end that can be mounted (the configuration's protocol names).
pub type FrontEnd = MountProtocol;

/// One row of the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// Normalised: starts with `/` unless it is the root (`""`), never ends with `/`.
    prefix: String,
    pub front_end: FrontEnd,
    /// The namespace the mount's requests act on; `None`: the front-end's own (`gradle`, …,
    /// or for Bazel and Turborepo the one derived from the path or team).
    pub namespace: Option<Namespace>,
}

impl Mount {
    /// A row of a validated configuration (`config::mount` checks prefixes, namespaces and
    /// that no two mounts claim one prefix).
    pub fn new(config: &MountConfig) -> Mount {
        Mount {
            prefix: config.normalized_prefix().to_owned(),
            front_end: config.protocol,
            namespace: config.namespace.clone().map(Namespace::new),
        }
    }

    /// The prefix as shown to people: `/` for the root, else with its trailing slash.
    pub fn display_prefix(&self) -> String {
        format!("{}/", self.prefix)
    }

    /// The rest of `path` after this prefix (`""` or starting with `/`), if it matches.
    fn rest<'p>(&self, path: &'p str) -> Option<&'p str> {
        let rest = path.strip_prefix(self.prefix.as_str())?;
        (rest.is_empty() || rest.starts_with('/')).then_some(rest)
    }
}

/// The routing table, longest prefix first.
#[derive(Clone, Debug)]
pub struct MountTable {
    mounts: Vec<Mount>,
}

impl MountTable {
    /// The table of a validated configuration's effective mounts (`Config::mounts`).
    pub fn new(configured: &[MountConfig]) -> MountTable {
        let mut mounts: Vec<Mount> = configured.iter().map(Mount::new).collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.prefix.len()));
        MountTable { mounts }
    }

    /// The mount serving `path` and the rest of the path after its prefix.
    pub fn route<'t, 'p>(&'t self, path: &'p str) -> Option<(&'t Mount, &'p str)> {
        self.mounts
            .iter()
            .find_map(|mount| mount.rest(path).map(|rest| (mount, rest)))
    }

    /// Every mount, longest prefix first.
    pub fn mounts(&self) -> &[Mount] {
        &self.mounts
    }

    /// The plain-text index `GET /` answers.
    pub fn index_text(&self) -> String {
        let mut text = String::from("Tessera build cache. Mounted here:\n");
        for mount in &self.mounts {
            let namespace = match (&mount.namespace, mount.front_end) {
                (Some(namespace), _) => namespace.to_string(),
                (None, FrontEnd::Bazel) => "bazel[/PREFIX]".into(),
                (None, FrontEnd::Turbo) => "turbo/TEAM".into(),
                (None, other) => other.name().into(),
            };
            text.push_str(&format!(
                "  {:<16} {:<8} namespace {}\n",
                mount.display_prefix(),
                mount.front_end.name(),
                namespace
            ));
        }
        text.push_str("  gRPC (REAPI v2) on the same port, namespace bazel[/INSTANCE]\n");
        text.push_str(
            "Also: /healthz, /ready, /metrics, /status.json (a browser gets a status page at /)\n",
        );
        text
    }
}

impl Default for MountTable {
    /// The built-in table.
    fn default() -> Self {
        let built_in: Vec<MountConfig> = BUILT_IN_MOUNTS
            .iter()
            .map(|&(prefix, protocol)| MountConfig {
                prefix: prefix.into(),
                protocol,
                namespace: None,
            })
            .collect();
        MountTable::new(&built_in)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routed(table: &MountTable, path: &str) -> Option<(FrontEnd, String)> {
        table
            .route(path)
            .map(|(mount, rest)| (mount.front_end, rest.to_owned()))
    }

    #[test]
    fn longest_prefix_wins_on_segment_boundaries() {
        let table = MountTable::default();
        let hex = "ab".repeat(16);
        assert_eq!(
            routed(&table, &format!("/cache/{hex}")),
            Some((FrontEnd::Gradle, format!("/{hex}")))
        );
        assert_eq!(
            routed(&table, "/v1/cache/123"),
            Some((FrontEnd::Nx, "/123".into()))
        );
        assert_eq!(
            routed(&table, "/v8/artifacts/status"),
            Some((FrontEnd::Turbo, "/status".into()))
        );
        assert_eq!(
            routed(&table, "/v8/artifacts"),
            Some((FrontEnd::Turbo, "".into()))
        );
        assert_eq!(
            routed(&table, "/ccache/ac/abc"),
            Some((FrontEnd::Ccache, "/ac/abc".into()))
        );
        // Not on a segment boundary: Bazel at the root takes it.
        assert_eq!(
            routed(&table, "/cachex/ac/abc"),
            Some((FrontEnd::Bazel, "/cachex/ac/abc".into()))
        );
        assert_eq!(
            routed(&table, "/team/ac/abc"),
            Some((FrontEnd::Bazel, "/team/ac/abc".into()))
        );
    }

    #[test]
    fn a_mount_may_move_a_front_end() {
        let mut configured: Vec<MountConfig> = BUILT_IN_MOUNTS
            .iter()
            .map(|&(prefix, protocol)| MountConfig {
                prefix: prefix.into(),
                protocol,
                namespace: None,
            })
            .collect();
        configured.push(MountConfig {
            prefix: "/gradle-ci/".into(),
            protocol: FrontEnd::Gradle,
            namespace: Some("gradle-ci".into()),
        });
        let table = MountTable::new(&configured);
        let (mount, rest) = table.route("/gradle-ci/abcd").unwrap();
        assert_eq!(mount.front_end, FrontEnd::Gradle);
        assert_eq!(mount.namespace.as_ref().unwrap().as_str(), "gradle-ci");
        assert_eq!(rest, "/abcd");
        assert!(table.index_text().contains("/gradle-ci/"));
    }
}
