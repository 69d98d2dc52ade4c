//! The mount table: which front-end protocol serves which HTTP path prefix, in which namespace.
//!
//! The effective table is the built-in one ([`BUILT_IN_MOUNTS`], unless `mount_defaults = false`)
//! followed by the config file's `[[mount]]` entries, in order:
//!
//! ```toml
//! mount_defaults = true        # false drops the built-in table
//!
//! [[mount]]
//! prefix = "/gradle-cache/"    # must start with '/'; a trailing '/' is not significant
//! protocol = "gradle"          # bazel, gradle, nx, turbo or ccache
//! namespace = "gradle-ci"      # optional; default: the protocol's own namespace
//! ```
//!
//! Two mounts may not claim the same prefix (`/x` and `/x/` are the same prefix), built-in or not:
//! start-up stops with a message naming both.

use std::collections::HashMap;
use std::fmt;

use serde::Deserialize;

use super::ConfigError;

/// Most entries in the effective mount table. Front-ends match a request's path against the table,
/// so its length is work per request; a few dozen is already more than any deployment needs.
pub const MOUNTS_MAX: usize = 64;

/// Longest mount prefix, in bytes. Far above any real prefix, and within the HTTP request-line
/// limit (8 KiB) so a request under the longest prefix can still be sent.
pub const MOUNT_PREFIX_BYTES_MAX: usize = 256;

/// Longest namespace name, in bytes. Namespaces are hashed into every key id of the store, so a
/// short bound keeps the per-request work small; 128 fits any sensible team or CI-job name.
pub const NAMESPACE_BYTES_MAX: usize = 128;

/// The client protocols a mount can serve.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountProtocol {
    /// Bazel's HTTP cache: `/ac/<hash>`, `/cas/<hash>`.
    Bazel,
    /// Gradle's HTTP build cache: `<prefix><key>`.
    Gradle,
    /// Nx's custom remote cache: `<prefix><hash>`.
    Nx,
    /// Turborepo's remote cache: `/v8/artifacts/<hash>`.
    Turbo,
    /// ccache's HTTP storage.
    Ccache,
}

impl MountProtocol {
    /// Every protocol, in the order the README lists them.
    pub const ALL: [MountProtocol; 5] = [
        MountProtocol::Bazel,
        MountProtocol::Gradle,
        MountProtocol::Nx,
        MountProtocol::Turbo,
        MountProtocol::Ccache,
    ];

    /// The protocol's name in the config file.
    pub fn name(self) -> &'static str {
        match self {
            MountProtocol::Bazel => "bazel",
            MountProtocol::Gradle => "gradle",
            MountProtocol::Nx => "nx",
            MountProtocol::Turbo => "turbo",
            MountProtocol::Ccache => "ccache",
        }
    }
}

impl fmt::Display for MountProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One entry of the mount table.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MountConfig {
    /// The path prefix, starting with `/`; a trailing `/` is not significant.
    pub prefix: String,
    /// The protocol that serves requests under the prefix.
    pub protocol: MountProtocol,
    /// The namespace objects are stored in; `None`: the protocol's own namespace.
    pub namespace: Option<String>,
}

impl MountConfig {
    /// The prefix without its trailing `/`s (`""` for the root mount `/`): two mounts with the
    /// same normalized prefix claim the same requests.
    pub fn normalized_prefix(&self) -> &str {
        self.prefix.trim_end_matches('/')
    }
}

/// The built-in mount table: each protocol at the path its clients use by default.
pub const BUILT_IN_MOUNTS: [(&str, MountProtocol); 5] = [
    ("/cache/", MountProtocol::Gradle),
    ("/v1/cache/", MountProtocol::Nx),
    ("/v8/artifacts", MountProtocol::Turbo),
    ("/ccache/", MountProtocol::Ccache),
    ("/", MountProtocol::Bazel),
];

/// Where a mount of the effective table came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MountOrigin {
    BuiltIn,
    /// The n-th `[[mount]]` of the config file, counting from 1.
    FileEntry(usize),
}

impl fmt::Display for MountOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MountOrigin::BuiltIn => f.write_str("built-in"),
            MountOrigin::FileEntry(n) => write!(f, "config file entry {n}"),
        }
    }
}

impl MountOrigin {
    /// The origin of `mounts[index]` in an effective table built with `defaults`.
    pub fn of(defaults: bool, index: usize) -> MountOrigin {
        let built_in = if defaults { BUILT_IN_MOUNTS.len() } else { 0 };
        if index < built_in {
            MountOrigin::BuiltIn
        } else {
            MountOrigin::FileEntry(index - built_in + 1)
        }
    }
}

/// The effective mount table: the built-in mounts if `defaults`, then the file's `[[mount]]`
/// `entries`, each checked, with no two claiming one prefix.
pub fn effective_mounts(
    defaults: bool,
    entries: &[toml::Value],
) -> Result<Vec<MountConfig>, ConfigError> {
    let mut mounts = Vec::new();
    if defaults {
        mounts.extend(
            BUILT_IN_MOUNTS
                .iter()
                .map(|&(prefix, protocol)| MountConfig {
                    prefix: prefix.to_string(),
                    protocol,
                    namespace: None,
                }),
        );
    }
    for (i, entry) in entries.iter().enumerate() {
        let origin = MountOrigin::FileEntry(i + 1);
        let mount: MountConfig = entry
            .clone()
            .try_into()
            .map_err(|e: toml::de::Error| mount_error(format!("{origin}: {}", e.message())))?;
        check_mount(&mount).map_err(|problem| {
            mount_error(format!("{} ({origin}): {problem}", describe(&mount)))
        })?;
        mounts.push(mount);
    }
    if mounts.len() > MOUNTS_MAX {
        return Err(mount_error(format!(
            "{} mounts (built-in and configured); at most {MOUNTS_MAX} are allowed",
            mounts.len()
        )));
    }
    check_distinct_prefixes(defaults, &mounts)?;
    Ok(mounts)
}

fn mount_error(message: String) -> ConfigError {
    ConfigError {
        setting: "mount".into(),
        message,
    }
}

/// "mount `/cache/`", for messages.
fn describe(mount: &MountConfig) -> String {
    format!("mount `{}`", mount.prefix)
}

fn check_mount(mount: &MountConfig) -> Result<(), String> {
    let prefix = &mount.prefix;
    if !prefix.starts_with('/') {
        return Err("the prefix must start with '/'".into());
    }
    if prefix.len() > MOUNT_PREFIX_BYTES_MAX {
        return Err(format!(
            "the prefix is {} bytes long; at most {MOUNT_PREFIX_BYTES_MAX} are allowed",
            prefix.len()
        ));
    }
    if let Some(bad) = prefix
        .chars()
        .find(|c| !c.is_ascii_graphic() || matches!(c, '?' | '#' | '%'))
    {
        return Err(format!(
            "the prefix contains {bad:?}; it must be a plain path (ASCII, no spaces, '?', '#' or '%')"
        ));
    }
    if prefix.contains("//") {
        return Err("the prefix contains an empty path segment (`//`)".into());
    }
    if let Some(namespace) = &mount.namespace {
        check_namespace(namespace)
            .map_err(|problem| format!("namespace `{namespace}` {problem}"))?;
    }
    Ok(())
}

/// Checks a namespace name: 1 to [`NAMESPACE_BYTES_MAX`] bytes of ASCII letters, digits and
/// `-_./`, not starting or ending with `/`. Returns what is wrong, completing "namespace `x` …".
pub fn check_namespace(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("is empty".into());
    }
    if name.len() > NAMESPACE_BYTES_MAX {
        return Err(format!(
            "is {} bytes long; at most {NAMESPACE_BYTES_MAX} are allowed",
            name.len()
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/')))
    {
        return Err(format!(
            "contains {bad:?}; only ASCII letters, digits and - _ . / are allowed"
        ));
    }
    if name.starts_with('/') || name.ends_with('/') {
        return Err("starts or ends with '/'".into());
    }
    Ok(())
}

fn check_distinct_prefixes(defaults: bool, mounts: &[MountConfig]) -> Result<(), ConfigError> {
    let mut claimed: HashMap<&str, usize> = HashMap::new();
    for (index, mount) in mounts.iter().enumerate() {
        if let Some(&first) = claimed.get(mount.normalized_prefix()) {
            let owner = &mounts[first];
            return Err(mount_error(format!(
                "{} ({}, {}) and {} ({}, {}) claim the same prefix",
                describe(owner),
                owner.protocol,
                MountOrigin::of(defaults, first),
                describe(mount),
                mount.protocol,
                MountOrigin::of(defaults, index),
            )));
        }
        claimed.insert(mount.normalized_prefix(), index);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `[[mount]]` entries of a TOML document.
    fn entries(toml: &str) -> Vec<toml::Value> {
        let mut table: toml::Table = toml.parse().unwrap();
        match table.remove("mount") {
            Some(toml::Value::Array(entries)) => entries,
            other => panic!("no [[mount]] array: {other:?}"),
        }
    }

    #[test]
    fn the_built_in_table_comes_first_then_the_file_entries() {
        let table = effective_mounts(
            true,
            &entries(
                "[[mount]]\nprefix = \"/gradle-cache/\"\nprotocol = \"gradle\"\n\
                 namespace = \"gradle-ci\"\n",
            ),
        )
        .unwrap();
        let listed: Vec<(&str, MountProtocol)> = table
            .iter()
            .map(|m| (m.prefix.as_str(), m.protocol))
            .collect();
        assert_eq!(
            listed,
            [
                ("/cache/", MountProtocol::Gradle),
                ("/v1/cache/", MountProtocol::Nx),
                ("/v8/artifacts", MountProtocol::Turbo),
                ("/ccache/", MountProtocol::Ccache),
                ("/", MountProtocol::Bazel),
                ("/gradle-cache/", MountProtocol::Gradle),
            ]
        );
        assert_eq!(table[5].namespace.as_deref(), Some("gradle-ci"));
        assert!(table[..5].iter().all(|m| m.namespace.is_none()));
        assert_eq!(MountOrigin::of(true, 4), MountOrigin::BuiltIn);
        assert_eq!(MountOrigin::of(true, 5), MountOrigin::FileEntry(1));
        assert_eq!(MountOrigin::of(false, 0), MountOrigin::FileEntry(1));
    }

    #[test]
    fn without_defaults_only_the_file_entries_remain() {
        let table = effective_mounts(
            false,
            &entries("[[mount]]\nprefix = \"/cache\"\nprotocol = \"nx\"\n"),
        )
        .unwrap();
        assert_eq!(
            table,
            [MountConfig {
                prefix: "/cache".into(),
                protocol: MountProtocol::Nx,
                namespace: None
            }]
        );
        assert!(effective_mounts(false, &[]).unwrap().is_empty());
    }

    #[test]
    fn two_mounts_on_one_prefix_are_an_error_naming_both() {
        // A configured `/cache` collides with the built-in `/cache/` (trailing '/' ignored).
        let error = effective_mounts(
            true,
            &entries(
                "[[mount]]\nprefix = \"/gradle-cache/\"\nprotocol = \"gradle\"\n\
                 [[mount]]\nprefix = \"/cache\"\nprotocol = \"nx\"\n",
            ),
        )
        .unwrap_err();
        assert_eq!(error.setting, "mount");
        assert_eq!(
            error.message,
            "mount `/cache/` (gradle, built-in) and mount `/cache` (nx, config file entry 2) \
             claim the same prefix"
        );
        // Two configured entries, without the built-ins.
        let error = effective_mounts(
            false,
            &entries(
                "[[mount]]\nprefix = \"/x/\"\nprotocol = \"turbo\"\n\
                 [[mount]]\nprefix = \"/y\"\nprotocol = \"nx\"\n\
                 [[mount]]\nprefix = \"/x\"\nprotocol = \"ccache\"\n",
            ),
        )
        .unwrap_err();
        assert_eq!(
            error.message,
            "mount `/x/` (turbo, config file entry 1) and mount `/x` (ccache, config file \
             entry 3) claim the same prefix"
        );
        // The root: `/` built in, `/` configured again.
        let error = effective_mounts(
            true,
            &entries("[[mount]]\nprefix = \"/\"\nprotocol = \"bazel\"\n"),
        )
        .unwrap_err();
        assert!(
            error.message.contains("(bazel, built-in)")
                && error.message.contains("(bazel, config file entry 1)"),
            "{error}"
        );
    }

    #[test]
    fn bad_entries_are_errors_naming_the_entry() {
        let cases = [
            (
                "prefix = \"cache/\"\nprotocol = \"nx\"",
                "must start with '/'",
            ),
            ("prefix = \"/a b/\"\nprotocol = \"nx\"", "' '"),
            ("prefix = \"/a?b\"\nprotocol = \"nx\"", "'?'"),
            (
                "prefix = \"/a//b/\"\nprotocol = \"nx\"",
                "empty path segment",
            ),
            (
                "prefix = \"/x/\"\nprotocol = \"maven\"",
                "unknown variant `maven`",
            ),
            ("prefix = \"/x/\"", "missing field `protocol`"),
            ("protocol = \"nx\"", "missing field `prefix`"),
            (
                "prefix = \"/x/\"\nprotocol = \"nx\"\nprotcol = \"nx\"",
                "unknown field `protcol`",
            ),
            (
                "prefix = \"/x/\"\nprotocol = \"nx\"\nnamespace = \"\"",
                "is empty",
            ),
            (
                "prefix = \"/x/\"\nprotocol = \"nx\"\nnamespace = \"/team\"",
                "starts or ends with '/'",
            ),
            ("prefix = 7\nprotocol = \"nx\"", "invalid type"),
        ];
        for (body, expected) in cases {
            let toml =
                format!("[[mount]]\nprefix = \"/ok/\"\nprotocol = \"nx\"\n[[mount]]\n{body}\n");
            let error = effective_mounts(false, &entries(&toml)).unwrap_err();
            assert_eq!(error.setting, "mount", "{body}");
            assert!(
                error.message.contains("config file entry 2") && error.message.contains(expected),
                "{body:?}: {error}"
            );
        }
        let long = format!("/{}", "p".repeat(MOUNT_PREFIX_BYTES_MAX));
        let toml = format!("[[mount]]\nprefix = \"{long}\"\nprotocol = \"nx\"\n");
        let error = effective_mounts(false, &entries(&toml)).unwrap_err();
        assert!(error.message.contains("at most 256"), "{error}");
    }

    #[test]
    fn the_table_is_bounded() {
        let mut toml = String::new();
        for i in 0..=MOUNTS_MAX - BUILT_IN_MOUNTS.len() {
            toml.push_str(&format!(
                "[[mount]]\nprefix = \"/m{i}/\"\nprotocol = \"nx\"\n"
            ));
        }
        let error = effective_mounts(true, &entries(&toml)).unwrap_err();
        assert!(error.message.contains("at most 64"), "{error}");
        let fits = effective_mounts(false, &entries(&toml)).unwrap();
        assert_eq!(fits.len(), MOUNTS_MAX - BUILT_IN_MOUNTS.len() + 1);
    }

    #[test]
    fn namespace_names_are_checked() {
        for good in [
            "gradle-ci",
            "a",
            "team/a",
            "v1.2_x",
            &"n".repeat(NAMESPACE_BYTES_MAX),
        ] {
            assert_eq!(check_namespace(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "/a",
            "a/",
            "/",
            "a b",
            "a:b",
            "é",
            "a\nb",
            &"n".repeat(NAMESPACE_BYTES_MAX + 1),
        ] {
            assert!(check_namespace(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn every_protocol_is_spelled_in_lowercase_in_the_file() {
        for protocol in MountProtocol::ALL {
            let toml = format!("[[mount]]\nprefix = \"/p/\"\nprotocol = \"{protocol}\"\n");
            let table = effective_mounts(false, &entries(&toml)).unwrap();
            assert_eq!(table[0].protocol, protocol);
        }
    }
}
