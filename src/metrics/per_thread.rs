//! Per-thread tables: each thread counts into its own table (its lock is never contended but
//! by a scrape), and a scrape reads every thread's. Tables of threads that ended stay: their
//! requests still happened.
//!
//! ```text
//! static TABLES: Tables<Counts> = Tables::new();
//! thread_local! { static MINE: Arc<Mutex<Counts>> = TABLES.register(Counts::default()); }
//! ```

use std::sync::{Arc, Mutex, MutexGuard};

/// Every thread's table of one kind.
pub struct Tables<T> {
    all: Mutex<Vec<Arc<Mutex<T>>>>,
}

impl<T> Tables<T> {
    pub const fn new() -> Self {
        Tables {
            all: Mutex::new(Vec::new()),
        }
    }

    /// Adds a thread's `table` (from its `thread_local!` initialiser) and returns its handle.
    pub fn register(&self, table: T) -> Arc<Mutex<T>> {
        let table = Arc::new(Mutex::new(table));
        lock(&self.all).push(table.clone());
        table
    }

    /// Every table registered so far, for a scrape to lock one at a time.
    pub fn all(&self) -> Vec<Arc<Mutex<T>>> {
        lock(&self.all).clone()
    }
}

impl<T> Default for Tables<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// Locks `mutex`, taking the value of a poisoned one as it is: a counter table is still right
/// after a panic elsewhere.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scrape_sees_every_threads_table_also_after_the_thread_ended() {
        static TABLES: Tables<u64> = Tables::new();
        thread_local! { static MINE: Arc<Mutex<u64>> = TABLES.register(0); }
        let threads: Vec<_> = (1..=3u64)
            .map(|n| std::thread::spawn(move || MINE.with(|mine| *lock(mine) += n)))
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let total: u64 = TABLES.all().iter().map(|t| *lock(t)).sum();
        assert_eq!(total, 6);
        assert_eq!(TABLES.all().len(), 3);
    }
}
