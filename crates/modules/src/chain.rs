//! The `chain` module: several modules in order on one port (for example
//! `users` then `totp`). All must grant, and they must agree on the user
//! name.
//!
//! The chain presents ONE transaction to the real host. It begins the first
//! inner module with a host adaptor of its own (same handle, same buffer
//! sizes): the inner module's Send and Receive go to the real host, its
//! Complete is intercepted:
//! - SUCCESS: the name (and domain) of the first module are kept; a later
//!   module must grant the same user name (byte for byte; domains are not
//!   compared), or the chain completes FAILURE for the first module's name,
//!   with the reason logged. Then the module gets its End (cleanup) and the
//!   next one its Begin (on a blocking thread). After the last, the chain
//!   completes SUCCESS with the first module's name and domain.
//! - FAILURE or ERROR: forwarded to the real host at once (the first one
//!   wins; the later modules never run).
//! - an invalid message (a module defect): forwarded as it is, so the real
//!   host records the defect; never a grant.
//! - a Begin that returns non-zero for a later module: ERROR with its code.
//!
//! A later module can be told who the earlier ones granted, two ways: a
//! step built with [`ChainStep::with_user`] is begun through a closure that
//! gets the name (for example `TotpModule::begin_for_user`), and any module
//! may call [`previous_user`] with its Begin's handle (from its Begin until
//! the chain's End). This is how a `totp` step takes the name from a
//! `users` step instead of asking for it again.
//!
//! Receive: the chain owns the one Receive the real host allows. A module
//! that completes while its Receive is pending leaves it to the chain; bytes
//! it brings are kept (at most one receive buffer) and handed to the next
//! module's first Receive: type-ahead survives the hand-over. A module whose
//! Receive joins a Receive left pending by an earlier module waits under
//! that one's timeout.
//!
//! End: propagated to the inner module running (cleanup after the chain's
//! Complete, returning its code then; an abort before it, returning
//! [`crate::codes::END_ABORTED`] whatever the inner End said; no inner
//! Complete is taken after the chain's End began).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use securityhost::consts::{
    ERROR_ASYNC_REQUEST_PENDING, ERROR_BUFFER_TOO_SMALL, ERROR_INVALID_PARAMETER,
    ERROR_INVALID_PORT_HANDLE, ERROR_PORT_DISCONNECTED, NO_ERROR, PENDING,
};
use securityhost::{
    BeginArgs, HPort, Host, ReceiveCompletion, ReceiveEvent, SecurityInfo, SecurityMessage,
    SecurityModule, Verdict,
};
use tokio::runtime::Handle;

use crate::codes::END_ABORTED;

/// A chain that cannot work.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChainConfigError {
    /// No modules.
    #[error("a chain needs at least one module")]
    Empty,
    /// The first step wants a previous user: there is none.
    #[error("the first module of a chain cannot take the user from a previous one")]
    UserForFirst,
}

/// Begins a module for a user named by the earlier modules of the chain
/// (for example `TotpModule::begin_for_user`); same return as Begin.
pub type BeginForUser = Arc<dyn Fn(BeginArgs, &str) -> u32 + Send + Sync>;

/// One module of a chain, and how it is begun.
#[derive(Clone)]
pub struct ChainStep {
    /// The module (its name, Begin unless `begin_for_user` is set, End).
    pub module: Arc<dyn SecurityModule>,
    /// When set, used instead of `module.begin` with the user name the
    /// earlier modules granted.
    pub begin_for_user: Option<BeginForUser>,
}

impl std::fmt::Debug for ChainStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainStep")
            .field("module", &self.module.name())
            .field("begin_for_user", &self.begin_for_user.is_some())
            .finish()
    }
}

impl ChainStep {
    /// A step begun with the module's own Begin.
    pub fn new(module: Arc<dyn SecurityModule>) -> ChainStep {
        ChainStep {
            module,
            begin_for_user: None,
        }
    }

    /// A step begun by `begin` with the user name the earlier modules
    /// granted, for example
    /// `ChainStep::with_user(totp.clone(), move |a, u| totp.begin_for_user(a, u))`.
    pub fn with_user(
        module: Arc<dyn SecurityModule>,
        begin: impl Fn(BeginArgs, &str) -> u32 + Send + Sync + 'static,
    ) -> ChainStep {
        ChainStep {
            module,
            begin_for_user: Some(Arc::new(begin)),
        }
    }
}

/// The user (and domain) the earlier modules of a chain granted on the
/// transaction `hport`, while a later module of that chain runs (from its
/// Begin until the chain's End). `None` outside a chain or during the first
/// module.
pub fn previous_user(hport: HPort) -> Option<(String, String)> {
    lock(registry()).get(&hport).cloned()
}

fn registry() -> &'static Mutex<HashMap<HPort, (String, String)>> {
    static REG: OnceLock<Mutex<HashMap<HPort, (String, String)>>> = OnceLock::new();
    REG.get_or_init(|| Mutex::new(HashMap::new()))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The `chain` module. See the module documentation.
pub struct ChainModule {
    handle: Handle,
    stages: Arc<[ChainStep]>,
    name: String,
    txs: Mutex<HashMap<HPort, Arc<ChainTx>>>,
}

impl std::fmt::Debug for ChainModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainModule")
            .field("name", &self.name)
            .field("dialogs", &self.active_dialogs())
            .finish_non_exhaustive()
    }
}

impl ChainModule {
    /// A chain of `modules`, run in order; later Begins run on `handle`'s
    /// blocking pool.
    pub fn new(
        handle: Handle,
        modules: Vec<Arc<dyn SecurityModule>>,
    ) -> Result<ChainModule, ChainConfigError> {
        ChainModule::with_steps(handle, modules.into_iter().map(ChainStep::new).collect())
    }

    /// A chain of `steps`, some of which may be begun with the user name the
    /// earlier ones granted ([`ChainStep::with_user`]; not the first).
    pub fn with_steps(
        handle: Handle,
        steps: Vec<ChainStep>,
    ) -> Result<ChainModule, ChainConfigError> {
        match steps.first() {
            None => return Err(ChainConfigError::Empty),
            Some(s) if s.begin_for_user.is_some() => return Err(ChainConfigError::UserForFirst),
            Some(_) => {}
        }
        let name = format!(
            "chain({})",
            steps
                .iter()
                .map(|s| s.module.name())
                .collect::<Vec<_>>()
                .join(",")
        );
        Ok(ChainModule {
            handle,
            stages: steps.into(),
            name,
            txs: Mutex::new(HashMap::new()),
        })
    }

    /// Transactions begun and not yet ended.
    pub fn active_dialogs(&self) -> usize {
        lock(&self.txs).len()
    }
}

/// Where a chain transaction is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Stage `i` runs (it may be in its Begin).
    Running(usize),
    /// Stage `i` completed SUCCESS; its End and the next Begin are under way.
    Switching(usize),
    /// Stage `i` is in its Begin (it may already call the host).
    Beginning(usize),
    /// The chain completed; stage `i` (if any) was the last to run and
    /// still needs its End.
    Completed(Option<usize>),
    /// The chain's End came.
    Ended,
}

impl Phase {
    fn is_current(self, stage: usize) -> bool {
        self == Phase::Running(stage) || self == Phase::Beginning(stage)
    }
}

struct RxState {
    /// A real Receive is pending (ours, whoever asked for it).
    real_pending: bool,
    /// Bytes received and not delivered yet.
    buffered: Vec<u8>,
    /// The stage waiting for bytes: its index, room, event.
    waiter: Option<(usize, usize, ReceiveEvent)>,
    /// The caller hung up.
    hung_up: bool,
}

struct State {
    phase: Phase,
    first: Option<(String, String)>,
    rx: RxState,
}

struct ChainTx {
    hport: HPort,
    real: Arc<dyn Host>,
    send_size: usize,
    recv_size: usize,
    handle: Handle,
    stages: Arc<[ChainStep]>,
    chain_name: String,
    state: Mutex<State>,
}

/// The host one inner module sees.
struct StageHost {
    tx: Arc<ChainTx>,
    stage: usize,
}

impl SecurityModule for ChainModule {
    fn name(&self) -> &str {
        &self.name
    }

    fn begin(&self, args: BeginArgs) -> u32 {
        let tx = Arc::new(ChainTx {
            hport: args.hport,
            real: args.host.clone(),
            send_size: args.send_buffer_size,
            recv_size: args.recv_buffer_size,
            handle: self.handle.clone(),
            stages: self.stages.clone(),
            chain_name: self.name.clone(),
            state: Mutex::new(State {
                phase: Phase::Running(0),
                first: None,
                rx: RxState {
                    real_pending: false,
                    buffered: Vec::new(),
                    waiter: None,
                    hung_up: false,
                },
            }),
        });
        lock(&self.txs).insert(args.hport, tx.clone());
        let code = self.stages[0].module.begin(tx.stage_args(0));
        if code != NO_ERROR {
            // No Complete is expected: the real host hangs up.
            lock(&self.txs).remove(&args.hport);
            lock(&tx.state).phase = Phase::Ended;
        }
        code
    }

    fn end(&self, hport: HPort) -> u32 {
        let Some(tx) = lock(&self.txs).remove(&hport) else {
            return NO_ERROR;
        };
        lock(registry()).remove(&hport);
        let (phase, waiter) = {
            let mut s = lock(&tx.state);
            let phase = std::mem::replace(&mut s.phase, Phase::Ended);
            (phase, s.rx.waiter.take())
        };
        // The stage's event is dropped, never called (as the host does).
        drop(waiter);
        match phase {
            Phase::Completed(Some(i)) => tx.stages[i].module.end(hport),
            Phase::Completed(None) => NO_ERROR,
            // The Begin under way sees Ended and ends its stage itself.
            Phase::Beginning(_) => END_ABORTED,
            Phase::Running(i) => {
                let code = tx.stages[i].module.end(hport);
                tracing::debug!(%hport, stage = tx.stages[i].module.name(), code, "chain aborted");
                END_ABORTED
            }
            // The switching task sees Ended and ends what it began.
            Phase::Switching(_) => END_ABORTED,
            Phase::Ended => NO_ERROR,
        }
    }
}

impl ChainTx {
    fn stage_args(self: &Arc<Self>, stage: usize) -> BeginArgs {
        BeginArgs {
            hport: self.hport,
            send_buffer_size: self.send_size,
            recv_buffer_size: self.recv_size,
            host: Arc::new(StageHost {
                tx: self.clone(),
                stage,
            }),
        }
    }

    fn is_current(&self, stage: usize) -> bool {
        lock(&self.state).phase.is_current(stage)
    }

    fn complete_real(&self, msg: &SecurityMessage) {
        let r = self.real.complete(msg);
        if r != NO_ERROR {
            tracing::debug!(hport = %self.hport, code = r, "chain Complete refused");
        }
    }

    /// A stage's Complete.
    fn stage_complete(self: &Arc<Self>, stage: usize, msg: &SecurityMessage) -> u32 {
        // A message naming another handle is a defect of this stage: it is
        // forwarded below, and the real host records it.
        let name = self.stages[stage].module.name().to_string();
        let verdict = msg.validate(self.hport);
        let mut s = lock(&self.state);
        if !s.phase.is_current(stage) {
            // A second Complete, or one after End.
            return ERROR_INVALID_PARAMETER;
        }
        let last = stage + 1 == self.stages.len();
        let forward = match verdict {
            Ok(Verdict::Success { user, domain }) => {
                let first = s
                    .first
                    .get_or_insert_with(|| (user.clone(), domain.clone()))
                    .clone();
                if first.0 != user {
                    tracing::warn!(hport = %self.hport, chain = self.chain_name, stage = name,
                        first = first.0, user, "chain modules disagree on the user name");
                    s.phase = Phase::Completed(Some(stage));
                    let waiter = s.rx.waiter.take();
                    drop(s);
                    drop(waiter);
                    let m = SecurityMessage::failure(self.hport, &first.0, &first.1)
                        .unwrap_or_else(|_| {
                            SecurityMessage::error(self.hport, ERROR_INVALID_PARAMETER)
                        });
                    self.complete_real(&m);
                    return NO_ERROR;
                }
                // A Receive the stage left pending is the chain's now.
                let waiter = s.rx.waiter.take();
                if last {
                    let (u, d) = first;
                    s.phase = Phase::Completed(Some(stage));
                    drop(s);
                    drop(waiter);
                    tracing::debug!(hport = %self.hport, chain = self.chain_name, user = u, "chain granted");
                    let m = SecurityMessage::success(self.hport, &u, &d).unwrap_or_else(|_| {
                        SecurityMessage::error(self.hport, ERROR_INVALID_PARAMETER)
                    });
                    self.complete_real(&m);
                    return NO_ERROR;
                }
                lock(registry()).insert(self.hport, first);
                s.phase = Phase::Switching(stage);
                drop(s);
                drop(waiter);
                let tx = self.clone();
                self.handle.spawn_blocking(move || tx.switch(stage));
                return NO_ERROR;
            }
            Ok(v) => {
                tracing::debug!(hport = %self.hport, chain = self.chain_name, stage = name, verdict = ?v.msg_id(), "chain refused");
                msg
            }
            Err(defect) => {
                tracing::warn!(hport = %self.hport, chain = self.chain_name, stage = name, %defect, "chain module defect");
                msg
            }
        };
        s.phase = Phase::Completed(Some(stage));
        let waiter = s.rx.waiter.take();
        drop(s);
        drop(waiter);
        self.real.complete(forward)
    }

    /// After stage `done` granted: its End, then the next one's Begin.
    fn switch(self: &Arc<Self>, done: usize) {
        let code = self.stages[done].module.end(self.hport);
        if code != NO_ERROR {
            tracing::debug!(hport = %self.hport, stage = self.stages[done].module.name(), code, "End after Complete returned non-zero");
        }
        let next = done + 1;
        let user = {
            let mut s = lock(&self.state);
            if s.phase != Phase::Switching(done) {
                return;
            }
            s.phase = Phase::Beginning(next);
            s.first.as_ref().map(|f| f.0.clone()).unwrap_or_default()
        };
        let step = &self.stages[next];
        let args = self.stage_args(next);
        let code = match &step.begin_for_user {
            Some(begin) => begin(args, &user),
            None => step.module.begin(args),
        };
        let mut s = lock(&self.state);
        if code != NO_ERROR {
            tracing::warn!(hport = %self.hport, stage = self.stages[next].module.name(), code, "chain module Begin failed");
            if s.phase == Phase::Beginning(next) {
                // No Complete and no End are due from a failed Begin.
                s.phase = Phase::Completed(None);
                drop(s);
                self.complete_real(&SecurityMessage::error(self.hport, code));
            }
            return;
        }
        match s.phase {
            Phase::Beginning(i) if i == next => s.phase = Phase::Running(next),
            Phase::Ended => {
                // The chain's End came during Begin: end the stage now.
                drop(s);
                let code = self.stages[next].module.end(self.hport);
                tracing::debug!(hport = %self.hport, stage = self.stages[next].module.name(), code, "chain aborted during Begin");
            }
            _ => {}
        }
    }

    /// A stage's Receive.
    fn stage_receive(
        self: &Arc<Self>,
        stage: usize,
        room: usize,
        timeout_secs: u32,
        event: ReceiveEvent,
    ) -> u32 {
        if room == 0 {
            return ERROR_INVALID_PARAMETER;
        }
        if room > self.recv_size {
            return ERROR_BUFFER_TOO_SMALL;
        }
        let mut s = lock(&self.state);
        if !s.phase.is_current(stage) {
            return ERROR_INVALID_PORT_HANDLE;
        }
        if s.rx.waiter.is_some() {
            return ERROR_ASYNC_REQUEST_PENDING;
        }
        if !s.rx.buffered.is_empty() {
            let n = room.min(s.rx.buffered.len());
            let data: Vec<u8> = s.rx.buffered.drain(..n).collect();
            drop(s);
            // Never call the event inside Receive: from a task, as the host
            // would.
            self.handle.spawn(async move {
                event(ReceiveCompletion {
                    last_error: NO_ERROR,
                    data,
                });
            });
            return PENDING;
        }
        if s.rx.hung_up {
            return ERROR_PORT_DISCONNECTED;
        }
        if s.rx.real_pending {
            s.rx.waiter = Some((stage, room, event));
            return PENDING;
        }
        s.rx.waiter = Some((stage, room, event));
        s.rx.real_pending = true;
        drop(s);
        let tx = self.clone();
        let r = self.real.receive(
            self.hport,
            room,
            timeout_secs,
            Box::new(move |c| tx.real_received(c)),
        );
        if r != PENDING {
            let mut s = lock(&self.state);
            s.rx.real_pending = false;
            s.rx.waiter = None;
        }
        r
    }

    /// The real host's Receive completed.
    fn real_received(&self, c: ReceiveCompletion) {
        let mut s = lock(&self.state);
        s.rx.real_pending = false;
        if c.last_error == ERROR_PORT_DISCONNECTED {
            s.rx.hung_up = true;
        }
        let waiter = s.rx.waiter.take();
        let waiter = waiter.filter(|w| s.phase.is_current(w.0));
        let Some((_, room, event)) = waiter else {
            if c.last_error == NO_ERROR {
                // Left by a stage that completed: type-ahead for the next,
                // bounded by one receive buffer.
                let room = self.recv_size.saturating_sub(s.rx.buffered.len());
                let n = room.min(c.data.len());
                s.rx.buffered.extend_from_slice(&c.data[..n]);
            }
            return;
        };
        let delivered = if c.last_error == NO_ERROR {
            let n = room.min(c.data.len());
            let rest = c.data.get(n..).unwrap_or_default();
            s.rx.buffered.extend_from_slice(rest);
            ReceiveCompletion {
                last_error: NO_ERROR,
                data: c.data[..n].to_vec(),
            }
        } else {
            c
        };
        drop(s);
        event(delivered);
    }
}

impl Host for StageHost {
    fn send(&self, hport: HPort, data: &[u8]) -> u32 {
        if hport != self.tx.hport || !self.tx.is_current(self.stage) {
            return ERROR_INVALID_PORT_HANDLE;
        }
        self.tx.real.send(hport, data)
    }

    fn receive(&self, hport: HPort, room: usize, timeout_secs: u32, event: ReceiveEvent) -> u32 {
        if hport != self.tx.hport {
            return ERROR_INVALID_PORT_HANDLE;
        }
        self.tx.stage_receive(self.stage, room, timeout_secs, event)
    }

    fn get_info(&self, hport: HPort) -> Result<SecurityInfo, u32> {
        if hport != self.tx.hport || !self.tx.is_current(self.stage) {
            return Err(ERROR_INVALID_PORT_HANDLE);
        }
        self.tx.real.get_info(hport)
    }

    fn complete(&self, msg: &SecurityMessage) -> u32 {
        self.tx.stage_complete(self.stage, msg)
    }
}
