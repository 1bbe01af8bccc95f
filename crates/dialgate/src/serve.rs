//! `dialgate serve`: the supervisor. It opens the event log, builds each port
//! group's module, listens, runs one task per caller, and on SIGTERM/SIGINT
//! ends every dialog (each recorded) before it exits 0.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use securityhost::{PortTable, SecurityModule};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::call::{self, CallerId, GroupRuntime};
use crate::config::{CallbackPolicy, Config, Group, Handoff, ModuleConfig, PortKind};
use crate::handoff;

/// Builds the module a group names (`None` on a dedicated PPP port).
fn build_module(
    cfg: &Config,
    group: &Group,
    handle: &tokio::runtime::Handle,
    table: &Arc<PortTable>,
) -> Result<Option<Arc<dyn SecurityModule>>, String> {
    match &group.module {
        None => Ok(None),
        Some(m) => build_one(cfg, m, handle, table)
            .map(|(m, _)| Some(m))
            .map_err(|e| {
                format!(
                    "group {}: module {}: {e}",
                    group.name,
                    group.module.as_ref().map_or("none", ModuleConfig::name)
                )
            }),
    }
}

/// A module and, for a chain step that takes its user from the step before,
/// how to begin it for that user.
type Built = (
    Arc<dyn SecurityModule>,
    Option<modules::chain::BeginForUser>,
);

fn shared<M: SecurityModule>(m: M) -> Arc<dyn SecurityModule> {
    Arc::new(m)
}

fn build_one(
    cfg: &Config,
    m: &ModuleConfig,
    handle: &tokio::runtime::Handle,
    table: &Arc<PortTable>,
) -> Result<Built, String> {
    let h = handle.clone();
    Ok(match m {
        ModuleConfig::C { path } => {
            let w = cmodule::WorkerModule::start(
                cmodule::WorkerCommand::new("/proc/self/exe").arg("module-worker"),
                path,
                cmodule::WorkerOptions::default(),
            )
            .map_err(|e| format!("{}: {e}", path.display()))?;
            // A worker that dies ends its callers' dialogs at once, as defects.
            let table = table.clone();
            w.on_worker_death(move |hp, d| {
                if let Some(p) = table.get(hp) {
                    p.module_defect(d);
                }
            });
            (shared(w), None)
        }
        ModuleConfig::Users {
            banner,
            tries,
            prompt_timeout,
            domain,
        } => (
            shared(
                modules::UsersModule::new(
                    h,
                    modules::UsersOptions {
                        users_file: cfg.users_file.clone(),
                        banner: banner.clone(),
                        tries: *tries,
                        prompt_timeout_secs: *prompt_timeout,
                        domain: domain.clone(),
                        ..Default::default()
                    },
                )
                .map_err(|e| e.to_string())?,
            ),
            None,
        ),
        ModuleConfig::Pin {
            user,
            pin_file,
            tries,
        } => {
            let pin = std::fs::read_to_string(pin_file)
                .map_err(|e| format!("cannot read pin_file {}: {e}", pin_file.display()))?;
            let pin = pin.lines().next().unwrap_or("").trim().to_string();
            if pin.is_empty() {
                return Err(format!("pin_file {} is empty", pin_file.display()));
            }
            let opts = modules::PinOptions {
                user: user.clone(),
                pin,
                tries: *tries,
                ..Default::default()
            };
            (
                shared(modules::PinModule::new(h, opts).map_err(|e| e.to_string())?),
                None,
            )
        }
        ModuleConfig::Totp {
            store,
            banner,
            tries,
            prompt_timeout,
            domain,
            window,
            user_from_previous,
        } => {
            let t = Arc::new(
                modules::TotpModule::new(
                    h,
                    modules::TotpOptions {
                        store_file: store.clone(),
                        banner: banner.clone(),
                        tries: *tries,
                        prompt_timeout_secs: *prompt_timeout,
                        domain: domain.clone(),
                        window: *window,
                        user_from_previous: *user_from_previous,
                        ..Default::default()
                    },
                )
                .map_err(|e| e.to_string())?,
            );
            let for_user: Option<modules::chain::BeginForUser> = user_from_previous.then(|| {
                let t = t.clone();
                Arc::new(move |a: securityhost::BeginArgs, u: &str| t.begin_for_user(a, u))
                    as modules::chain::BeginForUser
            });
            (t as Arc<dyn SecurityModule>, for_user)
        }
        ModuleConfig::Radius {
            servers,
            timeout,
            retries,
            require_message_authenticator,
            nas_identifier,
            banner,
            tries,
            max_challenge_rounds,
            prompt_timeout,
            domain,
        } => {
            let opts = modules::RadiusOptions {
                servers: servers
                    .iter()
                    .map(|(addr, secret)| radius::ServerConfig {
                        addr: *addr,
                        secret: secret.expose().to_vec(),
                    })
                    .collect(),
                timeout: *timeout,
                retries: *retries,
                require_message_authenticator: *require_message_authenticator,
                nas_identifier: nas_identifier.clone(),
                banner: banner.clone(),
                tries: *tries,
                max_challenge_rounds: *max_challenge_rounds,
                prompt_timeout_secs: *prompt_timeout,
                domain: domain.clone(),
                ..Default::default()
            };
            (
                shared(modules::RadiusModule::new(h, opts).map_err(|e| e.to_string())?),
                None,
            )
        }
        ModuleConfig::Pam {
            service,
            ask_username,
            banner,
            tries,
            prompt_timeout,
            domain,
        } => {
            let opts = modules::PamOptions {
                service: service.clone(),
                ask_username: *ask_username,
                banner: banner.clone(),
                tries: *tries,
                prompt_timeout_secs: *prompt_timeout,
                domain: domain.clone(),
                ..Default::default()
            };
            (
                shared(modules::PamModule::new(h, opts).map_err(|e| e.to_string())?),
                None,
            )
        }
        ModuleConfig::Exec { program, args, env } => {
            let opts = modules::ExecOptions {
                program: program.clone(),
                args: args.clone(),
                env: env.clone(),
                ..Default::default()
            };
            (
                shared(modules::ExecModule::new(h, opts).map_err(|e| e.to_string())?),
                None,
            )
        }
        ModuleConfig::Chain { steps } => {
            let mut built = Vec::new();
            for st in steps {
                let (m, for_user) = build_one(cfg, st, handle, table)?;
                built.push(match for_user {
                    Some(b) => modules::chain::ChainStep {
                        module: m,
                        begin_for_user: Some(b),
                    },
                    None => modules::chain::ChainStep::new(m),
                });
            }
            (
                shared(
                    modules::ChainModule::with_steps(handle.clone(), built)
                        .map_err(|e| e.to_string())?,
                ),
                None,
            )
        }
    })
}

fn ppp_radius(
    handle: &tokio::runtime::Handle,
    r: &crate::config::PppRadius,
) -> Result<Arc<modules::RadiusPpp>, String> {
    let servers = |v: &[(std::net::SocketAddr, crate::config::Secret)]| {
        v.iter()
            .map(|(addr, secret)| radius::ServerConfig {
                addr: *addr,
                secret: secret.expose().to_vec(),
            })
            .collect::<Vec<_>>()
    };
    modules::RadiusPpp::new(
        handle.clone(),
        modules::RadiusPppOptions {
            auth_servers: servers(&r.servers),
            acct_servers: servers(&r.accounting),
            timeout: r.timeout,
            retries: r.retries,
            require_message_authenticator: r.require_message_authenticator,
            nas_identifier: r.nas_identifier.clone(),
        },
    )
    .map(Arc::new)
    .map_err(|e| e.to_string())
}

/// `dialgate check-config`.
pub fn check_config(cfg: &Config) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("dialgate: cannot start a runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let mut ok = true;
    let table = Arc::new(PortTable::new());
    for g in &cfg.groups {
        if let Err(e) = build_module(cfg, g, rt.handle(), &table) {
            eprintln!("dialgate: {e}");
            ok = false;
        }
    }
    if !ok {
        return ExitCode::from(2);
    }
    let src = cfg
        .source
        .as_ref()
        .map_or("<embedded defaults>".to_string(), |p| {
            p.display().to_string()
        });
    println!("{src}: ok ({} port group(s))", cfg.groups.len());
    for g in &cfg.groups {
        println!(
            "  {}: {} {} module={} max_callers={} dialog_time_limit={}s handoff={}",
            g.name,
            g.kind.name(),
            endpoint(&g.kind),
            g.module.as_ref().map_or("none", ModuleConfig::name),
            g.max_callers,
            g.transaction.dialog_time_limit.as_secs(),
            g.handoff.describe()
        );
        for note in message_authenticator_notes(g) {
            println!("    {note}");
        }
    }
    ExitCode::SUCCESS
}

/// `check-config` lines for RADIUS clients that do not always require a
/// Message-Authenticator (the default, against BlastRADIUS).
fn message_authenticator_notes(g: &crate::config::Group) -> Vec<String> {
    use radius::RequireMessageAuthenticator as R;
    fn walk(m: &ModuleConfig, out: &mut Vec<(&'static str, R)>) {
        match m {
            ModuleConfig::Radius {
                require_message_authenticator,
                ..
            } => out.push(("radius module", *require_message_authenticator)),
            ModuleConfig::Chain { steps } => steps.iter().for_each(|s| walk(s, out)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    if let Some(m) = &g.module {
        walk(m, &mut found);
    }
    if let Handoff::Ppp(p) = &g.handoff
        && let Some(r) = &p.radius
    {
        found.push(("PPP RADIUS", r.require_message_authenticator));
    }
    found
        .into_iter()
        .filter_map(|(what, policy)| match policy {
            R::Always => None,
            R::Auto => Some(format!(
                "note: {what}: require_message_authenticator = \"auto\": unsigned replies are believed until a server has signed one"
            )),
            R::Never => Some(format!(
                "warning: {what}: require_message_authenticator = false: unsigned replies are believed (open to BlastRADIUS, CVE-2024-3596)"
            )),
        })
        .collect()
}

fn endpoint(k: &PortKind) -> String {
    match k {
        PortKind::Tcp(a) | PortKind::Telnet(a) => a.to_string(),
        PortKind::Pty { link } => link.display().to_string(),
        PortKind::Serial { devices, settings } => format!(
            "{} ({settings})",
            devices
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// `dialgate serve`.
pub fn main(cfg: Config) -> ExitCode {
    crate::logging::init("info");
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("dialgate: cannot start a runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let stop = {
        let _in_runtime = rt.enter();
        stop_signals()
    };
    match rt.block_on(serve_with(cfg, Hooks::default(), stop)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dialgate: {e}");
            ExitCode::from(1)
        }
    }
}

/// What a test can plug into an in-process server.
#[derive(Default, Clone)]
pub struct Hooks {
    /// Control lines for serial devices instead of their ioctls.
    pub lines: Option<crate::modemline::LinesHook>,
    /// Opens the event log with this gate, to stall its writer like a hung
    /// disk.
    pub log_stall: Option<eventlog::StallGate>,
    /// Told `(group, address or link)` for each group once it listens.
    pub bound: Option<std::sync::mpsc::Sender<(String, String)>>,
}

/// Serves `cfg` until `stop` completes, then ends every call (each
/// recorded) and returns. `dialgate serve` stops on SIGTERM/SIGINT.
///
/// # Errors
/// A message naming what could not be set up (event log, tun, a port).
pub async fn serve_with(
    cfg: Config,
    hooks: Hooks,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), String> {
    std::fs::create_dir_all(&cfg.data_dir).map_err(|e| {
        format!(
            "cannot create the data directory {}: {e}",
            cfg.data_dir.display()
        )
    })?;
    let log = eventlog::EventLog::open_with(
        &cfg.event_log,
        &eventlog::Options {
            stall: hooks.log_stall.clone(),
            ..eventlog::Options::default()
        },
    )
    .map_err(|e| format!("cannot open the event log: {e}"))?;
    let writer = log.writer();
    // One for every group: a log that cannot be written refuses callers
    // everywhere.
    let log_health = Arc::new(call::LogHealth::new(cfg.event_log_timeout));
    let table = Arc::new(PortTable::new());
    let handle = tokio::runtime::Handle::current();
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut listeners = JoinSet::new();

    let src = cfg
        .source
        .as_ref()
        .map_or("embedded defaults".to_string(), |p| p.display().to_string());
    tracing::info!("dialgate {} starting ({src})", env!("CARGO_PKG_VERSION"));
    tracing::info!("data directory {}", cfg.data_dir.display());
    tracing::info!("event log {}", cfg.event_log.display());

    let network = match &cfg.network {
        Some(n)
            if cfg
                .groups
                .iter()
                .any(|g| matches!(g.handoff, Handoff::Ppp(_))) =>
        {
            let net = crate::network::Network::start(n, shutdown_rx.clone())
                .map_err(|e| format!("cannot create the tun device {}: {e}", n.tun))?;
            tracing::info!(
                "network: tun {} with {}/{} (mtu {}); route the pools' prefix to it and add NAT if callers need the outside",
                net.tun_name(),
                n.address,
                n.prefix_len,
                n.mtu
            );
            Some(net)
        }
        _ => None,
    };
    let mut bound = Vec::new();
    for g in &cfg.groups {
        // The C worker start blocks (up to its ready timeout): off the reactor.
        let module = tokio::task::block_in_place(|| build_module(&cfg, g, &handle, &table))?;
        let ppp = match (&g.handoff, &network) {
            (Handoff::Ppp(p), Some(net)) => Some(crate::session::PppRuntime {
                radius: p
                    .radius
                    .as_ref()
                    .map(|r| {
                        ppp_radius(&handle, r)
                            .map_err(|e| format!("group {}: PPP RADIUS: {e}", g.name))
                    })
                    .transpose()?,
                cfg: p.clone(),
                pool: crate::pool::Pool::new(p.pool.0, p.pool.1)
                    .ok_or_else(|| format!("group {}: empty pool", g.name))?,
                net: net.clone(),
                local: Arc::new(modules::LocalPpp::new(
                    cfg.users_file.clone(),
                    cfg.secrets_file.clone(),
                    modules::Verifiers::process(),
                )),
            }),
            _ => None,
        };
        let rtg = Arc::new(GroupRuntime {
            cfg: g.clone(),
            module,
            ppp,
            table: table.clone(),
            log: writer.clone(),
            log_health: log_health.clone(),
        });
        let pcfg = match &g.kind {
            PortKind::Tcp(a) => ports::PortConfig::tcp(*a),
            PortKind::Telnet(a) => ports::PortConfig::telnet(*a),
            PortKind::Pty { link } => ports::PortConfig::pty(Some(link.clone())),
            PortKind::Serial { devices, .. } => {
                // One task per line; each opens its device and answers alone.
                tracing::info!(
                    "group {}: serial, {} line(s): {}, module {}",
                    g.name,
                    devices.len(),
                    endpoint(&g.kind),
                    g.module.as_ref().map_or("none", ModuleConfig::name)
                );
                for d in devices {
                    listeners.spawn(crate::modemline::run_line(
                        rtg.clone(),
                        d.clone(),
                        hooks.lines.clone(),
                        shutdown_rx.clone(),
                    ));
                }
                bound.push((g.clone(), endpoint(&g.kind)));
                continue;
            }
        }
        .with_max_callers(g.max_callers);
        let port = ports::Port::bind(pcfg)
            .await
            .map_err(|e| format!("group {}: {e} ({})", g.name, endpoint(&g.kind)))?;
        let at = match port.local_addr() {
            Some(a) => {
                tracing::info!(
                    "group {}: {} port listening on {a}, module {}",
                    g.name,
                    g.kind.name(),
                    g.module.as_ref().map_or("none", ModuleConfig::name)
                );
                a.to_string()
            }
            None => {
                tracing::info!(
                    "group {}: pty port at {}, module {}",
                    g.name,
                    endpoint(&g.kind),
                    g.module.as_ref().map_or("none", ModuleConfig::name)
                );
                endpoint(&g.kind)
            }
        };
        if let Some(tx) = &hooks.bound {
            let _ = tx.send((g.name.clone(), at.clone()));
        }
        bound.push((g.clone(), at));
        listeners.spawn(port_loop(rtg, port, shutdown_rx.clone()));
    }
    print_welcome(&cfg, &bound);

    stop.await;
    tracing::info!("shutting down: ending every dialog");
    let _ = shutdown_tx.send(true);
    while listeners.join_next().await.is_some() {}
    // A hung disk must not hold the exit for ever: what is still queued
    // then is said, and lost with the process.
    if !log.close_within(LOG_CLOSE_LIMIT) {
        tracing::error!(
            "event log: {} record(s) still not written after {} s; exiting without them",
            writer.pending(),
            LOG_CLOSE_LIMIT.as_secs()
        );
    }
    drop(writer);
    tracing::info!("stopped");
    Ok(())
}

fn print_welcome(cfg: &Config, bound: &[(Group, String)]) {
    let users = cfg
        .groups
        .iter()
        .any(|g| matches!(g.module, Some(ModuleConfig::Users { .. })));
    if users {
        let cfgarg = cfg
            .source
            .as_ref()
            .map(|p| format!(" --config {}", p.display()))
            .unwrap_or_default();
        tracing::info!(
            "add a user:  dialgate{cfgarg} --data-dir {} user add NAME",
            cfg.data_dir.display()
        );
    }
    for (g, at) in bound {
        match &g.kind {
            PortKind::Telnet(_) => {
                let (h, p) = at.rsplit_once(':').unwrap_or((at, ""));
                tracing::info!("dial in:     telnet {h} {p}");
            }
            PortKind::Tcp(_) => {
                let (h, p) = at.rsplit_once(':').unwrap_or((at, ""));
                tracing::info!("dial in:     nc {h} {p}   (raw TCP)");
            }
            PortKind::Pty { .. } => tracing::info!("dial in:     screen {at}   (or chat, minicom)"),
            PortKind::Serial { .. } => tracing::info!("dial in:     call the modems on {at}"),
        }
    }
    tracing::info!(
        "the log:     dialgate --data-dir {} log --follow",
        cfg.data_dir.display()
    );
}

/// Watches the signals now (inside a runtime), so none arrives unhandled
/// while the server sets up; the future completes on SIGTERM or SIGINT.
///
/// SIGHUP's default action would kill the server (exit 129, no End called,
/// no records), and operators and `systemctl reload` send it. There is no
/// reload yet: it is caught, logged at warn, and serving goes on.
fn stop_signals() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{Signal, SignalKind, signal};
    let watch = |kind: SignalKind, name: &str| -> Option<Signal> {
        signal(kind)
            .inspect_err(|e| tracing::error!("cannot watch {name}: {e}"))
            .ok()
    };
    let term = watch(SignalKind::terminate(), "SIGTERM");
    let int = watch(SignalKind::interrupt(), "SIGINT");
    let hup = watch(SignalKind::hangup(), "SIGHUP");
    async fn next(s: &mut Option<Signal>) {
        if let Some(s) = s
            && s.recv().await.is_some()
        {
            return;
        }
        std::future::pending().await
    }
    async move {
        let (mut term, mut int, mut hup) = (term, int, hup);
        loop {
            tokio::select! {
                () = next(&mut term) => {
                    tracing::info!("SIGTERM");
                    return;
                }
                () = next(&mut int) => {
                    tracing::info!("SIGINT");
                    return;
                }
                () = next(&mut hup) => tracing::warn!(
                    "SIGHUP: reload is not supported yet; the configuration was not re-read and dialgate keeps serving as started (restart it to apply changes)"
                ),
            }
        }
    }
}

/// What a caller refused because the event log cannot be written hears.
const LOG_UNAVAILABLE: &[u8] =
    b"Service unavailable: the event log cannot be written; try again later.\r\n";

/// The longest the exit waits for queued records on a hung disk.
const LOG_CLOSE_LIMIT: Duration = Duration::from_secs(10);

/// Accepts callers until shutdown. A pty group serves its one caller
/// inline, so the record is written before the next caller is answered;
/// TCP groups serve each caller on its own task, within `max_callers`.
async fn port_loop(
    rt: Arc<GroupRuntime>,
    mut port: ports::Port,
    mut shutdown: watch::Receiver<bool>,
) {
    let inline = port.kind() == ports::PortKind::Pty;
    let mut calls = JoinSet::new();
    loop {
        tokio::select! {
            r = port.accept() => match r {
                Ok(caller) => {
                    let rt2 = rt.clone();
                    let sd = shutdown.clone();
                    let call = async move {
                        let who = CallerId {
                            device: caller.device.clone(),
                            remote: caller.remote.map(|a| a.to_string()),
                            carrier: None,
                        };
                        let mut caller = caller;
                        serve_caller(&rt2, &mut caller.stream, who, Leg::Answered, sd).await;
                        let _ = caller.hang_up().await;
                    };
                    if inline {
                        call.await;
                    } else {
                        calls.spawn(call);
                    }
                }
                Err(e) => {
                    tracing::error!("group {}: {e}; retrying in 1 s", rt.cfg.name);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            },
            Some(_) = calls.join_next(), if !calls.is_empty() => {}
            _ = shutdown.changed() => break,
        }
    }
    drop(port);
    while calls.join_next().await.is_some() {}
}

/// A caller's line as a call needs it.
pub trait CallerLine: AsyncRead + AsyncWrite + Unpin + Send {
    /// Make the line 8-bit clean for PPP (telnet: BINARY both ways);
    /// whether it is.
    fn prepare_for_ppp(
        &mut self,
        wait: Duration,
    ) -> impl std::future::Future<Output = std::io::Result<bool>> + Send;
}

impl CallerLine for ports::CallerStream {
    async fn prepare_for_ppp(&mut self, wait: Duration) -> std::io::Result<bool> {
        ports::CallerStream::prepare_for_ppp(self, wait).await
    }
}

impl CallerLine for crate::modemline::ModemStream<'_> {
    async fn prepare_for_ppp(&mut self, _wait: Duration) -> std::io::Result<bool> {
        Ok(true)
    }
}

/// Which call on a line this is.
#[derive(Debug, Clone)]
pub enum Leg {
    /// A caller who called us: the dialog, then the hand-off.
    Answered,
    /// We called `user` back: PPP only, for the same user.
    CalledBack {
        /// The dialog's user on the first call.
        user: String,
    },
}

/// How a call ended, for the line that carried it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallEnd {
    /// Nothing more to do: hang up and re-arm.
    Done,
    /// PPP authenticated `user`, who is to be called back at `number`.
    Callback {
        /// The user.
        user: String,
        /// The dial string.
        number: String,
    },
}

/// One caller, start to end: the dialog (unless the port is dedicated to
/// PPP, or this is the second leg of a callback), its record, the callback
/// number when the user has caller-set callback, then the hand-off and its
/// record.
pub async fn serve_caller<S: CallerLine>(
    rt: &GroupRuntime,
    stream: &mut S,
    who: CallerId,
    leg: Leg,
    shutdown: watch::Receiver<bool>,
) -> CallEnd {
    if rt.log_health.is_broken() {
        // Refuse rather than serve unrecorded; the refusal itself is a probe.
        let now = time::OffsetDateTime::now_utc();
        let mut rec = eventlog::Record::new(
            eventlog::Kind::Dialog,
            now,
            now,
            rt.cfg.name.clone(),
            who.device.clone(),
            rt.module_name(),
            eventlog::Outcome::Refused,
        );
        rec.remote = who.remote.clone();
        rec.detail = Some("event log unavailable".into());
        if !call::record_refusal(rt, rec).await {
            let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(LOG_UNAVAILABLE))
                .await;
            return CallEnd::Done;
        }
    }
    let (user, domain, mut backlog) = match (&rt.module, &leg) {
        (_, Leg::CalledBack { user }) => (Some(user.clone()), String::new(), Vec::new()),
        (Some(module), Leg::Answered) => {
            let result = call::run_dialog(rt, module, stream, &who, shutdown.clone()).await;
            let rec = call::dialog_record(rt, &who, &result);
            let recorded = call::record(rt, rec).await;
            let Some((user, domain)) = result.outcome.granted() else {
                return CallEnd::Done;
            };
            if !recorded {
                let _ =
                    tokio::time::timeout(Duration::from_secs(1), stream.write_all(LOG_UNAVAILABLE))
                        .await;
                return CallEnd::Done;
            }
            if result.hung_up || *shutdown.borrow() {
                return CallEnd::Done;
            }
            (Some(user.to_string()), domain.to_string(), result.backlog)
        }
        (None, Leg::Answered) => (None, String::new(), Vec::new()),
    };
    // Callback: only on the answered leg, for a user who has it.
    let callback = match (&rt.cfg.callback, &user, &leg) {
        (Some(cb), Some(u), Leg::Answered) => match cb.policy(u) {
            CallbackPolicy::None => None,
            CallbackPolicy::Number(n) => Some(n.clone()),
            CallbackPolicy::Caller => {
                match crate::callback::ask_number(stream, cb, &mut backlog, shutdown.clone()).await
                {
                    Ok(n) => Some(n),
                    Err(why) => {
                        let now = time::OffsetDateTime::now_utc();
                        let mut rec = eventlog::Record::new(
                            eventlog::Kind::Line,
                            now,
                            now,
                            rt.cfg.name.clone(),
                            who.device.clone(),
                            rt.module_name(),
                            eventlog::Outcome::CallbackFailed,
                        );
                        rec.user = Some(u.clone());
                        rec.detail = Some(format!("no callback number: {why}"));
                        call::record(rt, rec).await;
                        return CallEnd::Done;
                    }
                }
            }
        },
        _ => None,
    };
    match (&rt.cfg.handoff, &rt.ppp) {
        (Handoff::Ppp(_), Some(ppp)) => {
            // Telnet: BINARY both ways before the first frame.
            match stream.prepare_for_ppp(Duration::from_secs(3)).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!(group = %rt.cfg.name, "telnet peer refused BINARY; PPP may fail")
                }
                Err(_) => return CallEnd::Done,
            }
            let start = crate::session::SessionStart {
                group: &rt.cfg.name,
                module: rt.module_name(),
                who: &who,
                dialog_user: user.as_deref(),
                backlog,
                callback: callback.is_some(),
            };
            let mut rec = crate::session::run(ppp, start, stream, shutdown).await;
            if who.carrier_lost() {
                if let Some(p) = rec.ppp.as_mut() {
                    p.cause = Some("carrier lost (DCD dropped)".to_string());
                }
                rec.detail
                    .get_or_insert_with(|| "carrier lost (DCD dropped)".to_string());
            }
            if let Some(n) = &callback {
                let d = format!("calling back at {n}");
                rec.detail = Some(match rec.detail.take() {
                    Some(x) => format!("{x}; {d}"),
                    None => d,
                });
            }
            let outcome = rec.outcome.clone();
            let recorded = call::record(rt, rec).await;
            match (callback, user) {
                (Some(number), Some(user))
                    if recorded && outcome == eventlog::Outcome::Callback =>
                {
                    CallEnd::Callback { user, number }
                }
                _ => CallEnd::Done,
            }
        }
        (Handoff::Exec { .. }, _) => {
            let session = handoff::Session {
                user: user.unwrap_or_default(),
                domain,
                port: rt.cfg.name.clone(),
                device: who.device.clone(),
            };
            let how = handoff::run(&rt.cfg.handoff, &session, stream, backlog, shutdown).await;
            tracing::info!(group = %rt.cfg.name, user = %session.user, "hand-off ended: {how}");
            CallEnd::Done
        }
        (Handoff::Ppp(_), None) => {
            tracing::error!(group = %rt.cfg.name, "ppp hand-off without a network; hanging up");
            CallEnd::Done
        }
    }
}

#[cfg(test)]
mod message_authenticator_tests {
    use super::*;

    fn notes(key: &str) -> Vec<String> {
        let text = format!(
            "[[group]]\nname = \"g\"\nkind = \"tcp\"\nlisten = \"127.0.0.1:0\"\n\
             [group.module]\nkind = \"chain\"\nsteps = [{{ kind = \"users\" }}, \
             {{ kind = \"radius\", servers = [{{ address = \"127.0.0.1:1812\", secret = \"s\" }}]{key} }}]\n\
             [group.handoff]\nkind = \"exec\"\nprogram = \"/bin/true\"\n"
        );
        let cfg = crate::config::parse(&text, "t.toml", std::path::Path::new("/data"), None)
            .unwrap_or_else(|e| panic!("{e}"));
        message_authenticator_notes(&cfg.groups[0])
    }

    /// check-config says when a RADIUS client does not always require a
    /// Message-Authenticator (issue 12 hole 5), also inside a chain.
    #[test]
    fn check_config_names_a_weakened_message_authenticator_setting() {
        assert!(notes("").is_empty());
        assert!(notes(", require_message_authenticator = true").is_empty());
        let n = notes(", require_message_authenticator = false");
        assert_eq!(n.len(), 1);
        assert!(
            n[0].starts_with("warning: radius module") && n[0].contains("BlastRADIUS"),
            "{n:?}"
        );
        let n = notes(", require_message_authenticator = \"auto\"");
        assert_eq!(n.len(), 1);
        assert!(n[0].starts_with("note: radius module"), "{n:?}");
    }
}
