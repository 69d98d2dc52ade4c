//! Responses sent, by status code, summed over every thread that serves HTTP/1.1.
//!
//! Each thread counts into its own table, registered once in a process-wide list; only that
//! thread writes it (a relaxed load and store, no locked instruction and no shared cache line
//! on the request path), and [`responses_by_status`] reads every table. A 413, 431 or 503 is
//! answered precisely *and* counted, so an operator can see limits being hit.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Status codes 0..=999 (the responder refuses others).
const STATUS_SLOTS: usize = 1000;

struct Table {
    by_status: Vec<AtomicU64>,
}

/// Every thread's table. Tables of threads that ended stay: their counts still happened.
static TABLES: Mutex<Vec<Arc<Table>>> = Mutex::new(Vec::new());

thread_local! {
    static MINE: Arc<Table> = {
        let table = Arc::new(Table {
            by_status: (0..STATUS_SLOTS).map(|_| AtomicU64::new(0)).collect(),
        });
        TABLES
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(table.clone());
        table
    };
}

/// Counts one response with `status`.
pub fn count_response(status: u16) {
    let slot = usize::from(status).min(STATUS_SLOTS - 1);
    MINE.with(|table| {
        // Single writer per table: a plain load and store is an exact count.
        let counter = &table.by_status[slot];
        counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    });
}

/// Responses sent so far by every thread, as (status, count) for each status seen, ascending.
pub fn responses_by_status() -> Vec<(u16, u64)> {
    let tables = TABLES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut totals = vec![0u64; STATUS_SLOTS];
    for table in tables.iter() {
        for (total, counter) in totals.iter_mut().zip(&table.by_status) {
            *total += counter.load(Ordering::Relaxed);
        }
    }
    totals
        .into_iter()
        .enumerate()
        .filter(|(_, count)| *count > 0)
        .map(|(status, count)| (status as u16, count))
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
}
