//! The net layer: executors, pinning, listeners, accept, connection limits and drain.
//!
//! ```text
//! main thread: validate config → open data dir (manifest) → take systemd's sockets or bind a
//!              reuse-port group → spawn one pinned glommio executor per core → wait until every
//!              executor is ready → print the address, `READY=1` to systemd → wait for
//!              SIGTERM/SIGINT (drain flag, `STOPPING=1`) → join executors
//! executor i:  join mesh → open the shards it owns → serve mesh ops for them → accept loop
//!              (each connection: sniff HTTP/1.1 vs h2c, hand it to the wire layer) → on drain:
//!              stop accepting, let connections finish (bounded), barrier, close shards
//! ```
//!
//! Shard `s` is owned by executor `s % executors` (`steer::owner_of`). A connection may land on
//! any executor; its store operations are steered to the owners (`steer`).

pub mod coarse_timers;
pub mod conn;
pub mod handoff;
pub mod listener;
pub mod local_signal;
pub mod reload;
pub mod signals;
pub mod steer;
pub mod systemd;
pub mod watchdog;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, RawFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use glommio::channels::channel_mesh::MeshBuilder;
use glommio::{LocalExecutorBuilder, Placement};

use crate::config::{Config, ConfigError};
use crate::protocols::s3::S3Shared;
use crate::store::datadir::read_manifest;
use crate::store::{DataDir, Shard, StoreError};
use steer::{owner_of, spawn_owner_tasks, OwnedShards, OwnerOp, Steer, MESH_QUEUE_DEPTH};

/// How often each executor runs shard maintenance (checkpoint/sync when due; cheap otherwise).
pub const MAINTENANCE_PERIOD: Duration = Duration::from_millis(100);
/// How often loops that wait on a cross-thread flag look at it.
pub const FLAG_POLL_PERIOD: Duration = Duration::from_millis(20);

/// Why the server could not start or did not stop cleanly.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServerError {
    Config(ConfigError),
    Store(StoreError),
    Listen {
        addr: String,
        source: std::io::Error,
    },
    Executor(String),
    Activation(systemd::ActivationError),
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerError::Config(e) => write!(f, "configuration: {e}"),
            ServerError::Store(e) => write!(f, "store: {e}"),
            ServerError::Listen { addr, source } => write!(f, "listen on {addr}: {source}"),
            ServerError::Executor(e) => write!(f, "executor: {e}"),
            ServerError::Activation(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ServerError {}

impl From<StoreError> for ServerError {
    fn from(e: StoreError) -> Self {
        ServerError::Store(e)
    }
}

/// State shared by the starting thread, the signal thread and all executors (atomics only).
#[derive(Default)]
pub struct Shared {
    /// Set once every executor has opened its shards: `/ready` may answer 200.
    pub ready: AtomicBool,
    /// Set by the first SIGTERM/SIGINT (and by every drain): `/ready` answers 503 from now on,
    /// while everything else keeps serving for `drain_delay` before the drain starts.
    pub stopping: AtomicBool,
    /// Set by SIGTERM/SIGINT (after `drain_delay`) or by a failing executor: stop accepting
    /// and drain.
    pub drain: AtomicBool,
    /// `drain_delay`: how long the signal thread waits between `stopping` and `drain`.
    pub drain_delay: Duration,
    /// Executors whose connections have all finished (or timed out) after drain.
    connections_done: AtomicUsize,
    /// Open client connections of the whole process, for the exact `max_connections` limit.
    /// Touched once per accept and once per close (never per request), so the one shared
    /// cache line costs nothing measurable.
    pub open_connections: AtomicUsize,
    /// Connections refused (503) because `max_connections` were open.
    pub refused_connections: AtomicU64,
    /// Connections that stop the accepting on systemd's sockets at drain (`handoff`).
    pub wake_ups: handoff::WakeUps,
}

impl Shared {
    pub fn draining(&self) -> bool {
        self.drain.load(Ordering::Acquire)
    }
    pub fn start_drain(&self) {
        self.stopping.store(true, Ordering::Release);
        self.drain.store(true, Ordering::Release);
    }
    /// A stop was asked for (the drain may not have started yet: `drain_delay`).
    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }
    /// Marks the node as leaving rotation: `/ready` answers 503 from now on.
    pub fn start_stopping(&self) {
        self.stopping.store(true, Ordering::Release);
    }
    /// What `/ready` reports: starting until every shard is open, stopping once a stop was
    /// asked for, else ready.
    pub fn readiness(&self) -> crate::protocols::health::Phase {
        use crate::protocols::health::Phase;
        if self.stopping() {
            Phase::Stopping
        } else if self.ready.load(Ordering::Acquire) {
            Phase::Ready
        } else {
            Phase::Starting
        }
    }
}

/// Resolves after the drain flag is set.
pub async fn drained(shared: &Shared) {
    while !shared.draining() {
        glommio::timer::sleep(FLAG_POLL_PERIOD).await;
    }
}

/// Runs `tessera serve` until SIGTERM/SIGINT; returns after a clean drain. SIGHUP has nothing to
/// re-read (see [`run_with_reload`]).
pub fn run(config: Config) -> Result<(), ServerError> {
    run_with_reload(config, None)
}

/// [`run`], with SIGHUP re-reading the configuration through `reload` and applying what can
/// change live (`reload` module).
pub fn run_with_reload(
    mut config: Config,
    reload: Option<reload::Reload>,
) -> Result<(), ServerError> {
    crate::metrics::mark_started();
    let as_started = config.clone();
    let cpus = allowed_cpus();
    let executors = config.executors.unwrap_or(cpus.len());
    let shards = match read_manifest(&config.data)?.map(|m| m.shards) {
        Some(existing) => config.shards.unwrap_or(existing),
        None => config.shards.unwrap_or(executors as u32),
    };
    config.check_budget(shards).map_err(ServerError::Config)?;
    let store_config = config.store_config(shards);
    DataDir::open(&store_config)?;
    warn_if_max_size_exceeds_the_filesystem(&store_config);
    let tier = if config.tier.enabled() {
        let tier =
            crate::tier::TierClient::start(&config.tier, &config.data, config.max_blob_bytes)
                .map_err(ServerError::Executor)?;
        tracing::info!(kind = ?config.tier.kind, write = ?config.tier.write, "object-store tier on");
        Some(tier)
    } else {
        None
    };

    let inherited = systemd::inherited_sockets().map_err(ServerError::Activation)?;
    let listeners = listener::open(
        config.listen,
        config.grpc_listen,
        config.s3.listen,
        executors,
        inherited,
    )?;
    let (bound, inherited) = (listeners.main.addr, listeners.main.inherited);
    let grpc_bound = listeners.grpc.as_ref().map(|g| g.addr);
    let grpc_inherited = listeners.grpc.as_ref().is_some_and(|g| g.inherited);
    let grpc_fds = listeners.grpc.map(|g| g.fds);
    let s3_bound = listeners.s3.as_ref().map(|g| g.addr);
    let s3_fds = listeners.s3.map(|g| g.fds);
    // The addresses actually listened on: a socket handed over by systemd may be another than
    // `listen`, and the no-keys default must not open it to the network.
    let mut listening = vec![bound];
    listening.extend(grpc_bound);
    listening.extend(s3_bound);
    config
        .auth
        .check_exposure(&listening)
        .map_err(ServerError::Config)?;

    let shared = Arc::new(Shared {
        drain_delay: config.drain_delay,
        ..Shared::default()
    });
    signals::spawn_watcher(
        shared.clone(),
        signals::OnHangup {
            running: as_started,
            reload,
        },
    );
    let heartbeats = systemd::watchdog_timeout()
        .map(|timeout| Arc::new(watchdog::Heartbeats::new(executors, timeout)));
    let mut auth = crate::auth::AuthState::load(&config.auth).map_err(ServerError::Config)?;
    auth.tls = crate::tls::load_shared(&config.tls).map_err(|e| {
        ServerError::Config(crate::config::ConfigError {
            setting: e.setting.into(),
            message: e.message,
        })
    })?;
    let s3 = S3Shared::new(
        &config.s3,
        &config.auth,
        auth.trust.clone(),
        Some(&config.data),
        config.max_blob_bytes,
        (config.durability, config.sync_interval),
    )
    .map_err(ServerError::Executor)?;
    let stop = shared.clone();
    crate::auth::reload::spawn(config.auth.clone(), auth.trust.clone(), move || {
        stop.draining()
    })
    .map_err(|e| ServerError::Executor(format!("cannot start the key reloader: {e}")))?;
    let stop = shared.clone();
    crate::tls::reload::spawn(config.tls.clone(), auth.tls.clone(), move || {
        stop.draining()
    })
    .map_err(|e| ServerError::Executor(format!("cannot start the TLS reloader: {e}")))?;
    // Every clone of the mesh builder is made here, before any executor runs, and each executor
    // gets its own by move: glommio 0.9's `MeshBuilder` keeps its peer list in an `Rc` (marked
    // `Send` by hand), so a clone on an executor thread would race other threads on a
    // non-atomic reference count.
    let mesh = MeshBuilder::<OwnerOp, _>::full(executors, MESH_QUEUE_DEPTH);
    let mut meshes: Vec<_> = (1..executors).map(|_| mesh.clone()).collect();
    meshes.push(mesh);
    let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
    let mut handles = Vec::with_capacity(executors);
    for (position, (fd, mesh)) in listeners.main.fds.into_iter().zip(meshes).enumerate() {
        let plan = ExecutorPlan {
            position,
            executors,
            shards,
            fd,
            inherited,
            grpc_fd: grpc_fds.as_ref().map(|fds| fds[position]),
            grpc_inherited,
            s3_fd: s3_fds.as_ref().map(|fds| fds[position]),
            s3: s3.clone(),
            config: config.clone(),
            store_config: store_config.clone(),
            shared: shared.clone(),
            auth: auth.clone(),
            mesh: Some(mesh),
            ready: ready_tx.clone(),
            heartbeats: heartbeats.clone(),
            tier: tier.clone(),
        };
        let handle = LocalExecutorBuilder::new(Placement::Fixed(cpus[position % cpus.len()]))
            .name(&format!("tessera-{position}"))
            .spawn(move || plan.run())
            .map_err(|e| ServerError::Executor(format!("cannot start executor {position}: {e}")))?;
        handles.push(handle);
    }
    drop(ready_tx);
    if let Err(error) = wait_ready(&ready_rx, executors, &shared) {
        // Not joined: an executor may wait forever in the mesh for a peer that failed to open
        // its shards. Nothing was served yet, so exiting without a drain loses nothing.
        shared.start_drain();
        return Err(ServerError::Executor(error));
    }
    shared.ready.store(true, Ordering::Release);
    announce(bound, grpc_bound, s3_bound, shards, executors);
    if let Some(heartbeats) = heartbeats {
        watchdog::spawn_monitor(heartbeats, shared.clone());
    }
    let mut first_error = None;
    for handle in handles {
        let outcome = handle
            .join()
            .map_err(|e| ServerError::Executor(format!("executor failed: {e}")))
            .and_then(|r| r.map_err(ServerError::Executor));
        if let Err(e) = outcome {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Logs once, at start, when `max_size` is more than the data directory's filesystem can hold
/// (what the cache stores plus what is free, less each shard's reserve): each shard's effective
/// budget then follows the free space (`store::space`, `/metrics`).
fn warn_if_max_size_exceeds_the_filesystem(store_config: &crate::store::StoreConfig) {
    use crate::config::format_size;
    match crate::store::space::capacity(store_config) {
        Ok(capacity) if capacity.holdable_bytes < store_config.max_size_bytes => {
            tracing::warn!(
                max_size = %format_size(store_config.max_size_bytes),
                max_size_bytes = store_config.max_size_bytes,
                filesystem_holds = %format_size(capacity.holdable_bytes),
                filesystem_holds_bytes = capacity.holdable_bytes,
                stored_bytes = capacity.stored_bytes,
                available_bytes = capacity.available_bytes,
                "max_size is larger than the filesystem can hold for the cache; each shard's \
                 budget follows the free space (tessera_store_effective_budget_bytes)"
            )
        }
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "cannot measure the data directory's filesystem"),
    }
}

/// Waits until every executor has opened its shards; a signal during start-up ends the wait.
fn wait_ready(
    ready: &mpsc::Receiver<Result<(), String>>,
    executors: usize,
    shared: &Shared,
) -> Result<(), String> {
    let mut waiting = executors;
    while waiting > 0 {
        match ready.recv_timeout(FLAG_POLL_PERIOD) {
            Ok(Ok(())) => waiting -= 1,
            Ok(Err(error)) => return Err(error),
            Err(mpsc::RecvTimeoutError::Timeout) if shared.stopping() => {
                return Err("stopped by a signal during start-up".into())
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err("an executor stopped before it was ready".into())
            }
        }
    }
    Ok(())
}

/// The one line tests and operators wait for: it is printed only when every shard is open.
/// systemd hears the same moment as `READY=1`.
fn announce(
    bound: SocketAddr,
    grpc: Option<SocketAddr>,
    s3: Option<SocketAddr>,
    shards: u32,
    executors: usize,
) {
    use std::io::Write;
    let grpc = grpc.map(|a| format!(" grpc={a}")).unwrap_or_default();
    let s3 = s3.map(|a| format!(" s3={a}")).unwrap_or_default();
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "tessera listening on {bound}{grpc}{s3} shards={shards} executors={executors}"
    );
    let _ = out.flush();
    tracing::info!(%bound, shards, executors, "ready");
    systemd::notify_or_log(&format!(
        "READY=1\nSTATUS=serving on {bound}{grpc}{s3}, {shards} shards, {executors} executors"
    ));
}

/// The CPUs this process may run on, in ascending order: its affinity mask, which `taskset`,
/// systemd's `CPUAffinity=` and cgroup cpusets set. Executors are pinned to these, one each in
/// turn, and there is one executor per CPU here unless `executors` says otherwise. Falls back to
/// every online CPU if the mask cannot be read.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: `cpu_set_t` is plain data; sched_getaffinity fills at most `size_of` bytes of it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: pid 0 is this thread; `set` is a valid, writable cpu_set_t of `size` bytes.
    if unsafe { libc::sched_getaffinity(0, size, &mut set) } == 0 {
        // SAFETY: CPU_ISSET only reads the set, for indices below CPU_SETSIZE.
        let cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
            .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
            .collect();
        if !cpus.is_empty() {
            return cpus;
        }
    }
    let online = std::thread::available_parallelism().map_or(1, |n| n.get());
    (0..online).collect()
}

/// Everything one executor needs; moved into its thread.
struct ExecutorPlan {
    /// This executor's index among the executors (its heartbeat slot).
    position: usize,
    executors: usize,
    shards: u32,
    fd: RawFd,
    /// `fd` is a duplicate of a socket systemd passed (it outlives the process).
    inherited: bool,
    grpc_fd: Option<RawFd>,
    grpc_inherited: bool,
    /// This executor's socket of the `s3.listen` group.
    s3_fd: Option<RawFd>,
    s3: S3Shared,
    config: Config,
    store_config: crate::store::StoreConfig,
    shared: Arc<Shared>,
    /// The trusted keys (reloaded by `auth::reload`) and the audit log.
    auth: crate::auth::AuthState,
    /// Taken (moved) by `run`, never cloned on the executor thread.
    mesh: Option<MeshBuilder<OwnerOp, glommio::channels::channel_mesh::Full>>,
    ready: mpsc::Sender<Result<(), String>>,
    /// Present when systemd's watchdog is on: this executor beats while it runs tasks.
    heartbeats: Option<Arc<watchdog::Heartbeats>>,
    /// The object-store tier, shared by every executor (`[tier]`).
    tier: Option<Arc<crate::tier::TierClient>>,
}

impl ExecutorPlan {
    async fn run(mut self) -> Result<(), String> {
        // SAFETY: `fd` is a listening socket created for this executor alone (by
        // `listener::bind_group`, or duplicated from systemd's by `listener::share_inherited`);
        // ownership moves into the glommio listener, which closes it.
        let listener = unsafe { glommio::net::TcpListener::from_raw_fd(self.fd) };
        let grpc_listener = self
            .grpc_fd
            // SAFETY: as above, one fd per executor.
            .map(|fd| unsafe { glommio::net::TcpListener::from_raw_fd(fd) });
        let s3_listener = self
            .s3_fd
            // SAFETY: as above, one fd per executor from `bind_group`.
            .map(|fd| unsafe { glommio::net::TcpListener::from_raw_fd(fd) });
        let mesh = self.mesh.take().expect("an executor plan runs once");
        let (senders, receivers) = match mesh.join().await {
            Ok(joined) => joined,
            Err(error) => return self.fail(format!("cannot join the executor mesh: {error}")),
        };
        let me = senders.peer_id();
        let owned = match open_owned(&self.store_config, self.shards, me, self.executors) {
            Ok(owned) => Rc::new(owned),
            Err(error) => return self.fail(error.to_string()),
        };
        spawn_owner_tasks(owned.clone(), receivers);
        spawn_maintenance(owned.clone(), self.shared.clone());
        let steer = Rc::new(Steer::new(
            me,
            self.executors,
            self.shards,
            owned.clone(),
            Rc::new(senders),
        ));
        let context = match conn::Context::new(
            &self.config,
            steer,
            self.shared.clone(),
            &self.auth,
            &self.s3,
            self.tier.clone(),
            self.position == 0,
        ) {
            Ok(context) => context,
            Err(error) => return self.fail(error),
        };
        if let Some(heartbeats) = &self.heartbeats {
            watchdog::spawn_beat(heartbeats.clone(), self.position, self.shared.clone());
        }
        let _ = self.ready.send(Ok(()));

        if let Some(grpc_listener) = grpc_listener {
            let context = context.clone();
            let inherited = self.grpc_inherited;
            glommio::spawn_local(async move {
                conn::accept_loop(grpc_listener, context, conn::Port::Grpc, inherited).await
            })
            .detach();
        }
        if let Some(s3_listener) = s3_listener {
            let context = context.clone();
            glommio::spawn_local(async move {
                conn::accept_loop(s3_listener, context, conn::Port::S3, false).await
            })
            .detach();
        }
        conn::accept_loop(listener, context.clone(), conn::Port::Main, self.inherited).await;
        context.wait_connections(self.config.drain_timeout).await;
        context.release_grpc_state();
        self.barrier().await;
        owned.close().map_err(|e| e.to_string())
    }

    fn fail(&self, error: String) -> Result<(), String> {
        self.shared.start_drain();
        let _ = self.ready.send(Err(error.clone()));
        Err(error)
    }

    /// Waits until every executor's connections are done, so no op can still reach our shards.
    async fn barrier(&self) {
        self.shared.connections_done.fetch_add(1, Ordering::AcqRel);
        let deadline = Instant::now() + self.config.drain_timeout;
        while self.shared.connections_done.load(Ordering::Acquire) < self.executors
            && Instant::now() < deadline
        {
            glommio::timer::sleep(FLAG_POLL_PERIOD).await;
        }
    }
}

fn open_owned(
    store_config: &crate::store::StoreConfig,
    shards: u32,
    me: usize,
    executors: usize,
) -> Result<OwnedShards, StoreError> {
    let mut owned = BTreeMap::new();
    for shard in (0..shards).filter(|s| owner_of(*s, executors) == me) {
        let started = Instant::now();
        owned.insert(shard, Shard::open(store_config, shard)?);
        tracing::info!(
            shard,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "shard open"
        );
    }
    Ok(OwnedShards::new(owned))
}

fn spawn_maintenance(owned: Rc<OwnedShards>, shared: Arc<Shared>) {
    glommio::spawn_local(async move {
        while !shared.draining() {
            glommio::timer::sleep(MAINTENANCE_PERIOD).await;
            owned.maintenance();
        }
    })
    .detach();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocols::health::Phase;

    #[test]
    fn readiness_is_starting_then_ready_then_stopping_before_the_drain() {
        let shared = Shared::default();
        assert_eq!(shared.readiness(), Phase::Starting);
        shared.ready.store(true, Ordering::Release);
        assert_eq!(shared.readiness(), Phase::Ready);
        shared.start_stopping();
        assert_eq!(shared.readiness(), Phase::Stopping);
        assert!(
            !shared.draining(),
            "drain_delay: stopping comes before the drain"
        );
        shared.start_drain();
        assert_eq!(shared.readiness(), Phase::Stopping);
    }

    #[test]
    fn a_drain_without_a_signal_also_takes_the_node_out_of_rotation() {
        // A failing executor drains directly; `/ready` must not stay 200 meanwhile.
        let shared = Shared::default();
        shared.ready.store(true, Ordering::Release);
        shared.start_drain();
        assert_eq!(shared.readiness(), Phase::Stopping);
    }
}
