//! The upload journal: which acknowledged writes the tier does not have yet.
//!
//! One append-only text file, `DATA/tier-journal`, shared by every executor and the tier
//! thread. Each line is written with one `write(2)` on an `O_APPEND` file, so lines from
//! different threads never interleave and a line is in the page cache (it survives `kill -9`)
//! before the write it records is acknowledged:
//!
//! ```text
//! + SEQ KIND NAMESPACE-HEX NAME-HEX     an upload is owed (KIND: 1 cas, 2 ac, 3 blob)
//! - SEQ                                 it is done
//! ```
//!
//! At start the file is read, every `+` without its `-` is pending, the file is rewritten with
//! only those (write to a temporary file, fsync, rename) and they are queued again. A torn last
//! line (a crash mid-write) is ignored: its write was not acknowledged.
//!
//! The file grows by one pair of lines per upload; while running, once it has grown by
//! [`COMPACT_AFTER_BYTES`] since the last compaction, the tier thread compacts it the same way
//! ([`Journal::compact`]): the bulk is read without a lock, then the writers are stopped (a
//! `RwLock` they take shared for each line's `write(2)`) while the tail is read and the pending
//! lines are written to a new file that replaces the old one.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

use crate::protocols::backend::Namespace;
use crate::store::digest::push_hex;
use crate::store::Kind;

/// The journal's file name in the data directory.
pub const JOURNAL_FILE: &str = "tier-journal";

/// Bytes appended since the last compaction that make the tier thread compact the journal
/// while running. A pair of lines is ~100–200 bytes, so this is every ~300k uploads; the
/// compaction reads this much once and stops writers only to read what was appended meanwhile
/// and to write the pending lines (~150 bytes per owed upload).
pub const COMPACT_AFTER_BYTES: u64 = 64 << 20;

/// One owed upload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub seq: u64,
    pub namespace: Namespace,
    pub kind: Kind,
    pub name: Vec<u8>,
}

/// The open journal.
#[derive(Debug)]
pub struct Journal {
    /// Taken shared for each line's `write(2)` (`O_APPEND` keeps lines whole), exclusively by
    /// a compaction while it swaps in the compacted file.
    file: RwLock<File>,
    next_seq: AtomicU64,
    path: PathBuf,
    /// Bytes appended since the last compaction (or the start).
    appended_bytes: AtomicU64,
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

fn entry_line(entry: &Entry) -> String {
    owe_line(entry.seq, entry.kind, &entry.namespace, &entry.name)
}

/// `+ SEQ KIND NAMESPACE-HEX NAME-HEX\n`, built in one allocation.
fn owe_line(seq: u64, kind: Kind, namespace: &Namespace, name: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut line = String::with_capacity(32 + 2 * (namespace.as_str().len() + name.len()));
    // Writing into a String cannot fail.
    let _ = write!(line, "+ {seq} {} ", kind as u8);
    push_hex(&mut line, namespace.as_str().as_bytes());
    line.push(' ');
    push_hex(&mut line, name);
    line.push('\n');
    line
}

/// The pending entries of a journal's text (complete lines only).
fn pending(text: &str) -> (Vec<Entry>, u64) {
    let mut open = BTreeMap::new();
    let mut max_seq = 0;
    // The text after the last newline is a torn line: skip it.
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    for line in complete.lines() {
        let mut fields = line.split(' ');
        match fields.next() {
            Some("+") => {
                let parsed = (|| {
                    let seq: u64 = fields.next()?.parse().ok()?;
                    let kind = Kind::from_u8(fields.next()?.parse().ok()?)?;
                    let namespace = String::from_utf8(unhex(fields.next()?)?).ok()?;
                    let name = unhex(fields.next()?)?;
                    Some(Entry {
                        seq,
                        namespace: Namespace::new(namespace),
                        kind,
                        name,
                    })
                })();
                match parsed {
                    Some(entry) => {
                        max_seq = max_seq.max(entry.seq);
                        open.insert(entry.seq, entry);
                    }
                    None => tracing::warn!(line, "tier journal: unreadable line skipped"),
                }
            }
            Some("-") => {
                if let Some(seq) = fields.next().and_then(|s| s.parse::<u64>().ok()) {
                    max_seq = max_seq.max(seq);
                    open.remove(&seq);
                }
            }
            _ => tracing::warn!(line, "tier journal: unreadable line skipped"),
        }
    }
    (open.into_values().collect(), max_seq)
}

impl Journal {
    /// Opens (creating) the journal in `dir`, compacts it, and returns what is still owed.
    pub fn open(dir: &Path) -> io::Result<(Journal, Vec<Entry>)> {
        let path = dir.join(JOURNAL_FILE);
        let mut text = String::new();
        match File::open(&path) {
            Ok(mut file) => {
                let mut bytes = Vec::new();
                file.read_to_end(&mut bytes)?;
                text = String::from_utf8_lossy(&bytes).into_owned();
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
        let (owed, max_seq) = pending(&text);
        let file = replace_with(&path, &owed)?;
        Ok((
            Journal {
                file: RwLock::new(file),
                next_seq: AtomicU64::new(max_seq + 1),
                path,
                appended_bytes: AtomicU64::new(0),
            },
            owed,
        ))
    }

    /// Whether the journal has grown by [`COMPACT_AFTER_BYTES`] since it was last compacted.
    pub fn wants_compaction(&self) -> bool {
        self.appended_bytes.load(Ordering::Relaxed) >= COMPACT_AFTER_BYTES
    }

    /// After a failed compaction: try again only after another [`COMPACT_AFTER_BYTES`].
    pub fn postpone_compaction(&self) {
        self.appended_bytes.store(0, Ordering::Relaxed);
    }

    /// Rewrites the journal with only its pending lines, while writers go on (they wait only
    /// for the tail and the rewrite). Returns how many uploads are still owed.
    pub fn compact(&self) -> io::Result<usize> {
        let mut bulk = Vec::new();
        File::open(&self.path)?.read_to_end(&mut bulk)?;
        // Only complete lines: a line being written now is read with the tail.
        let bulk_len = bulk
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |end| end + 1);
        bulk.truncate(bulk_len);
        let mut file = self
            .file
            .write()
            .map_err(|_| io::Error::other("tier journal lock poisoned"))?;
        let mut whole = bulk;
        let mut reader = File::open(&self.path)?;
        io::Seek::seek(&mut reader, io::SeekFrom::Start(bulk_len as u64))?;
        reader.read_to_end(&mut whole)?;
        let (owed, _) = pending(&String::from_utf8_lossy(&whole));
        *file = replace_with(&self.path, &owed)?;
        self.appended_bytes.store(0, Ordering::Relaxed);
        Ok(owed.len())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one line with one `write(2)`.
    fn append(&self, line: &str) -> io::Result<()> {
        let file = self
            .file
            .read()
            .map_err(|_| io::Error::other("tier journal lock poisoned"))?;
        (&*file).write_all(line.as_bytes())?;
        self.appended_bytes
            .fetch_add(line.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Records an owed upload; returns its sequence number. One `write(2)`.
    pub fn owe(&self, namespace: &Namespace, kind: Kind, name: &[u8]) -> io::Result<u64> {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        self.append(&owe_line(seq, kind, namespace, name))?;
        Ok(seq)
    }

    /// Records that upload `seq` is done (or can never be done: its record is gone).
    pub fn done(&self, seq: u64) -> io::Result<()> {
        self.append(&format!("- {seq}\n"))
    }
}

/// Replaces the journal at `path` with the lines of `owed` (temporary file, fsync, rename,
/// directory fsync) and opens it for appending.
fn replace_with(path: &Path, owed: &[Entry]) -> io::Result<File> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let compacted: String = owed.iter().map(entry_line).collect();
    crate::store::datadir::replace_file(dir, JOURNAL_FILE, compacted.as_bytes())?;
    OpenOptions::new().append(true).open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_entries_survive_a_reopen_and_done_ones_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, owed) = Journal::open(dir.path()).unwrap();
        assert!(owed.is_empty());
        let ns = Namespace::new("bazel/team a");
        let a = journal.owe(&ns, Kind::Cas, &[1, 2, 3]).unwrap();
        let b = journal
            .owe(&Namespace::fixed("gradle"), Kind::Blob, b"k")
            .unwrap();
        let c = journal.owe(&ns, Kind::Ac, &[9]).unwrap();
        journal.done(b).unwrap();
        drop(journal);
        let (journal, owed) = Journal::open(dir.path()).unwrap();
        let seqs: Vec<u64> = owed.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, vec![a, c]);
        assert_eq!(owed[0].namespace, ns);
        assert_eq!(owed[0].kind, Kind::Cas);
        assert_eq!(owed[0].name, vec![1, 2, 3]);
        // New sequence numbers never reuse old ones.
        let d = journal.owe(&ns, Kind::Cas, &[4]).unwrap();
        assert!(d > c);
        journal.done(a).unwrap();
        journal.done(c).unwrap();
        journal.done(d).unwrap();
        drop(journal);
        let (_journal, owed) = Journal::open(dir.path()).unwrap();
        assert!(owed.is_empty());
    }

    #[test]
    fn every_byte_of_a_name_and_namespace_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, _) = Journal::open(dir.path()).unwrap();
        let name: Vec<u8> = (0..=255).collect();
        let ns = Namespace::new("s3/bucket-ü ~");
        let seq = journal.owe(&ns, Kind::Blob, &name).unwrap();
        drop(journal);
        let (_, owed) = Journal::open(dir.path()).unwrap();
        let expected = Entry {
            seq,
            namespace: ns,
            kind: Kind::Blob,
            name,
        };
        assert_eq!(owed, vec![expected]);
    }

    #[test]
    fn a_torn_last_line_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(JOURNAL_FILE), "+ 1 1 62 01\n+ 2 1 62 0").unwrap();
        let (_journal, owed) = Journal::open(dir.path()).unwrap();
        assert_eq!(owed.len(), 1);
        assert_eq!(owed[0].seq, 1);
        assert_eq!(owed[0].namespace.as_str(), "b");
    }

    #[test]
    fn compaction_while_writers_append_keeps_every_pending_entry_and_drops_done_ones() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, _) = Journal::open(dir.path()).unwrap();
        let journal = std::sync::Arc::new(journal);
        let ns = Namespace::fixed("gradle");
        // Writers on two threads owe and settle entries while the journal is compacted over
        // and over; every odd entry stays owed. They write at least 2000 entries each and go on
        // until three compactions ran, so that compactions do overlap their appends.
        let compactions = std::sync::Arc::new(AtomicU64::new(0));
        let writers: Vec<_> = (0..2u8)
            .map(|thread| {
                let journal = journal.clone();
                let ns = ns.clone();
                let compactions = compactions.clone();
                std::thread::spawn(move || {
                    let mut still_owed = Vec::new();
                    let mut i = 0u32;
                    while i < 2000 || compactions.load(Ordering::Relaxed) < 3 {
                        i += 1;
                        let name = [&[thread][..], &i.to_le_bytes()].concat();
                        let seq = journal.owe(&ns, Kind::Blob, &name).unwrap();
                        if i.is_multiple_of(2) {
                            journal.done(seq).unwrap();
                        } else {
                            still_owed.push(seq);
                        }
                    }
                    still_owed
                })
            })
            .collect();
        while !writers.iter().all(|w| w.is_finished()) {
            journal.compact().unwrap();
            compactions.fetch_add(1, Ordering::Relaxed);
        }
        let mut expected: Vec<u64> = writers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect();
        expected.sort_unstable();
        assert!(compactions.load(Ordering::Relaxed) >= 3);
        let size_before = std::fs::metadata(journal.path()).unwrap().len();
        assert_eq!(journal.compact().unwrap(), expected.len());
        let size_after = std::fs::metadata(journal.path()).unwrap().len();
        assert!(size_after <= size_before, "{size_after} > {size_before}");
        assert!(!journal.wants_compaction());
        drop(journal);
        let (_journal, owed) = Journal::open(dir.path()).unwrap();
        let seqs: Vec<u64> = owed.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, expected);
    }
}
