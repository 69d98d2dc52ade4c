//! The namespace table of one shard: namespace name ↔ the 4-byte tag its records carry.
//!
//! Records name their namespace by a tag (record header offset 12, `FORMAT.md`) so that the
//! store can count and purge a namespace without storing its name in every record. Tags are
//! handed out in order (1, 2, 3, …; 0 is [`NAMESPACE_UNTAGGED`]) the first time a shard sees a
//! namespace, so two names can never share a tag in a shard (a hash of the name could collide,
//! and a purge would then delete another namespace's entries). Different shards may give one
//! name different tags: every per-namespace operation runs on each shard's owner, which
//! translates the name itself.
//!
//! The table lives in `shard-<i>/namespaces`, an append-only file:
//!
//! ```text
//! "TSNS" | u16 version (1) | u16 reserved (0)
//! then per name: u32 tag | u16 name_len | name (UTF-8) | u64 checksum64(tag ‖ name_len ‖ name)
//! ```
//!
//! A new name is appended and the file fsynced *before* the first record with its tag is
//! reserved, so no durable record can carry a tag the table lost. A torn or damaged tail
//! (a crash during an append) ends the load and is cut off, so the next append is readable.
//! Restart reads this file only: its size is bounded by [`NAMESPACES_PER_SHARD_MAX`] names,
//! not by the number of records.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::checkpoint::sync_dir;
use super::error::StoreError;
use super::limits::{NAMESPACES_PER_SHARD_MAX, NAMESPACE_NAME_BYTES_MAX};
use super::record::{checksum64, NAMESPACE_UNTAGGED};

/// File name of the table inside a shard directory.
pub const NAMESPACES_FILE: &str = "namespaces";
const MAGIC: [u8; 4] = *b"TSNS";
const VERSION: u16 = 1;
const FILE_HEADER_BYTES: usize = 8;
/// Bytes of one entry besides its name: tag, name length, checksum.
const ENTRY_FIXED_BYTES: usize = 4 + 2 + 8;

/// The name reported for records without a (known) tag: written before namespace tags existed,
/// or by a caller that named no namespace.
pub const UNKNOWN_NAMESPACE: &str = "unknown";

/// One shard's table. Owned by the shard's thread like the rest of the shard.
pub struct NamespaceTable {
    path: PathBuf,
    by_name: HashMap<String, u32>,
    names: HashMap<u32, String>,
    next_tag: u32,
    /// Open for appends once the file exists.
    file: Option<File>,
}

fn encode_entry(tag: u32, name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(ENTRY_FIXED_BYTES + name.len());
    out.extend_from_slice(&tag.to_le_bytes());
    out.extend_from_slice(&(name.len() as u16).to_le_bytes());
    out.extend_from_slice(name.as_bytes());
    let sum = checksum64(&[&out]);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

/// Decodes the entries of a table file; returns them and the length of the valid prefix.
fn decode(bytes: &[u8]) -> (Vec<(u32, String)>, usize) {
    let mut entries = Vec::new();
    if bytes.len() < FILE_HEADER_BYTES
        || bytes[..4] != MAGIC
        || bytes[4..6] != VERSION.to_le_bytes()
    {
        return (entries, 0);
    }
    let mut at = FILE_HEADER_BYTES;
    loop {
        let rest = &bytes[at..];
        if rest.len() < ENTRY_FIXED_BYTES {
            break;
        }
        let tag = u32::from_le_bytes(rest[..4].try_into().expect("4"));
        let len = usize::from(u16::from_le_bytes(rest[4..6].try_into().expect("2")));
        let sum_at = 6 + len;
        if sum_at + 8 > rest.len() {
            break;
        }
        let stored = u64::from_le_bytes(rest[sum_at..sum_at + 8].try_into().expect("8"));
        if checksum64(&[&rest[..sum_at]]) != stored || tag == NAMESPACE_UNTAGGED {
            break;
        }
        let Ok(name) = std::str::from_utf8(&rest[6..sum_at]) else {
            break;
        };
        entries.push((tag, name.to_owned()));
        at += sum_at + 8;
    }
    (entries, at)
}

impl NamespaceTable {
    /// Loads `dir/namespaces` (none yet: an empty table), cutting off a torn tail.
    pub fn load(dir: &Path) -> Result<NamespaceTable, StoreError> {
        let path = dir.join(NAMESPACES_FILE);
        let mut table = NamespaceTable {
            path: path.clone(),
            by_name: HashMap::new(),
            names: HashMap::new(),
            next_tag: NAMESPACE_UNTAGGED + 1,
            file: None,
        };
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(table),
            Err(e) => return Err(StoreError::io("read namespace table", &path, e)),
        };
        let (entries, valid) = decode(&bytes);
        for (tag, name) in entries {
            table.next_tag = table.next_tag.max(tag.saturating_add(1));
            table.by_name.insert(name.clone(), tag);
            table.names.insert(tag, name);
        }
        if valid < FILE_HEADER_BYTES {
            // Not even a header: a creation that a crash interrupted. Start the file again.
            std::fs::remove_file(&path)
                .map_err(|e| StoreError::io("remove damaged namespace table", &path, e))?;
            return Ok(table);
        }
        let file = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| StoreError::io("open namespace table", &path, e))?;
        if valid < bytes.len() {
            tracing::warn!(path = %path.display(), valid, len = bytes.len(),
                "namespace table has a torn or damaged tail; cut off");
            file.set_len(valid as u64)
                .and_then(|()| file.sync_all())
                .map_err(|e| StoreError::io("truncate namespace table", &path, e))?;
        }
        table.file = Some(file);
        Ok(table)
    }

    /// The tag of `name`, if this shard has one.
    pub fn tag_of(&self, name: &str) -> Option<u32> {
        self.by_name.get(name).copied()
    }

    /// The name of `tag`; [`UNKNOWN_NAMESPACE`] for the untagged and for a tag the table lost.
    pub fn name_of(&self, tag: u32) -> &str {
        self.names
            .get(&tag)
            .map_or(UNKNOWN_NAMESPACE, String::as_str)
    }

    /// The tag of `name`, given one (durably recorded) if it has none yet. An empty name is
    /// the untagged namespace.
    pub fn tag_or_assign(&mut self, name: &str) -> Result<u32, StoreError> {
        if name.is_empty() {
            return Ok(NAMESPACE_UNTAGGED);
        }
        if let Some(tag) = self.tag_of(name) {
            return Ok(tag);
        }
        if name.len() > NAMESPACE_NAME_BYTES_MAX {
            return Err(StoreError::NamespaceTooLong {
                len: name.len(),
                max: NAMESPACE_NAME_BYTES_MAX,
            });
        }
        if self.names.len() >= NAMESPACES_PER_SHARD_MAX {
            return Err(StoreError::NamespaceTableFull {
                max: NAMESPACES_PER_SHARD_MAX,
            });
        }
        let tag = self.next_tag;
        self.append(&encode_entry(tag, name))?;
        self.next_tag += 1;
        self.by_name.insert(name.to_owned(), tag);
        self.names.insert(tag, name.to_owned());
        Ok(tag)
    }

    /// Appends an entry and makes it durable (creating the file with its header first).
    fn append(&mut self, entry: &[u8]) -> Result<(), StoreError> {
        let path = &self.path;
        let no_space = |op| move |e| StoreError::io_or_no_space(op, path, e, entry.len() as u64);
        if self.file.is_none() {
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
                .map_err(no_space("create namespace table"))?;
            let mut header = [0u8; FILE_HEADER_BYTES];
            header[..4].copy_from_slice(&MAGIC);
            header[4..6].copy_from_slice(&VERSION.to_le_bytes());
            file.write_all(&header)
                .and_then(|()| file.sync_all())
                .map_err(no_space("write namespace table"))?;
            sync_dir(path.parent().expect("a shard directory"))?;
            self.file = Some(file);
        }
        let file = self.file.as_ref().expect("opened above");
        let end = file
            .metadata()
            .map_err(|e| StoreError::io("stat namespace table", path, e))?
            .len();
        let written = file
            .write_all_at(entry, end)
            .and_then(|()| file.sync_data());
        if let Err(error) = written {
            // Whatever part of the entry reached the file fails its checksum and is cut off at
            // the next load; cut it now so that a later append stays readable.
            let _ = file.set_len(end);
            return Err(no_space("append namespace table")(error));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_survive_a_reload_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let mut table = NamespaceTable::load(dir.path()).unwrap();
        assert_eq!(table.tag_or_assign("").unwrap(), NAMESPACE_UNTAGGED);
        let gradle = table.tag_or_assign("gradle").unwrap();
        let turbo = table.tag_or_assign("turbo/team").unwrap();
        assert_ne!(gradle, turbo);
        assert_eq!(table.tag_or_assign("gradle").unwrap(), gradle);
        drop(table);
        // A crash in the middle of a third append.
        let path = dir.path().join(NAMESPACES_FILE);
        let torn = &encode_entry(9, "nx")[..7];
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(torn).unwrap();
        drop(file);
        let len_with_tail = std::fs::metadata(&path).unwrap().len();
        let mut table = NamespaceTable::load(dir.path()).unwrap();
        assert_eq!(table.tag_of("gradle"), Some(gradle));
        assert_eq!(table.name_of(turbo), "turbo/team");
        assert_eq!(table.tag_of("nx"), None);
        assert_eq!(table.name_of(9), UNKNOWN_NAMESPACE);
        assert!(std::fs::metadata(&path).unwrap().len() < len_with_tail);
        let nx = table.tag_or_assign("nx").unwrap();
        assert!(nx > turbo, "tags are never reused");
        let table = NamespaceTable::load(dir.path()).unwrap();
        assert_eq!(
            table.tag_of("nx"),
            Some(nx),
            "the append after the cut is readable"
        );
    }

    #[test]
    fn names_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let mut table = NamespaceTable::load(dir.path()).unwrap();
        let long = "n".repeat(NAMESPACE_NAME_BYTES_MAX + 1);
        assert!(matches!(
            table.tag_or_assign(&long),
            Err(StoreError::NamespaceTooLong { .. })
        ));
        // The bound on the count, checked without writing thousands of fsynced entries.
        table.names = (1..=NAMESPACES_PER_SHARD_MAX as u32)
            .map(|tag| (tag, tag.to_string()))
            .collect();
        assert!(matches!(
            table.tag_or_assign("one-more"),
            Err(StoreError::NamespaceTableFull { .. })
        ));
    }
}
