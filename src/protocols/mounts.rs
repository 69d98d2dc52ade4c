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
//! Two mounts on one prefix are an error that names both.

use std::fmt;

use super::backend::Namespace;

/// A front-end that can be mounted.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FrontEnd {
    Bazel,
    Gradle,
    Nx,
    Turbo,
    Ccache,
}

impl FrontEnd {
    pub fn name(self) -> &'static str {
        match self {
            FrontEnd::Bazel => "bazel",
            FrontEnd::Gradle => "gradle",
            FrontEnd::Nx => "nx",
            FrontEnd::Turbo => "turbo",
            FrontEnd::Ccache => "ccache",
        }
    }
}

/// One row of the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// Normalised: starts with `/` unless it is the root (`""`), never ends with `/`.
    prefix: String,
    pub front_end: FrontEnd,
    /// The namespace the mount's requests act on; `None`: the front-end's own (`gradle`, …,
    /// or for Bazel and Turborepo the one derived from the path or team).
    pub namespace: Option<Namespace>,
    /// Where the row came from, for error messages (`built-in`, `config file entry 2`).
    pub origin: String,
}

impl Mount {
    /// A mount at `prefix` (a trailing `/` is ignored: `/cache/` and `/cache` are one prefix).
    pub fn new(
        prefix: &str,
        front_end: FrontEnd,
        namespace: Option<Namespace>,
        origin: impl Into<String>,
    ) -> Result<Mount, MountError> {
        if !prefix.starts_with('/') {
            return Err(MountError::BadPrefix {
                prefix: prefix.to_owned(),
            });
        }
        Ok(Mount {
            prefix: prefix.trim_end_matches('/').to_owned(),
            front_end,
            namespace,
            origin: origin.into(),
        })
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

/// Why a table cannot be built.
#[derive(Debug, PartialEq, Eq)]
pub enum MountError {
    BadPrefix { prefix: String },
    SamePrefix { first: String, second: String },
}

impl fmt::Display for MountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MountError::BadPrefix { prefix } => {
                write!(f, "mount prefix `{prefix}` must start with `/`")
            }
            MountError::SamePrefix { first, second } => {
                write!(f, "{first} and {second} claim the same prefix")
            }
        }
    }
}

impl std::error::Error for MountError {}

/// The routing table, longest prefix first.
#[derive(Clone, Debug)]
pub struct MountTable {
    mounts: Vec<Mount>,
}

impl MountTable {
    /// The built-in table.
    pub fn defaults() -> Vec<Mount> {
        [
            ("/cache/", FrontEnd::Gradle),
            ("/v1/cache/", FrontEnd::Nx),
            ("/v8/artifacts", FrontEnd::Turbo),
            ("/ccache/", FrontEnd::Ccache),
            ("/", FrontEnd::Bazel),
        ]
        .into_iter()
        .map(|(prefix, front_end)| {
            Mount::new(prefix, front_end, None, "built-in").expect("valid built-in prefix")
        })
        .collect()
    }

    /// A table of `mounts`; two on one prefix are an error naming both.
    pub fn new(mut mounts: Vec<Mount>) -> Result<MountTable, MountError> {
        for (i, a) in mounts.iter().enumerate() {
            if let Some(b) = mounts[i + 1..].iter().find(|b| b.prefix == a.prefix) {
                let describe = |m: &Mount| {
                    format!(
                        "mount `{}` ({}, {})",
                        m.display_prefix(),
                        m.front_end.name(),
                        m.origin
                    )
                };
                return Err(MountError::SamePrefix {
                    first: describe(a),
                    second: describe(b),
                });
            }
        }
        mounts.sort_by_key(|m| std::cmp::Reverse(m.prefix.len()));
        Ok(MountTable { mounts })
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
        text.push_str("Also: /healthz, /metrics\n");
        text
    }
}

impl Default for MountTable {
    fn default() -> Self {
        MountTable::new(MountTable::defaults()).expect("built-in mounts do not overlap")
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
    fn two_mounts_on_one_prefix_are_an_error_naming_both() {
        let mut mounts = MountTable::defaults();
        mounts.push(Mount::new("/cache", FrontEnd::Nx, None, "config file entry 1").unwrap());
        let error = MountTable::new(mounts).unwrap_err().to_string();
        assert!(error.contains("gradle, built-in"), "{error}");
        assert!(error.contains("nx, config file entry 1"), "{error}");
    }

    #[test]
    fn a_prefix_must_be_absolute() {
        assert_eq!(
            Mount::new("cache/", FrontEnd::Gradle, None, "x").unwrap_err(),
            MountError::BadPrefix {
                prefix: "cache/".into()
            }
        );
    }

    #[test]
    fn a_mount_may_move_a_front_end() {
        let mut mounts = MountTable::defaults();
        mounts.push(
            Mount::new(
                "/gradle-ci/",
                FrontEnd::Gradle,
                Some(Namespace::new("gradle-ci")),
                "config file entry 1",
            )
            .unwrap(),
        );
        let table = MountTable::new(mounts).unwrap();
        let (mount, rest) = table.route("/gradle-ci/abcd").unwrap();
        assert_eq!(mount.front_end, FrontEnd::Gradle);
        assert_eq!(mount.namespace.as_ref().unwrap().as_str(), "gradle-ci");
        assert_eq!(rest, "/abcd");
        assert!(table.index_text().contains("/gradle-ci/"));
    }
}
