//! How calls ended, summed over every thread that serves them: HTTP/1.1 responses by status
//! code and gRPC calls by status code (`GET /metrics` shows both).
//!
//! Each thread counts into its own table, registered once in a process-wide list; only that
//! thread writes it (a relaxed load and store, no locked instruction and no shared cache line
//! on the request path), and the readers sum every table. A 413, 431 or 503 is answered
//! precisely *and* counted, so an operator can see limits being hit.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// HTTP status codes 0..=999 (the responder refuses others).
const STATUS_SLOTS: usize = 1000;
/// gRPC status codes 0..=16, after the HTTP slots.
const GRPC_SLOTS: usize = 17;
const SLOTS: usize = STATUS_SLOTS + GRPC_SLOTS;

struct Table {
    slots: Vec<AtomicU64>,
}

/// Every thread's table. Tables of threads that ended stay: their counts still happened.
static TABLES: Mutex<Vec<Arc<Table>>> = Mutex::new(Vec::new());

thread_local! {
    static MINE: Arc<Table> = {
        let table = Arc::new(Table {
            slots: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
        });
        TABLES
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(table.clone());
        table
    };
}

fn count(slot: usize) {
    MINE.with(|table| {
        // Single writer per table: a plain load and store is an exact count.
        let counter = &table.slots[slot];
        counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    });
}

/// Sums of every thread's slots `range`, as (slot − range start, count) where count > 0.
fn totals(range: std::ops::Range<usize>) -> Vec<(usize, u64)> {
    let tables = TABLES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut totals = vec![0u64; range.len()];
    for table in tables.iter() {
        for (total, counter) in totals.iter_mut().zip(&table.slots[range.clone()]) {
            *total += counter.load(Ordering::Relaxed);
        }
    }
    totals
        .into_iter()
        .enumerate()
        .filter(|(_, count)| *count > 0)
        .collect()
}

/// Counts one HTTP/1.1 response with `status`.
pub fn count_response(status: u16) {
    count(usize::from(status).min(STATUS_SLOTS - 1));
}

/// Counts one gRPC call that ended with `code` (the numeric `grpc-status`).
pub fn count_grpc_status(code: u8) {
    count(STATUS_SLOTS + usize::from(code).min(GRPC_SLOTS - 1));
}

/// HTTP/1.1 responses sent so far by every thread, as (status, count), ascending.
pub fn responses_by_status() -> Vec<(u16, u64)> {
    totals(0..STATUS_SLOTS)
        .into_iter()
        .map(|(status, count)| (status as u16, count))
        .collect()
}

/// gRPC calls ended so far by every thread, as (code, count), ascending.
pub fn grpc_calls_by_status() -> Vec<(u8, u64)> {
    totals(STATUS_SLOTS..SLOTS)
        .into_iter()
        .map(|(code, count)| (code as u8, count))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count_of(status: u16) -> u64 {
        responses_by_status()
            .into_iter()
            .find(|(s, _)| *s == status)
            .map_or(0, |(_, n)| n)
    }

    #[test]
    fn counts_from_every_thread_add_up() {
        // 799 is not a real status: no other test in this process sends it.
        let before = count_of(799);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| {
                    for _ in 0..1000 {
                        count_response(799);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        count_response(799);
        assert_eq!(count_of(799) - before, 4001);
    }

    #[test]
    fn grpc_codes_are_counted_apart_from_http_statuses() {
        let grpc = |code| {
            grpc_calls_by_status()
                .into_iter()
                .find(|(c, _)| *c == code)
                .map_or(0, |(_, n)| n)
        };
        let (http_before, grpc_before) = (count_of(16), grpc(16));
        count_grpc_status(16);
        count_grpc_status(16);
        assert_eq!(grpc(16) - grpc_before, 2);
        assert_eq!(count_of(16), http_before);
    }
}
