//! `tessera verify --data DIR`: an offline check of every record of every shard.
//!
//! Reads the files without opening the shards (no lock, no recovery, nothing written): segment
//! headers, every record's frame, commit area and body checksum, and each shard's checkpoint.
//! Pending and aborted records are counted as skipped, not damaged (a crash leaves them).
//! After a damaged frame the scan resumes at the next valid frame; the bytes between are
//! reported unreadable.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::checkpoint;
use super::datadir::{read_manifest, shard_dir, DATA_FORMAT_VERSION};
use super::digest::to_hex;
use super::error::StoreError;
use super::record::{State, FLAG_PURGE, FLAG_TOMBSTONE};
use super::recovery::list_segments;
use super::scan::{body_matches, next_valid_frame, Scanner, Step};
use super::segment::{segment_file_name, Segment, SegmentHeader, SEGMENT_HEADER_BYTES};

/// The outcome of a verification.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    pub shards: u32,
    pub segments: u64,
    pub records_ok: u64,
    pub records_damaged: u64,
    /// Tombstones with a valid commit (counted apart from `records_ok`).
    pub tombstones: u64,
    /// Pending (never committed) and aborted records.
    pub records_skipped: u64,
    pub segments_damaged: u64,
    pub checkpoints_damaged: u64,
    /// Bytes after a damaged frame that could not be scanned.
    pub bytes_unreadable: u64,
}

impl VerifyReport {
    /// Nothing damaged anywhere.
    pub fn is_clean(&self) -> bool {
        self.records_damaged == 0 && self.segments_damaged == 0 && self.checkpoints_damaged == 0
    }
}

fn print(out: &mut dyn Write, line: std::fmt::Arguments<'_>) -> Result<(), StoreError> {
    writeln!(out, "{line}").map_err(|e| StoreError::io("write report", "<output>", e))
}

/// Checks every shard of the data directory `dir`, printing each damaged item to `out`.
pub fn verify(dir: &Path, out: &mut dyn Write) -> Result<VerifyReport, StoreError> {
    let manifest = read_manifest(dir)?.ok_or_else(|| {
        StoreError::corrupt(format!(
            "{} has no MANIFEST: not a Tessera data directory",
            dir.display()
        ))
    })?;
    if manifest.format_version > DATA_FORMAT_VERSION {
        return Err(StoreError::FormatTooNew {
            on_disk: manifest.format_version,
            supported: DATA_FORMAT_VERSION,
        });
    }
    let mut report = VerifyReport {
        shards: manifest.shards,
        ..VerifyReport::default()
    };
    for shard in 0..manifest.shards {
        let path = shard_dir(dir, shard);
        if let Err(what) = checkpoint::load(&path, shard) {
            report.checkpoints_damaged += 1;
            print(
                out,
                format_args!(
                    "DAMAGED {}: {what}",
                    path.join(checkpoint::CHECKPOINT_FILE).display()
                ),
            )?;
        }
        if !path.is_dir() {
            continue;
        }
        let seqs = list_segments(&path)?;
        for (i, &seq) in seqs.iter().enumerate() {
            let file = path.join(segment_file_name(seq));
            if i + 1 == seqs.len() && Segment::is_unfinished(&file)? {
                // Crash residue, not damage: it never held a record; `serve` removes it.
                print(
                    out,
                    format_args!(
                        "note {}: unfinished segment (creation interrupted), holds no records",
                        file.display()
                    ),
                )?;
                continue;
            }
            report.segments += 1;
            verify_segment(
                &path.join(segment_file_name(seq)),
                shard,
                seq,
                &mut report,
                out,
            )?;
        }
    }
    print(
        out,
        format_args!(
            "{}: {} shards, {} segments, {} records ok, {} damaged, {} tombstones, {} skipped \
             (pending/aborted), {} damaged segments, {} damaged checkpoints, {} bytes unreadable",
            if report.is_clean() { "OK" } else { "DAMAGED" },
            report.shards,
            report.segments,
            report.records_ok,
            report.records_damaged,
            report.tombstones,
            report.records_skipped,
            report.segments_damaged,
            report.checkpoints_damaged,
            report.bytes_unreadable
        ),
    )?;
    Ok(report)
}

fn read_segment_header(
    file: &File,
    path: &Path,
    shard: u32,
    seq: u64,
) -> Result<SegmentHeader, String> {
    let mut raw = [0u8; SEGMENT_HEADER_BYTES as usize];
    file.read_exact_at(&mut raw, 0)
        .map_err(|e| format!("cannot read header: {e}"))?;
    let header = SegmentHeader::decode(&raw)?;
    if header.shard != shard || header.seq != seq {
        return Err(format!(
            "header says shard {} seq {}",
            header.shard, header.seq
        ));
    }
    let len = file.metadata().map_err(|e| format!("stat: {e}"))?.len();
    if len != header.capacity {
        return Err(format!(
            "{} is {len} bytes, its header says {}",
            path.display(),
            header.capacity
        ));
    }
    Ok(header)
}

/// Checks records from `start`; returns where to resume after damage, if valid frames follow.
fn scan_from(
    map: &[u8],
    start: u64,
    path: &Path,
    report: &mut VerifyReport,
    out: &mut dyn Write,
) -> Result<Option<u64>, StoreError> {
    for step in Scanner::new(map, start) {
        match step {
            Step::Record {
                offset,
                frame,
                layout,
                state,
            } => {
                match state {
                    Ok(State::Committed(_)) if frame.flags & (FLAG_TOMBSTONE | FLAG_PURGE) != 0 => {
                        report.tombstones += 1
                    }
                    Ok(State::Committed(seal)) => {
                        if body_matches(map, offset, &frame, &layout, seal.body_checksum) {
                            report.records_ok += 1;
                        } else {
                            report.records_damaged += 1;
                            let key = to_hex(&frame.key_id.0);
                            print(out, format_args!("DAMAGED {} offset {offset}: body checksum mismatch (key id {key})", path.display()))?;
                        }
                    }
                    Ok(State::Pending | State::Aborted) => report.records_skipped += 1,
                    Err(what) => {
                        report.records_damaged += 1;
                        print(
                            out,
                            format_args!("DAMAGED {} offset {offset}: {what}", path.display()),
                        )?;
                    }
                }
            }
            Step::Damaged { offset, what } => {
                report.records_damaged += 1;
                let resume = next_valid_frame(map, offset);
                let unreadable = resume.unwrap_or(map.len() as u64) - offset;
                report.bytes_unreadable += unreadable;
                print(
                    out,
                    format_args!(
                    "DAMAGED {} offset {offset}: {what}; {unreadable} bytes after it unreadable",
                    path.display()
                ),
                )?;
                return Ok(resume);
            }
            Step::End { .. } => {}
        }
    }
    Ok(None)
}

fn verify_segment(
    path: &Path,
    shard: u32,
    seq: u64,
    report: &mut VerifyReport,
    out: &mut dyn Write,
) -> Result<(), StoreError> {
    let file = File::open(path).map_err(|e| StoreError::io("open segment", path, e))?;
    if let Err(what) = read_segment_header(&file, path, shard, seq) {
        report.segments_damaged += 1;
        return print(
            out,
            format_args!("DAMAGED {}: segment header: {what}", path.display()),
        );
    }
    // SAFETY: verify is an offline check: the shard is not open for writing (a store that is
    // running may change the file under the map; the result is then a wrong report, never a wrong
    // write). The map is read-only and lives only for this function.
    let map = unsafe { memmap2::Mmap::map(&file) }
        .map_err(|e| StoreError::io("mmap segment", path, e))?;
    let mut start = SEGMENT_HEADER_BYTES;
    while let Some(resume) = scan_from(&map, start, path, report, out)? {
        start = resume;
    }
    Ok(())
}

/// The `verify` subcommand: prints the report to stdout; exit status 0 when clean, 1 when
/// anything is damaged, 2 when the directory cannot be checked at all.
pub fn run_cli(dir: &Path) -> i32 {
    let stdout = std::io::stdout();
    match verify(dir, &mut stdout.lock()) {
        Ok(report) if report.is_clean() => 0,
        Ok(_) => 1,
        Err(error) => {
            eprintln!("tessera verify: {error}");
            2
        }
    }
}
