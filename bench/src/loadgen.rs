//! The load generator: one pinned monoio thread per core (`FusionDriver`: io_uring where the
//! kernel allows, epoll otherwise), many connections per thread, each connection a task running
//! one request at a time.
//!
//! Two modes:
//! * **closed loop** — every connection sends its next request as soon as the previous one is
//!   answered; the throughput found is the maximum at that concurrency. Latency is measured from
//!   the actual send.
//! * **open loop** at `rate` requests/s — request *k* of a thread has an *intended* send time
//!   `t0 + k / rate_thread`; a free connection takes the next unclaimed *k* and waits until its
//!   intended time. A request that goes out late because every connection was still busy is
//!   measured **from its intended time**: when the server stalls, every connection is stuck,
//!   intended times pass by, and once the stall ends the queued requests carry the waiting time
//!   in their latency — the stall shows up in the percentiles instead of being hidden (no
//!   coordinated omission). A request whose connection was idle is measured from its actual send,
//!   so the 1 ms resolution of the timer that woke it is not charged to the server.
//!
//! Every loop is bounded: it stops at the deadline (`duration`) or when the request budget is
//! spent, whichever comes first; a request that hangs ends at the per-request timeout.

use crate::limits::RECONNECT_BACKOFF_MS;
use crate::protocol::Protocol;
use crate::rng::Rng;
use crate::stats::{ErrorKind, RequestError, RunStats};
use crate::workload::{Operation, OperationMix};
use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// Which monoio driver the load threads use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// `FusionDriver`: io_uring where the kernel allows it, epoll otherwise.
    Auto,
    /// Always epoll (`LegacyDriver`), e.g. to compare with an epoll-based tool such as wrk.
    Epoll,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    Closed,
    Open { rate_per_sec: u64 },
}

/// Where operations come from.
#[derive(Clone)]
pub enum OperationSource {
    /// Random draws from a mix (the measured phase).
    Mix(Arc<OperationMix>),
    /// `Preload` of objects `next..count`, each exactly once across all threads.
    PutEach { next: Arc<AtomicU64>, count: u64 },
}

impl OperationSource {
    pub fn put_each(count: usize) -> OperationSource {
        OperationSource::put_range(0, count)
    }

    /// `Preload` of objects `start..end`, each once.
    pub fn put_range(start: usize, end: usize) -> OperationSource {
        OperationSource::PutEach {
            next: Arc::new(AtomicU64::new(start as u64)),
            count: end as u64,
        }
    }

    fn next(&self, rng: &mut Rng) -> Option<Operation> {
        match self {
            OperationSource::Mix(mix) => Some(mix.next(rng)),
            OperationSource::PutEach { next, count } => {
                let index = next.fetch_add(1, Ordering::Relaxed);
                (index < *count).then_some(Operation::Preload {
                    index: index as usize,
                })
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct LoadConfig {
    pub address: SocketAddr,
    pub threads: usize,
    /// Connections over all threads (spread evenly; each thread gets at least one).
    pub connections: usize,
    pub duration: Duration,
    /// Stop after this many requests over all threads (issued, successful or not).
    pub requests: Option<u64>,
    pub mode: Mode,
    /// Pin thread `i` to CPU `i % cpus`.
    pub pin: bool,
    pub request_timeout: Duration,
    pub seed: u64,
    pub driver: Driver,
}

/// Runs the load and returns the merged measurement of all threads.
pub fn run_load<P: Protocol>(
    config: &LoadConfig,
    protocol: &P,
    source: &OperationSource,
) -> RunStats {
    assert!(config.threads > 0 && config.connections >= config.threads);
    let barrier = Arc::new(Barrier::new(config.threads));
    let budget = Arc::new(AtomicU64::new(0));
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let handles: Vec<_> = (0..config.threads)
        .map(|thread| {
            let plan = ThreadPlan {
                thread,
                cpu: config.pin.then_some(thread % cpus),
                connections: share(config.connections, config.threads, thread),
                rate_per_sec: match config.mode {
                    Mode::Closed => None,
                    Mode::Open { rate_per_sec } => {
                        Some(share(rate_per_sec as usize, config.threads, thread) as u64)
                    }
                },
                config: config.clone(),
            };
            let (protocol, source, barrier, budget) = (
                protocol.clone(),
                source.clone(),
                barrier.clone(),
                budget.clone(),
            );
            std::thread::Builder::new()
                .name(format!("load-{thread}"))
                .spawn(move || run_thread(plan, protocol, source, barrier, budget))
                .expect("spawning a load thread")
        })
        .collect();
    let mut total = RunStats::default();
    for handle in handles {
        total.merge(&handle.join().expect("a load thread panicked"));
    }
    total
}

/// Thread `index`'s share of `total` split over `parts`, remainder to the first threads.
fn share(total: usize, parts: usize, index: usize) -> usize {
    total / parts + usize::from(index < total % parts)
}

struct ThreadPlan {
    thread: usize,
    cpu: Option<usize>,
    connections: usize,
    rate_per_sec: Option<u64>,
    config: LoadConfig,
}

fn run_thread<P: Protocol>(
    plan: ThreadPlan,
    protocol: P,
    source: OperationSource,
    barrier: Arc<Barrier>,
    budget: Arc<AtomicU64>,
) -> RunStats {
    let driver = plan.config.driver;
    if let Some(cpu) = plan.cpu {
        if let Err(e) = monoio::utils::bind_to_cpu_set([cpu]) {
            eprintln!(
                "tessera-bench: could not pin thread {} to CPU {cpu}: {e}",
                plan.thread
            );
        }
    }
    let main = thread_main(plan, protocol, source, barrier, budget);
    match driver {
        Driver::Auto => build_auto_runtime()
            .expect("building the monoio runtime (io_uring or epoll)")
            .block_on(main),
        Driver::Epoll => monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .expect("building the monoio epoll runtime")
            .block_on(main),
    }
}

/// State shared by the connection tasks of one thread (single-threaded: `Rc`/`Cell`).
struct ThreadState<P: Protocol> {
    protocol: P,
    source: OperationSource,
    config: LoadConfig,
    start: Instant,
    deadline: Instant,
    /// Open loop: nanoseconds between intended send times on this thread.
    interval_ns: Option<f64>,
    next_ticket: Cell<u64>,
    budget: Arc<AtomicU64>,
    stats: RefCell<RunStats>,
    last_completion: Cell<Instant>,
}

enum Ticket {
    Stop,
    /// Closed loop: send now, measure from the send.
    Now,
    /// Open loop: send at (or, if late, right after) the intended time and measure from it.
    At(Instant),
}

impl<P: Protocol> ThreadState<P> {
    fn claim(&self) -> Ticket {
        let now = Instant::now();
        if now >= self.deadline {
            return Ticket::Stop;
        }
        if let Some(limit) = self.config.requests {
            if self.budget.fetch_add(1, Ordering::Relaxed) >= limit {
                return Ticket::Stop;
            }
        }
        let Some(interval_ns) = self.interval_ns else {
            return Ticket::Now;
        };
        let k = self.next_ticket.get();
        let intended = self.start + Duration::from_nanos((k as f64 * interval_ns) as u64);
        if intended >= self.deadline {
            return Ticket::Stop;
        }
        self.next_ticket.set(k + 1);
        Ticket::At(intended)
    }

    /// Open loop: intended send times inside the run that no connection claimed.
    fn scheduled_but_unsent(&self) -> u64 {
        let Some(interval_ns) = self.interval_ns else {
            return 0;
        };
        if let Some(limit) = self.config.requests {
            if self.budget.load(Ordering::Relaxed) >= limit {
                // The run ended on its request budget, not on the schedule.
                return 0;
            }
        }
        let run_ns = self.deadline.duration_since(self.start).as_nanos() as f64;
        let scheduled = (run_ns / interval_ns).ceil() as u64;
        scheduled.saturating_sub(self.next_ticket.get())
    }
}

async fn thread_main<P: Protocol>(
    plan: ThreadPlan,
    protocol: P,
    source: OperationSource,
    barrier: Arc<Barrier>,
    budget: Arc<AtomicU64>,
) -> RunStats {
    // Connect first so that connection set-up is not part of the first requests' latency.
    let mut connections = Vec::with_capacity(plan.connections);
    let mut stats = RunStats::default();
    for _ in 0..plan.connections {
        match protocol.connect(plan.config.address).await {
            Ok(connection) => connections.push(Some(connection)),
            Err(error) => {
                stats.record_error(&error);
                connections.push(None);
            }
        }
    }
    // All threads start their measured phase together. Blocking here is fine: this thread has
    // nothing else to run until the phase starts.
    barrier.wait();
    let start = Instant::now();
    let state = Rc::new(ThreadState {
        interval_ns: plan.rate_per_sec.map(|rate| 1e9 / rate.max(1) as f64),
        deadline: start + plan.config.duration,
        protocol,
        source,
        config: plan.config,
        start,
        next_ticket: Cell::new(0),
        budget,
        stats: RefCell::new(stats),
        last_completion: Cell::new(start),
    });
    let tasks: Vec<_> = connections
        .into_iter()
        .enumerate()
        .map(|(index, connection)| {
            let rng = Rng::derived(
                state.config.seed,
                ((plan.thread as u64) << 32) | index as u64,
            );
            monoio::spawn(connection_loop(state.clone(), connection, rng))
        })
        .collect();
    for task in tasks {
        task.await;
    }
    let mut stats = state.stats.borrow().clone();
    stats.not_sent = state.scheduled_but_unsent();
    stats.elapsed = state.last_completion.get().duration_since(state.start);
    stats
}

async fn connection_loop<P: Protocol>(
    state: Rc<ThreadState<P>>,
    mut connection: Option<P::Connection>,
    mut rng: Rng,
) {
    loop {
        let intended = match state.claim() {
            Ticket::Stop => return,
            Ticket::Now => None,
            Ticket::At(intended) => Some(intended),
        };
        let Some(operation) = state.source.next(&mut rng) else {
            return;
        };
        // The latency clock starts at the intended time when this request is late because the
        // connection was busy (the server was slow: that wait is part of its latency), but at the
        // actual send when the connection was idle and slept until the intended time — monoio's
        // timer wheel has 1 ms resolution, and its wake-up lag is ours, not the server's.
        let mut measure_from = intended;
        if let Some(due) = intended {
            if due > Instant::now() {
                monoio::time::sleep_until(monoio::time::Instant::from_std(due)).await;
                measure_from = None;
            }
        }
        let sent = Instant::now();
        let result = match connection.as_mut() {
            Some(open) => execute_with_timeout(&state, open, &operation).await,
            None => reconnect_and_execute(&state, &mut connection, &operation).await,
        };
        let done = Instant::now();
        state
            .last_completion
            .set(state.last_completion.get().max(done));
        let latency = done.duration_since(measure_from.unwrap_or(sent));
        let mut stats = state.stats.borrow_mut();
        match result {
            Ok(outcome) => {
                stats.record_ok(latency, outcome.body_bytes);
                if outcome.reconnect {
                    stats.reconnects += 1;
                    connection = None;
                }
            }
            Err(error) => {
                stats.record_error(&error);
                connection = None;
            }
        }
    }
}

async fn execute_with_timeout<P: Protocol>(
    state: &ThreadState<P>,
    connection: &mut P::Connection,
    operation: &Operation,
) -> Result<crate::protocol::Outcome, RequestError> {
    let timeout = state.config.request_timeout;
    match monoio::time::timeout(timeout, state.protocol.execute(connection, operation)).await {
        Ok(result) => result,
        Err(_) => Err(RequestError::new(
            ErrorKind::Timeout,
            format!("no complete response within {timeout:?}"),
        )),
    }
}

async fn reconnect_and_execute<P: Protocol>(
    state: &ThreadState<P>,
    connection: &mut Option<P::Connection>,
    operation: &Operation,
) -> Result<crate::protocol::Outcome, RequestError> {
    match state.protocol.connect(state.config.address).await {
        Ok(fresh) => {
            let open = connection.insert(fresh);
            execute_with_timeout(state, open, operation).await
        }
        Err(error) => {
            // Back off so that a dead server cannot turn the loop into a busy spin.
            monoio::time::sleep(Duration::from_millis(RECONNECT_BACKOFF_MS)).await;
            Err(error)
        }
    }
}

/// Builds the thread's `FusionDriver` runtime. The io_uring ring asks for
/// `IORING_SETUP_COOP_TASKRUN` (Linux 5.19+): completions are then processed when the thread
/// next enters the kernel instead of by interrupting it. On the 2-vCPU development VM this cut the
/// client's CPU per request against nginx from a median of 6.6 µs to 5.2 µs (perf showed the
/// difference in `io_run_task_work` spinlock contention). Kernels without the flag refuse it, and
/// the ring is then built without it; machines without io_uring get epoll from `FusionDriver`.
fn build_auto_runtime() -> std::io::Result<
    monoio::FusionRuntime<
        monoio::time::TimeDriver<monoio::IoUringDriver>,
        monoio::time::TimeDriver<monoio::LegacyDriver>,
    >,
> {
    let mut coop = io_uring::IoUring::builder();
    coop.setup_coop_taskrun();
    monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .uring_builder(coop)
        .enable_timer()
        .build()
        .or_else(|_| {
            monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
                .enable_timer()
                .build()
        })
}

#[cfg(test)]
mod tests {
    use super::share;

    #[test]
    fn shares_add_up_and_differ_by_at_most_one() {
        for total in [1usize, 7, 64, 1000] {
            for parts in 1..=8.min(total) {
                let shares: Vec<usize> = (0..parts).map(|i| share(total, parts, i)).collect();
                assert_eq!(shares.iter().sum::<usize>(), total);
                assert!(shares.iter().max().unwrap() - shares.iter().min().unwrap() <= 1);
            }
        }
    }
}
