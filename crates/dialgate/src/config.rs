//! The configuration file (TOML), its embedded defaults, and its checks.
//! Every error names the file, line and column it is about.

use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

/// The whole configuration, checked.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where the users file, secrets and event log live by default.
    pub data_dir: PathBuf,
    /// The SQLite event log.
    pub event_log: PathBuf,
    /// How long a call waits for its record to be committed before it
    /// counts as a failed write (a hung disk): the caller is hung up and
    /// new callers are refused until the log answers again.
    pub event_log_timeout: Duration,
    /// The users file (argon2id hashes).
    pub users_file: PathBuf,
    /// The PPP secrets file (NT hashes, CHAP secrets), mode 0600.
    pub secrets_file: PathBuf,
    /// The port groups, in file order.
    pub groups: Vec<Group>,
    /// The tun device PPP sessions use (required by `ppp` hand-offs).
    pub network: Option<NetworkConfig>,
    /// Where the configuration came from (`None`: embedded defaults).
    pub source: Option<PathBuf>,
}

/// How callers reach a port group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortKind {
    /// Raw TCP: bytes as they come.
    Tcp(SocketAddr),
    /// TCP with the telnet protocol (RFC 854).
    Telnet(SocketAddr),
    /// A pty dialgate creates; `link` is the stable path callers open.
    Pty {
        /// Symlink to the pty's slave, re-pointed at every re-arm.
        link: PathBuf,
    },
    /// Serial lines (tty devices), each with a Hayes modem or direct; one
    /// group holds one line or a pool of them.
    Serial {
        /// The devices, e.g. `/dev/ttyUSB0`; every line answers on its own.
        devices: Vec<PathBuf>,
        /// Speed, framing and flow control, the same for every line.
        settings: ports::SerialSettings,
    },
}

impl PortKind {
    /// `tcp`, `telnet` or `pty`.
    pub fn name(&self) -> &'static str {
        match self {
            PortKind::Tcp(_) => "tcp",
            PortKind::Telnet(_) => "telnet",
            PortKind::Pty { .. } => "pty",
            PortKind::Serial { .. } => "serial",
        }
    }
}

/// The security module of a port group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModuleConfig {
    /// Local users with argon2id hashes.
    Users {
        /// Sent before the first prompt.
        banner: String,
        /// Password attempts before FAILURE.
        tries: u32,
        /// Seconds to wait for each answer.
        prompt_timeout: u32,
        /// `Domain` reported on the verdict.
        domain: String,
    },
    /// RFC 6238 codes (optionally PIN+code) against a TOTP store.
    Totp {
        /// The store (secrets, PIN hashes, last used steps).
        store: PathBuf,
        /// Sent before the first prompt.
        banner: String,
        /// Attempts before FAILURE.
        tries: u32,
        /// Seconds to wait for each answer.
        prompt_timeout: u32,
        /// `Domain` reported on the verdict.
        domain: String,
        /// Steps accepted each side of now.
        window: u64,
        /// In a chain: take the user from the step before.
        user_from_previous: bool,
    },
    /// RADIUS servers (Access-Request, Access-Challenge rounds).
    Radius {
        /// Servers in failover order: address and shared secret.
        servers: Vec<(SocketAddr, Secret)>,
        /// Wait per attempt.
        timeout: Duration,
        /// Resends per server.
        retries: u32,
        /// Which replies must carry a Message-Authenticator (BlastRADIUS).
        require_message_authenticator: radius::RequireMessageAuthenticator,
        /// NAS-Identifier.
        nas_identifier: String,
        /// Sent before the first prompt.
        banner: String,
        /// Username/password pairs per call.
        tries: u32,
        /// Most Access-Challenge rounds.
        max_challenge_rounds: u32,
        /// Seconds to wait for each answer.
        prompt_timeout: u32,
        /// `Domain` reported on the verdict.
        domain: String,
    },
    /// A PAM service stack.
    Pam {
        /// `/etc/pam.d/<service>`.
        service: String,
        /// Ask `Username:` ourselves (else PAM asks).
        ask_username: bool,
        /// Sent before the first prompt.
        banner: String,
        /// PAM transactions per call.
        tries: u32,
        /// Seconds to wait for each answer.
        prompt_timeout: u32,
        /// `Domain` reported on the verdict.
        domain: String,
    },
    /// An external program holds the dialog (verdict on fd 3).
    Exec {
        /// The program.
        program: PathBuf,
        /// Its arguments.
        args: Vec<String>,
        /// Extra environment (its `Debug` shows the names only).
        env: modules::EnvVars,
    },
    /// Several modules in order; all must grant, for the same user.
    Chain {
        /// The steps.
        steps: Vec<ModuleConfig>,
    },
    /// A C module (`rasshost.h`), run in a worker process.
    C {
        /// The shared object.
        path: PathBuf,
    },
    /// A single shared PIN that grants one configured user.
    Pin {
        /// The user granted.
        user: String,
        /// File holding the PIN (first line).
        pin_file: PathBuf,
        /// Attempts before FAILURE.
        tries: u32,
    },
}

impl ModuleConfig {
    /// The module's name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            ModuleConfig::Users { .. } => "users",
            ModuleConfig::Pin { .. } => "pin",
            ModuleConfig::C { .. } => "c",
            ModuleConfig::Totp { .. } => "totp",
            ModuleConfig::Radius { .. } => "radius",
            ModuleConfig::Pam { .. } => "pam",
            ModuleConfig::Exec { .. } => "exec",
            ModuleConfig::Chain { .. } => "chain",
        }
    }
}

/// What happens after SUCCESS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Handoff {
    /// Run a program with the caller's connection as its stdin/stdout.
    Exec {
        /// The program.
        program: PathBuf,
        /// Its arguments.
        args: Vec<String>,
    },
    /// PPP in user space: authentication again, an address, IP through the tun.
    Ppp(PppConfig),
}

impl Handoff {
    /// A short description for the event log.
    pub fn describe(&self) -> String {
        match self {
            Handoff::Exec { program, .. } => format!("exec {}", program.display()),
            Handoff::Ppp(_) => "ppp".to_string(),
        }
    }
}

/// A shared secret from the configuration. Its `Debug` shows
/// `<redacted>`, never the bytes, so a config can be printed or logged
/// whole; the bytes are zeroed when it is dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps a copy of `bytes`.
    pub fn new(bytes: &[u8]) -> Secret {
        Secret(bytes.to_vec())
    }

    /// The secret itself, for the code that uses it.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

/// The `[network]` table: the tun all PPP sessions share.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkConfig {
    /// Interface name (at most 15 bytes).
    pub tun: String,
    /// The server's own address on the tun; also every session's IPCP local
    /// address.
    pub address: std::net::Ipv4Addr,
    /// The prefix routed to the tun (the pools live in it).
    pub prefix_len: u8,
    /// The tun's MTU (and the most a session's MRU is used up to).
    pub mtu: u16,
    /// DNS servers given to callers (at most two).
    pub dns: Vec<std::net::Ipv4Addr>,
}

/// Default `auth_timeout` of a `ppp` hand-off.
pub const PPP_AUTH_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest `auth_timeout` of a `ppp` hand-off.
pub const PPP_AUTH_TIMEOUT_MAX: Duration = Duration::from_secs(600);

/// A `ppp` hand-off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PppConfig {
    /// Allowed methods, in order of preference.
    pub auth: Vec<ppp::auth::AuthProtocol>,
    /// First and last address of the group's pool.
    pub pool: (std::net::Ipv4Addr, std::net::Ipv4Addr),
    /// The PPP name must equal the dialog's UserName (Windows event 20096).
    pub same_user: bool,
    /// LCP Echo-Request interval.
    pub echo_interval: Duration,
    /// Unanswered echoes before the session ends.
    pub echo_max_missed: u32,
    /// The longest a PPP session may go unauthenticated (from its start,
    /// LCP negotiation included, and from each LCP renegotiation after a
    /// success, to success) before it ends.
    pub auth_timeout: Duration,
    /// No IP packet either way for this long ends the session.
    pub idle_timeout: Option<Duration>,
    /// The longest a session may last.
    pub session_limit: Option<Duration>,
    /// PPP authentication and accounting through RADIUS, instead of the
    /// users backend.
    pub radius: Option<PppRadius>,
}

/// `[group.handoff.radius]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PppRadius {
    /// Authentication servers (at least one).
    pub servers: Vec<(SocketAddr, Secret)>,
    /// Accounting servers (empty: no accounting).
    pub accounting: Vec<(SocketAddr, Secret)>,
    /// Wait per attempt.
    pub timeout: Duration,
    /// Resends per server.
    pub retries: u32,
    /// Which replies must carry a Message-Authenticator (BlastRADIUS).
    pub require_message_authenticator: radius::RequireMessageAuthenticator,
    /// NAS-Identifier.
    pub nas_identifier: String,
    /// Interim-Update interval (`None`: none).
    pub interim_interval: Option<Duration>,
}

/// `[group.modem]`: the Hayes modem on each line of a serial group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModemSettings {
    /// The answering state machine's settings (init commands, RING count,
    /// timeouts, hang-up timing).
    pub answerer: modem::Config,
    /// How often the carrier (DCD) is read while a call is up.
    pub carrier_poll: Duration,
}

/// Callback for one user (RAS's "No callback", "Set by caller", "Always
/// callback to").
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallbackPolicy {
    /// The user is served on the call they made.
    None,
    /// The caller types the number to call back after the dialog.
    Caller,
    /// Always this number.
    Number(String),
}

/// `[group.callback]`: who is called back, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallbackConfig {
    /// Per user; users not listed get [`CallbackPolicy::None`].
    pub users: std::collections::BTreeMap<String, CallbackPolicy>,
    /// Pause between hanging up and dialling (the caller's modem resets).
    pub delay: Duration,
    /// Dial attempts before giving up.
    pub attempts: u32,
    /// The prompt for a caller-given number.
    pub prompt: String,
    /// How long the caller has to type the number.
    pub prompt_timeout: Duration,
}

impl CallbackConfig {
    /// The policy of `user`.
    pub fn policy(&self, user: &str) -> &CallbackPolicy {
        self.users.get(user).unwrap_or(&CallbackPolicy::None)
    }
}

/// One port group.
#[derive(Clone, Debug)]
pub struct Group {
    /// Unique name (appears in the event log).
    pub name: String,
    /// How callers reach it.
    pub kind: PortKind,
    /// Most callers served at once.
    pub max_callers: usize,
    /// The security module; `None` only for a dedicated PPP port.
    pub module: Option<ModuleConfig>,
    /// After SUCCESS.
    pub handoff: Handoff,
    /// The transaction limits.
    pub transaction: securityhost::Config,
    /// Serial groups: the modem on each line (`None`: direct lines).
    pub modem: Option<ModemSettings>,
    /// Serial groups with a modem and PPP: callback.
    pub callback: Option<CallbackConfig>,
}

/// A configuration error, located in its file.
#[derive(Debug)]
pub struct ConfigError {
    /// The file (`<embedded defaults>` for those).
    pub file: String,
    /// 1-based line and column, when known.
    pub at: Option<(usize, usize)>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.at {
            Some((l, c)) => write!(f, "{}:{}:{}: {}", self.file, l, c, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// The default of `event_log_timeout`.
pub const DEFAULT_EVENT_LOG_TIMEOUT: Duration = Duration::from_secs(5);

/// The embedded defaults: one telnet port on loopback, the `users` module,
/// and an `exec` hand-off that greets the caller.
pub const DEFAULT_CONFIG: &str = r#"# dialgate embedded defaults
[[group]]
name = "telnet0"
kind = "telnet"
listen = "127.0.0.1:2323"
max_callers = 64

[group.module]
kind = "users"
banner = "dialgate: authorised users only.\r\n"

[group.handoff]
kind = "exec"
program = "/bin/sh"
args = ["-c", "printf 'Welcome, %s. You are on port %s (%s).\\r\\nThis is the exec hand-off; configure [group.handoff] to run your program.\\r\\n' \"$DIALGATE_USER\" \"$DIALGATE_PORT\" \"$DIALGATE_DEVICE\""]
"#;

// ---- the file's shape ------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    data_dir: Option<Spanned<String>>,
    event_log: Option<Spanned<String>>,
    event_log_timeout: Option<Spanned<RawDuration>>,
    users_file: Option<Spanned<String>>,
    secrets_file: Option<Spanned<String>>,
    network: Option<Spanned<RawNetwork>>,
    #[serde(default)]
    group: Vec<Spanned<RawGroup>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNetwork {
    tun: Option<Spanned<String>>,
    address: Spanned<String>,
    mtu: Option<Spanned<i64>>,
    #[serde(default)]
    dns: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    name: Spanned<String>,
    kind: Spanned<String>,
    listen: Option<Spanned<String>>,
    link: Option<Spanned<String>>,
    max_callers: Option<Spanned<i64>>,
    dialog_time_limit: Option<Spanned<RawDuration>>,
    end_grace: Option<Spanned<RawDuration>>,
    send_buffer: Option<Spanned<i64>>,
    recv_buffer: Option<Spanned<i64>>,
    backlog: Option<Spanned<i64>>,
    device: Option<Spanned<String>>,
    devices: Option<Spanned<Vec<Spanned<String>>>>,
    speed: Option<Spanned<i64>>,
    data_bits: Option<Spanned<i64>>,
    parity: Option<Spanned<String>>,
    stop_bits: Option<Spanned<i64>>,
    flow_control: Option<Spanned<String>>,
    modem: Option<Spanned<RawModem>>,
    callback: Option<Spanned<RawCallback>>,
    module: Option<Spanned<RawModule>>,
    handoff: Option<Spanned<RawHandoff>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModem {
    init: Option<Spanned<Vec<String>>>,
    answer_on_ring: Option<Spanned<i64>>,
    command_timeout: Option<Spanned<RawDuration>>,
    init_backoff: Option<Spanned<RawDuration>>,
    init_backoff_max: Option<Spanned<RawDuration>>,
    init_attempts: Option<Spanned<i64>>,
    init_failed_retry: Option<Spanned<RawDuration>>,
    connect_timeout: Option<Spanned<RawDuration>>,
    ring_reset: Option<Spanned<RawDuration>>,
    dtr_drop: Option<Spanned<RawDuration>>,
    guard_time: Option<Spanned<RawDuration>>,
    carrier_poll: Option<Spanned<RawDuration>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCallback {
    delay: Option<Spanned<RawDuration>>,
    attempts: Option<Spanned<i64>>,
    prompt: Option<String>,
    prompt_timeout: Option<Spanned<RawDuration>>,
    #[serde(default)]
    users: std::collections::BTreeMap<String, Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModule {
    kind: Spanned<String>,
    banner: Option<Spanned<String>>,
    tries: Option<Spanned<i64>>,
    prompt_timeout: Option<Spanned<RawDuration>>,
    domain: Option<Spanned<String>>,
    user: Option<Spanned<String>>,
    pin_file: Option<Spanned<String>>,
    path: Option<Spanned<String>>,
    store: Option<Spanned<String>>,
    window: Option<Spanned<i64>>,
    user_from_previous: Option<Spanned<bool>>,
    servers: Option<Spanned<Vec<RawServer>>>,
    timeout: Option<Spanned<RawDuration>>,
    retries: Option<Spanned<i64>>,
    require_message_authenticator: Option<Spanned<RawRequireMa>>,
    nas_identifier: Option<Spanned<String>>,
    max_challenge_rounds: Option<Spanned<i64>>,
    service: Option<Spanned<String>>,
    ask_username: Option<Spanned<bool>>,
    program: Option<Spanned<String>>,
    args: Option<Spanned<Vec<String>>>,
    env: Option<Spanned<std::collections::BTreeMap<String, String>>>,
    steps: Option<Spanned<Vec<Spanned<RawModule>>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    address: Spanned<String>,
    /// A file holding the shared secret (first line): keeps it out of the
    /// configuration.
    secret_file: Option<Spanned<String>>,
    secret: Option<Spanned<String>>,
}

impl RawModule {
    /// Every optional key that is set, with its span.
    fn present(&self) -> Vec<(&'static str, Range<usize>)> {
        let mut v = Vec::new();
        macro_rules! key {
            ($($f:ident),*) => {$(
                if let Some(x) = &self.$f { v.push((stringify!($f), x.span())); }
            )*};
        }
        key!(
            banner,
            tries,
            prompt_timeout,
            domain,
            user,
            pin_file,
            path,
            store,
            window,
            user_from_previous,
            servers,
            timeout,
            retries,
            require_message_authenticator,
            nas_identifier,
            max_challenge_rounds,
            service,
            ask_username,
            program,
            args,
            env,
            steps
        );
        v
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHandoff {
    kind: Spanned<String>,
    program: Option<Spanned<String>>,
    #[serde(default)]
    args: Vec<String>,
    auth: Option<Spanned<Vec<String>>>,
    pool: Option<Spanned<String>>,
    same_user: Option<bool>,
    echo_interval: Option<Spanned<RawDuration>>,
    echo_max_missed: Option<Spanned<i64>>,
    auth_timeout: Option<Spanned<RawDuration>>,
    idle_timeout: Option<Spanned<RawDuration>>,
    session_limit: Option<Spanned<RawDuration>>,
    radius: Option<Spanned<RawPppRadius>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPppRadius {
    #[serde(default)]
    servers: Vec<RawServer>,
    #[serde(default)]
    accounting: Vec<RawServer>,
    timeout: Option<Spanned<RawDuration>>,
    retries: Option<Spanned<i64>>,
    require_message_authenticator: Option<Spanned<RawRequireMa>>,
    nas_identifier: Option<String>,
    interim_interval: Option<Spanned<RawDuration>>,
}

/// `require_message_authenticator`: `true`, `false` or `"auto"`.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawRequireMa {
    Bool(bool),
    Text(String),
}

/// `require_message_authenticator` (default `true`: every Access-* reply
/// must carry one, against BlastRADIUS, CVE-2024-3596).
fn require_ma(
    cx: &Ctx<'_>,
    v: &Option<Spanned<RawRequireMa>>,
) -> Result<radius::RequireMessageAuthenticator, ConfigError> {
    use radius::RequireMessageAuthenticator as R;
    let Some(s) = v else { return Ok(R::Always) };
    match s.get_ref() {
        RawRequireMa::Bool(true) => Ok(R::Always),
        RawRequireMa::Bool(false) => Ok(R::Never),
        RawRequireMa::Text(t) if t == "auto" => Ok(R::Auto),
        RawRequireMa::Text(t) => Err(cx.at(
            s,
            format!("require_message_authenticator is true, false or \"auto\", not {t:?}"),
        )),
    }
}

/// A duration: whole seconds, or a string like `90s`, `2m`, `1h`.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawDuration {
    Secs(i64),
    Text(String),
}

// ---- loading ---------------------------------------------------------------

struct Ctx<'a> {
    file: &'a str,
    text: &'a str,
    /// The directory relative paths in the file are resolved against.
    base: PathBuf,
}

impl Ctx<'_> {
    fn err(&self, span: Option<Range<usize>>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.to_string(),
            at: span.map(|s| line_col(self.text, s.start)),
            message: message.into(),
        }
    }
    fn at<T>(&self, s: &Spanned<T>, message: impl Into<String>) -> ConfigError {
        self.err(Some(s.span()), message)
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..text.floor_char_boundary(offset)];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Loads `path`, or the embedded defaults when `path` is `None`.
pub fn load(path: Option<&Path>, data_dir: &Path) -> Result<Config, ConfigError> {
    match path {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| ConfigError {
                file: p.display().to_string(),
                at: None,
                message: format!("cannot read: {e}"),
            })?;
            parse(
                &text,
                &p.display().to_string(),
                data_dir,
                Some(p.to_path_buf()),
            )
        }
        None => parse(DEFAULT_CONFIG, "<embedded defaults>", data_dir, None),
    }
}

/// Parses and checks a configuration text.
pub fn parse(
    text: &str,
    file: &str,
    default_data_dir: &Path,
    source: Option<PathBuf>,
) -> Result<Config, ConfigError> {
    let base = source
        .as_deref()
        .and_then(Path::parent)
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let cx = Ctx { file, text, base };
    let raw: RawConfig = toml::from_str(text).map_err(|e| cx.err(e.span(), e.message().trim()))?;
    let data_dir = raw.data_dir.as_ref().map_or_else(
        || default_data_dir.to_path_buf(),
        |d| PathBuf::from(d.get_ref()),
    );
    let under = |v: &Option<Spanned<String>>, default: &str| -> PathBuf {
        match v {
            Some(s) => data_dir.join(s.get_ref()),
            None => data_dir.join(default),
        }
    };
    let event_log = under(&raw.event_log, "events.sqlite");
    let event_log_timeout = duration(
        &cx,
        &raw.event_log_timeout,
        DEFAULT_EVENT_LOG_TIMEOUT,
        "event_log_timeout",
    )?;
    if let Some(t) = &raw.event_log_timeout
        && event_log_timeout > Duration::from_secs(600)
    {
        return Err(cx.at(t, "event_log_timeout must be at most 10m"));
    }
    let users_file = under(&raw.users_file, "users.toml");
    let secrets_file = under(&raw.secrets_file, "ppp-secrets.toml");
    if raw.group.is_empty() {
        return Err(cx.err(None, "no [[group]]: dialgate needs at least one port group"));
    }
    let network = raw
        .network
        .as_ref()
        .map(|n| check_network(&cx, n.get_ref()))
        .transpose()?;
    let mut groups: Vec<Group> = Vec::new();
    for g in &raw.group {
        let group = check_group(&cx, g.get_ref(), &data_dir, network.as_ref())?;
        if groups.iter().any(|o| o.name == group.name) {
            return Err(cx.at(
                &g.get_ref().name,
                format!("a second group named `{}`", group.name),
            ));
        }
        if let Some(other) = groups.iter().find(|o| same_endpoint(&o.kind, &group.kind)) {
            let raw_g = g.get_ref();
            if let PortKind::Serial { devices, .. } = &group.kind {
                let dup = devices.iter().find(
                    |d| matches!(&other.kind, PortKind::Serial { devices: o, .. } if o.contains(d)),
                );
                let at = raw_g
                    .devices
                    .as_ref()
                    .map(|l| l.span())
                    .or(raw_g.device.as_ref().map(|d| d.span()))
                    .unwrap_or_else(|| raw_g.kind.span());
                return Err(cx.err(
                    Some(at),
                    format!(
                        "group `{}` already answers on {}",
                        other.name,
                        dup.map_or_else(|| "this device".to_string(), |d| d.display().to_string())
                    ),
                ));
            }
            return Err(cx.at(
                raw_g
                    .listen
                    .as_ref()
                    .or(raw_g.link.as_ref())
                    .unwrap_or(&raw_g.kind),
                format!("group `{}` already uses this address", other.name),
            ));
        }
        groups.push(group);
    }
    for (g, raw_g) in groups.iter().zip(&raw.group) {
        if let Handoff::Ppp(p) = &g.handoff {
            let h = raw_g
                .get_ref()
                .handoff
                .as_ref()
                .map_or(&raw_g.get_ref().kind, |h| &h.get_ref().kind);
            let Some(n) = &network else {
                return Err(cx.at(
                    h,
                    "a `ppp` hand-off needs a [network] table (the tun device)",
                ));
            };
            let in_net = |a: std::net::Ipv4Addr| same_prefix(a, n.address, n.prefix_len);
            if !in_net(p.pool.0) || !in_net(p.pool.1) {
                return Err(cx.at(
                    h,
                    format!(
                        "the pool {}-{} is not inside the network {}/{}",
                        p.pool.0, p.pool.1, n.address, n.prefix_len
                    ),
                ));
            }
            if (p.pool.0..=p.pool.1).contains(&n.address) {
                return Err(cx.at(
                    h,
                    format!("the pool contains the server's own address {}", n.address),
                ));
            }
            // Neither the network's own address nor its broadcast address
            // can be a caller's (prefix_len is at most 30, so both exist).
            let mask = u32::MAX << (32 - u32::from(n.prefix_len));
            let base = u32::from(n.address) & mask;
            let pool_at = raw_g
                .get_ref()
                .handoff
                .as_ref()
                .and_then(|h| h.get_ref().pool.as_ref())
                .map_or_else(|| h.span(), Spanned::span);
            for (what, a) in [("network", base), ("broadcast", base | !mask)] {
                if (u32::from(p.pool.0)..=u32::from(p.pool.1)).contains(&a) {
                    return Err(cx.err(
                        Some(pool_at),
                        format!(
                            "the pool {}-{} contains the {what} address {} of {}/{}; pools hold host addresses only",
                            p.pool.0,
                            p.pool.1,
                            std::net::Ipv4Addr::from(a),
                            n.address,
                            n.prefix_len
                        ),
                    ));
                }
            }
        }
    }
    for (i, a) in groups.iter().enumerate() {
        for b in &groups[i + 1..] {
            if let (Handoff::Ppp(x), Handoff::Ppp(y)) = (&a.handoff, &b.handoff)
                && x.pool.0 <= y.pool.1
                && y.pool.0 <= x.pool.1
            {
                return Err(cx.err(
                    None,
                    format!("the pools of groups `{}` and `{}` overlap", a.name, b.name),
                ));
            }
        }
    }
    Ok(Config {
        data_dir,
        event_log,
        event_log_timeout,
        users_file,
        secrets_file,
        groups,
        network,
        source,
    })
}

fn same_prefix(a: std::net::Ipv4Addr, b: std::net::Ipv4Addr, len: u8) -> bool {
    let mask = if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len.min(32)))
    };
    u32::from(a) & mask == u32::from(b) & mask
}

/// The default pool of a network: every host address above the server's own
/// (or from the second host address when the server sits higher), up to the
/// last before the broadcast address.
fn default_pool(n: &NetworkConfig) -> Option<(std::net::Ipv4Addr, std::net::Ipv4Addr)> {
    let len = u32::from(n.prefix_len.min(30));
    let mask = u32::MAX << (32 - len);
    let base = u32::from(n.address) & mask;
    let last = (base | !mask) - 1;
    let me = u32::from(n.address);
    let (first, last) = if me < last {
        (me + 1, last)
    } else {
        (base + 1, me - 1)
    };
    (first <= last).then(|| (first.into(), last.into()))
}

fn check_network(cx: &Ctx<'_>, n: &RawNetwork) -> Result<NetworkConfig, ConfigError> {
    let tun = n
        .tun
        .as_ref()
        .map_or_else(|| "dialgate0".to_string(), |t| t.get_ref().clone());
    if tun.is_empty() || tun.len() > 15 || tun.contains(['/', ':', ' ', '\0']) {
        return Err(cx.at(
            n.tun.as_ref().unwrap_or(&n.address),
            "a tun name is 1 to 15 bytes, without `/`, `:` or spaces",
        ));
    }
    let (addr, len) = n.address.get_ref().split_once('/').ok_or_else(|| {
        cx.at(
            &n.address,
            "`address` is the server's address with the pool's prefix, like 10.250.1.1/24",
        )
    })?;
    let address: std::net::Ipv4Addr = addr
        .parse()
        .map_err(|_| cx.at(&n.address, format!("`{addr}` is not an IPv4 address")))?;
    let prefix_len: u8 = match len.parse() {
        Ok(l) if (8..=30).contains(&l) => l,
        _ => return Err(cx.at(&n.address, format!("prefix length `{len}` must be 8 to 30"))),
    };
    let mtu = match &n.mtu {
        None => 1500,
        Some(m) => match u16::try_from(*m.get_ref()) {
            Ok(v) if (576..=9000).contains(&v) => v,
            _ => return Err(cx.at(m, "mtu must be 576 to 9000")),
        },
    };
    if n.dns.len() > 2 {
        return Err(cx.at(&n.dns[2], "at most two DNS servers"));
    }
    let mut dns = Vec::new();
    for d in &n.dns {
        dns.push(
            d.get_ref()
                .parse()
                .map_err(|_| cx.at(d, format!("`{}` is not an IPv4 address", d.get_ref())))?,
        );
    }
    Ok(NetworkConfig {
        tun,
        address,
        prefix_len,
        mtu,
        dns,
    })
}

/// `[{ address, secret_file | secret }, ...]` of RADIUS servers.
fn radius_servers(
    cx: &Ctx<'_>,
    list: &[RawServer],
) -> Result<Vec<(SocketAddr, Secret)>, ConfigError> {
    let mut servers = Vec::new();
    for srv in list {
        let addr: SocketAddr = srv.address.get_ref().parse().map_err(|_| {
            cx.at(
                &srv.address,
                format!(
                    "`{}` is not an address:port (for example 127.0.0.1:1812)",
                    srv.address.get_ref()
                ),
            )
        })?;
        let secret = match (&srv.secret_file, &srv.secret) {
            (Some(f), None) => {
                let path = cx.base.join(f.get_ref());
                let text =
                    zeroize::Zeroizing::new(std::fs::read_to_string(&path).map_err(|e| {
                        cx.at(
                            f,
                            format!("cannot read the secret file {}: {e}", path.display()),
                        )
                    })?);
                Secret::new(text.lines().next().unwrap_or("").trim_end().as_bytes())
            }
            (None, Some(s)) => Secret::new(s.get_ref().as_bytes()),
            (Some(f), Some(_)) => {
                return Err(cx.at(f, "give `secret_file` or `secret`, not both"));
            }
            (None, None) => {
                return Err(cx.at(
                    &srv.address,
                    "a RADIUS server needs `secret_file` (or `secret`)",
                ));
            }
        };
        if secret.expose().is_empty() {
            return Err(cx.at(&srv.address, "the RADIUS shared secret is empty"));
        }
        servers.push((addr, secret));
    }
    Ok(servers)
}

/// `[group.handoff.radius]`.
fn check_ppp_radius(cx: &Ctx<'_>, r: &RawPppRadius) -> Result<PppRadius, ConfigError> {
    Ok(PppRadius {
        servers: radius_servers(cx, &r.servers)?,
        accounting: radius_servers(cx, &r.accounting)?,
        timeout: duration(cx, &r.timeout, Duration::from_secs(3), "timeout")?,
        retries: match &r.retries {
            None => 2,
            Some(n) if (0..=10).contains(n.get_ref()) => *n.get_ref() as u32,
            Some(n) => return Err(cx.at(n, "retries is 0 to 10")),
        },
        require_message_authenticator: require_ma(cx, &r.require_message_authenticator)?,
        nas_identifier: r
            .nas_identifier
            .clone()
            .unwrap_or_else(|| "dialgate".to_string()),
        interim_interval: r
            .interim_interval
            .as_ref()
            .map(|_| duration(cx, &r.interim_interval, Duration::ZERO, "interim_interval"))
            .transpose()?,
    })
}

fn check_ppp(cx: &Ctx<'_>, h: &RawHandoff) -> Result<PppConfig, ConfigError> {
    use ppp::auth::AuthProtocol;
    let auth = match &h.auth {
        None => vec![
            AuthProtocol::MsChapV2,
            AuthProtocol::ChapMd5,
            AuthProtocol::Pap,
        ],
        Some(list) => {
            let mut out = Vec::new();
            for a in list.get_ref() {
                let p = match a.as_str() {
                    "mschapv2" | "ms-chapv2" => AuthProtocol::MsChapV2,
                    "chap-md5" | "chap" => AuthProtocol::ChapMd5,
                    "pap" => AuthProtocol::Pap,
                    other => {
                        return Err(cx.at(
                            list,
                            format!(
                                "unknown PPP authentication `{other}` (mschapv2, chap-md5, pap)"
                            ),
                        ));
                    }
                };
                if !out.contains(&p) {
                    out.push(p);
                }
            }
            if out.is_empty() {
                return Err(cx.at(
                    list,
                    "a `ppp` hand-off needs at least one authentication method",
                ));
            }
            out
        }
    };
    let pool = h
        .pool
        .as_ref()
        .ok_or_else(|| cx.at(&h.kind, "a `ppp` hand-off needs `pool = \"FIRST-LAST\"`"))?;
    let bad = || {
        cx.at(
            pool,
            format!(
                "`{}` is not a range like 10.250.1.10-10.250.1.200",
                pool.get_ref()
            ),
        )
    };
    let (a, b) = pool.get_ref().split_once('-').ok_or_else(bad)?;
    let first: std::net::Ipv4Addr = a.trim().parse().map_err(|_| bad())?;
    let last: std::net::Ipv4Addr = b.trim().parse().map_err(|_| bad())?;
    if first > last {
        return Err(cx.at(pool, "the pool's first address is after its last"));
    }
    let opt =
        |d: &Option<Spanned<RawDuration>>, what: &str| -> Result<Option<Duration>, ConfigError> {
            d.as_ref()
                .map(|_| duration(cx, d, Duration::ZERO, what))
                .transpose()
        };
    Ok(PppConfig {
        auth,
        pool: (first, last),
        same_user: h.same_user.unwrap_or(true),
        echo_interval: duration(
            cx,
            &h.echo_interval,
            Duration::from_secs(30),
            "echo_interval",
        )?,
        echo_max_missed: positive(cx, &h.echo_max_missed, 4, 100, "echo_max_missed")? as u32,
        auth_timeout: {
            let d = duration(cx, &h.auth_timeout, PPP_AUTH_TIMEOUT, "auth_timeout")?;
            if let Some(s) = h.auth_timeout.as_ref().filter(|_| d > PPP_AUTH_TIMEOUT_MAX) {
                return Err(cx.at(s, "auth_timeout must be at most 10m"));
            }
            d
        },
        idle_timeout: opt(&h.idle_timeout, "idle_timeout")?,
        session_limit: opt(&h.session_limit, "session_limit")?,
        radius: h
            .radius
            .as_ref()
            .map(|r| {
                let c = check_ppp_radius(cx, r.get_ref())?;
                if c.servers.is_empty() {
                    return Err(cx.at(
                        r,
                        "[group.handoff.radius] needs `servers` (authentication); `accounting` is optional",
                    ));
                }
                Ok(c)
            })
            .transpose()?,
    })
}

fn same_endpoint(a: &PortKind, b: &PortKind) -> bool {
    match (a, b) {
        (PortKind::Tcp(x) | PortKind::Telnet(x), PortKind::Tcp(y) | PortKind::Telnet(y)) => {
            x == y && x.port() != 0
        }
        (PortKind::Pty { link: x }, PortKind::Pty { link: y }) => x == y,
        (PortKind::Serial { devices: x, .. }, PortKind::Serial { devices: y, .. }) => {
            x.iter().any(|d| y.contains(d))
        }
        _ => false,
    }
}

fn positive(
    cx: &Ctx<'_>,
    v: &Option<Spanned<i64>>,
    default: usize,
    max: usize,
    what: &str,
) -> Result<usize, ConfigError> {
    match v {
        None => Ok(default),
        Some(s) => {
            let n = *s.get_ref();
            if n < 1 || n as u64 > max as u64 {
                Err(cx.at(s, format!("{what} must be between 1 and {max}, not {n}")))
            } else {
                Ok(n as usize)
            }
        }
    }
}

fn duration(
    cx: &Ctx<'_>,
    v: &Option<Spanned<RawDuration>>,
    default: Duration,
    what: &str,
) -> Result<Duration, ConfigError> {
    let Some(s) = v else { return Ok(default) };
    let d = match s.get_ref() {
        RawDuration::Secs(n) if *n >= 0 => Duration::from_secs(*n as u64),
        RawDuration::Secs(n) => return Err(cx.at(s, format!("{what} cannot be negative ({n})"))),
        RawDuration::Text(t) => parse_duration(t).ok_or_else(|| {
            cx.at(
                s,
                format!("{what}: `{t}` is not a duration (use seconds, or 90s, 2m, 1h)"),
            )
        })?,
    };
    if d.is_zero() {
        return Err(cx.at(s, format!("{what} must be more than 0")));
    }
    if d > Duration::from_secs(24 * 3600) {
        return Err(cx.at(s, format!("{what} must be at most 24h")));
    }
    Ok(d)
}

/// `90`, `90s`, `2m`, `1h`, `1h30m`, `250ms`.
pub fn parse_duration(t: &str) -> Option<Duration> {
    let t = t.trim();
    if let Ok(n) = t.parse::<u64>() {
        return Some(Duration::from_secs(n));
    }
    let mut total_ms = 0u64;
    let mut num = String::new();
    let mut any = false;
    let mut chars = t.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            num.push(c);
        } else {
            let n: u64 = num.parse().ok()?;
            num.clear();
            let mult = match c {
                'm' if chars.peek() == Some(&'s') => {
                    chars.next();
                    1
                }
                's' => 1000,
                'm' => 60_000,
                'h' => 3_600_000,
                'd' => 86_400_000,
                _ => return None,
            };
            total_ms = total_ms.checked_add(n.checked_mul(mult)?)?;
            any = true;
        }
    }
    (any && num.is_empty()).then(|| Duration::from_millis(total_ms))
}

fn check_group(
    cx: &Ctx<'_>,
    g: &RawGroup,
    data_dir: &Path,
    network: Option<&NetworkConfig>,
) -> Result<Group, ConfigError> {
    let name = g.name.get_ref().clone();
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(cx.at(
            &g.name,
            "a group name is 1 to 64 letters, digits, `-`, `_` or `.`",
        ));
    }
    let addr = |s: &Option<Spanned<String>>| -> Result<SocketAddr, ConfigError> {
        let s = s.as_ref().ok_or_else(|| {
            cx.at(
                &g.kind,
                format!(
                    "a `{}` group needs `listen = \"ADDRESS:PORT\"`",
                    g.kind.get_ref()
                ),
            )
        })?;
        s.get_ref().parse::<SocketAddr>().map_err(|_| {
            cx.at(
                s,
                format!(
                    "`{}` is not an address:port (for example 127.0.0.1:2323)",
                    s.get_ref()
                ),
            )
        })
    };
    let kind = match g.kind.get_ref().as_str() {
        "tcp" => PortKind::Tcp(addr(&g.listen)?),
        "telnet" => PortKind::Telnet(addr(&g.listen)?),
        "pty" => {
            let link = g.link.as_ref().ok_or_else(|| {
                cx.at(
                    &g.kind,
                    "a `pty` group needs `link = \"/path/callers/open\"`",
                )
            })?;
            if let Some(l) = &g.listen {
                return Err(cx.at(
                    l,
                    "`listen` is for tcp and telnet groups; a pty group has `link`",
                ));
            }
            PortKind::Pty {
                link: PathBuf::from(link.get_ref()),
            }
        }
        "serial" => check_serial(cx, g)?,
        other => {
            return Err(cx.at(
                &g.kind,
                format!("unknown port kind `{other}` (tcp, telnet, pty or serial)"),
            ));
        }
    };
    let serial = matches!(kind, PortKind::Serial { .. });
    if !serial {
        let keys: [(&str, Option<Range<usize>>); 9] = [
            ("device", g.device.as_ref().map(Spanned::span)),
            ("devices", g.devices.as_ref().map(Spanned::span)),
            ("speed", g.speed.as_ref().map(Spanned::span)),
            ("data_bits", g.data_bits.as_ref().map(Spanned::span)),
            ("parity", g.parity.as_ref().map(Spanned::span)),
            ("stop_bits", g.stop_bits.as_ref().map(Spanned::span)),
            ("flow_control", g.flow_control.as_ref().map(Spanned::span)),
            ("modem", g.modem.as_ref().map(Spanned::span)),
            ("callback", g.callback.as_ref().map(Spanned::span)),
        ];
        if let Some((k, span)) = keys.into_iter().find(|(_, s)| s.is_some()) {
            return Err(cx.err(
                span,
                format!("`{k}` is for serial groups (kind = \"serial\")"),
            ));
        }
    } else if let Some(l) = g.listen.as_ref().or(g.link.as_ref()) {
        return Err(cx.at(l, "a serial group has `devices`, not `listen` or `link`"));
    }
    if matches!(kind, PortKind::Tcp(_) | PortKind::Telnet(_))
        && let Some(l) = &g.link
    {
        return Err(cx.at(l, "`link` is for pty groups"));
    }
    let pty = matches!(kind, PortKind::Pty { .. });
    if serial && let Some(m) = &g.max_callers {
        return Err(cx.at(
            m,
            "a serial group serves one caller per device; list more `devices` for more lines",
        ));
    }
    let max_callers = match &kind {
        PortKind::Serial { devices, .. } => devices.len(),
        _ => positive(
            cx,
            &g.max_callers,
            if pty { 1 } else { 64 },
            100_000,
            "max_callers",
        )?,
    };
    if pty
        && max_callers != 1
        && let Some(m) = &g.max_callers
    {
        return Err(cx.at(m, "a pty port serves one caller at a time"));
    }
    let defaults = securityhost::Config::default();
    let transaction = securityhost::Config {
        send_buffer_size: positive(
            cx,
            &g.send_buffer,
            defaults.send_buffer_size,
            65535,
            "send_buffer",
        )?,
        recv_buffer_size: positive(
            cx,
            &g.recv_buffer,
            defaults.recv_buffer_size,
            65535,
            "recv_buffer",
        )?,
        backlog_max: positive(cx, &g.backlog, defaults.backlog_max, 1 << 20, "backlog")?,
        transmit_max: defaults.transmit_max,
        dialog_time_limit: duration(
            cx,
            &g.dialog_time_limit,
            defaults.dialog_time_limit,
            "dialog_time_limit",
        )?,
        grace: duration(cx, &g.end_grace, defaults.grace, "end_grace")?,
    };
    let module = g
        .module
        .as_ref()
        .map(|m| check_module(cx, m.get_ref(), data_dir))
        .transpose()?;
    let handoff = match &g.handoff {
        // PPP is the default hand-off, with a pool from the network's prefix.
        None => {
            let n = network.ok_or_else(|| {
                cx.at(
                    &g.name,
                    "this group runs PPP after the dialog (the default hand-off), which needs a [network] table; or set [group.handoff] kind = \"exec\"",
                )
            })?;
            let pool = default_pool(n).ok_or_else(|| {
                cx.at(
                    &g.name,
                    "the [network] prefix leaves no room for a pool; set [group.handoff] pool",
                )
            })?;
            Handoff::Ppp(PppConfig {
                auth: vec![
                    ppp::auth::AuthProtocol::MsChapV2,
                    ppp::auth::AuthProtocol::ChapMd5,
                    ppp::auth::AuthProtocol::Pap,
                ],
                pool,
                same_user: true,
                echo_interval: Duration::from_secs(30),
                echo_max_missed: 4,
                auth_timeout: PPP_AUTH_TIMEOUT,
                idle_timeout: None,
                session_limit: None,
                radius: None,
            })
        }
        Some(h) => {
            let h = h.get_ref();
            match h.kind.get_ref().as_str() {
                "exec" => {
                    let p = h
                        .program
                        .as_ref()
                        .ok_or_else(|| cx.at(&h.kind, "an `exec` hand-off needs `program`"))?;
                    let program = PathBuf::from(p.get_ref());
                    if !program.is_absolute() {
                        return Err(cx.at(p, "`program` must be an absolute path"));
                    }
                    Handoff::Exec {
                        program,
                        args: h.args.clone(),
                    }
                }
                "ppp" => {
                    if h.program.is_some() || !h.args.is_empty() {
                        return Err(cx.at(&h.kind, "`program` and `args` are for `exec` hand-offs"));
                    }
                    Handoff::Ppp(check_ppp(cx, h)?)
                }
                other => {
                    return Err(cx.at(
                        &h.kind,
                        format!("unknown hand-off kind `{other}` (exec or ppp)"),
                    ));
                }
            }
        }
    };
    if module.is_none() && !matches!(handoff, Handoff::Ppp(_)) {
        return Err(cx.at(
            &g.name,
            "a group without [group.module] must have a `ppp` hand-off (a dedicated PPP port)",
        ));
    }
    let modem = g
        .modem
        .as_ref()
        .map(|m| check_modem(cx, m.get_ref()))
        .transpose()?;
    let callback = match &g.callback {
        None => None,
        Some(c) => {
            if modem.is_none() {
                return Err(cx.at(
                    c,
                    "callback needs a modem to dial out: add [group.modem] to this serial group",
                ));
            }
            if !matches!(handoff, Handoff::Ppp(_)) {
                return Err(cx.at(
                    c,
                    "callback is for PPP (authentication again on the new call): this group's hand-off is not ppp",
                ));
            }
            if module.is_none() {
                return Err(cx.at(
                    c,
                    "callback follows the dialog; a group without [group.module] has none",
                ));
            }
            Some(check_callback(cx, c.get_ref())?)
        }
    };
    Ok(Group {
        name,
        kind,
        max_callers,
        module,
        handoff,
        transaction,
        modem,
        callback,
    })
}

/// `kind = "serial"`: the devices and the line settings.
fn check_serial(cx: &Ctx<'_>, g: &RawGroup) -> Result<PortKind, ConfigError> {
    let mut devices: Vec<PathBuf> = Vec::new();
    let mut spans: Vec<Range<usize>> = Vec::new();
    match (&g.device, &g.devices) {
        (Some(d), None) => {
            devices.push(PathBuf::from(d.get_ref()));
            spans.push(d.span());
        }
        (None, Some(list)) => {
            if list.get_ref().is_empty() {
                return Err(cx.at(list, "`devices` is empty"));
            }
            for d in list.get_ref() {
                devices.push(PathBuf::from(d.get_ref()));
                spans.push(d.span());
            }
        }
        (Some(d), Some(_)) => {
            return Err(cx.at(d, "give `device` or `devices`, not both"));
        }
        (None, None) => {
            return Err(cx.at(
                &g.kind,
                "a `serial` group needs `device = \"/dev/ttyS0\"` or `devices = [...]`",
            ));
        }
    }
    for (i, (d, span)) in devices.iter().zip(&spans).enumerate() {
        if !d.is_absolute() {
            return Err(cx.err(
                Some(span.clone()),
                "a device is an absolute path like /dev/ttyUSB0",
            ));
        }
        if devices[..i].contains(d) {
            return Err(cx.err(
                Some(span.clone()),
                format!("{} is listed twice", d.display()),
            ));
        }
    }
    let mut settings = ports::SerialSettings::default();
    if let Some(s) = &g.speed {
        settings.speed = u32::try_from(*s.get_ref())
            .map_err(|_| cx.at(s, format!("speed {} is not a bit rate", s.get_ref())))?;
    }
    if let Some(b) = &g.data_bits {
        settings.data_bits = u8::try_from(*b.get_ref())
            .ok()
            .filter(|n| (5..=8).contains(n))
            .ok_or_else(|| cx.at(b, format!("data_bits {} is not 5 to 8", b.get_ref())))?;
    }
    if let Some(p) = &g.parity {
        settings.parity = match p.get_ref().as_str() {
            "none" => ports::Parity::None,
            "even" => ports::Parity::Even,
            "odd" => ports::Parity::Odd,
            other => {
                return Err(cx.at(p, format!("unknown parity `{other}` (none, even or odd)")));
            }
        };
    }
    if let Some(b) = &g.stop_bits {
        settings.stop_bits = u8::try_from(*b.get_ref())
            .ok()
            .filter(|n| (1..=2).contains(n))
            .ok_or_else(|| cx.at(b, format!("stop_bits {} is not 1 or 2", b.get_ref())))?;
    }
    if let Some(f) = &g.flow_control {
        settings.flow = match f.get_ref().as_str() {
            "none" => ports::FlowControl::None,
            "rts/cts" | "rtscts" | "hardware" => ports::FlowControl::RtsCts,
            "xon/xoff" | "xonxoff" | "software" => ports::FlowControl::XonXoff,
            other => {
                return Err(cx.at(
                    f,
                    format!("unknown flow_control `{other}` (none, rts/cts or xon/xoff)"),
                ));
            }
        };
    }
    if let Err(e) = settings.validate() {
        let span = g
            .speed
            .as_ref()
            .map(Spanned::span)
            .or(g.data_bits.as_ref().map(Spanned::span))
            .or(g.stop_bits.as_ref().map(Spanned::span))
            .unwrap_or(g.kind.span());
        return Err(cx.err(Some(span), e));
    }
    Ok(PortKind::Serial { devices, settings })
}

/// `[group.modem]`.
fn check_modem(cx: &Ctx<'_>, m: &RawModem) -> Result<ModemSettings, ConfigError> {
    let d = modem::Config::default();
    let init = match &m.init {
        None => d.init_commands.clone(),
        Some(list) => {
            for c in list.get_ref() {
                let ok = c.len() >= 2
                    && c.len() <= 60
                    && c[..2].eq_ignore_ascii_case("AT")
                    && c.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
                if !ok {
                    return Err(cx.at(
                        list,
                        format!(
                            "init command {c:?} is not an AT command (it starts with AT, has printable characters only, at most 60)"
                        ),
                    ));
                }
            }
            list.get_ref().clone()
        }
    };
    let answer_on_ring = match &m.answer_on_ring {
        None => d.answer_on_ring,
        Some(n) if (0..=20).contains(n.get_ref()) => *n.get_ref() as u32,
        Some(n) => {
            return Err(cx.at(
                n,
                "answer_on_ring is 1 to 20 (or 0: the modem answers by itself, S0>0)",
            ));
        }
    };
    let answerer = modem::Config {
        init_commands: init,
        answer_on_ring,
        command_timeout: duration(cx, &m.command_timeout, d.command_timeout, "command_timeout")?,
        init_backoff: duration(cx, &m.init_backoff, d.init_backoff, "init_backoff")?,
        init_backoff_max: duration(
            cx,
            &m.init_backoff_max,
            d.init_backoff_max,
            "init_backoff_max",
        )?,
        init_max_attempts: positive(
            cx,
            &m.init_attempts,
            d.init_max_attempts as usize,
            100,
            "init_attempts",
        )? as u32,
        init_failed_retry: duration(
            cx,
            &m.init_failed_retry,
            d.init_failed_retry,
            "init_failed_retry",
        )?,
        connect_timeout: duration(cx, &m.connect_timeout, d.connect_timeout, "connect_timeout")?,
        ring_reset: duration(cx, &m.ring_reset, d.ring_reset, "ring_reset")?,
        dtr_drop: duration(cx, &m.dtr_drop, d.dtr_drop, "dtr_drop")?,
        guard_time: duration(cx, &m.guard_time, d.guard_time, "guard_time")?,
    };
    if answerer.init_backoff > answerer.init_backoff_max {
        let at = m
            .init_backoff_max
            .as_ref()
            .map(|v| v.span())
            .or(m.init_backoff.as_ref().map(|v| v.span()));
        return Err(cx.err(
            at,
            format!(
                "init_backoff ({:?}) is longer than init_backoff_max ({:?}): the first wait would already be the longest",
                answerer.init_backoff, answerer.init_backoff_max
            ),
        ));
    }
    Ok(ModemSettings {
        answerer,
        carrier_poll: duration(
            cx,
            &m.carrier_poll,
            Duration::from_millis(100),
            "carrier_poll",
        )?,
    })
}

/// `[group.callback]`.
fn check_callback(cx: &Ctx<'_>, c: &RawCallback) -> Result<CallbackConfig, ConfigError> {
    let mut users = std::collections::BTreeMap::new();
    for (user, v) in &c.users {
        let p = match v.get_ref().as_str() {
            "none" => CallbackPolicy::None,
            "caller" => CallbackPolicy::Caller,
            n => {
                modem::validate_number(n).map_err(|_| {
                    cx.at(
                        v,
                        format!(
                            "callback for `{user}`: `{n}` is not `none`, `caller` or a dial string (1 to {} of 0-9 * # , W @ P T)",
                            modem::MAX_NUMBER
                        ),
                    )
                })?;
                CallbackPolicy::Number(n.to_string())
            }
        };
        users.insert(user.clone(), p);
    }
    Ok(CallbackConfig {
        users,
        delay: duration(cx, &c.delay, Duration::from_secs(5), "delay")?,
        attempts: positive(cx, &c.attempts, 2, 10, "attempts")? as u32,
        prompt: c
            .prompt
            .clone()
            .unwrap_or_else(|| "Callback number: ".to_string()),
        prompt_timeout: duration(
            cx,
            &c.prompt_timeout,
            Duration::from_secs(60),
            "prompt_timeout",
        )?,
    })
}

fn check_module(cx: &Ctx<'_>, m: &RawModule, data_dir: &Path) -> Result<ModuleConfig, ConfigError> {
    check_module_at(cx, m, data_dir, 0)
}

/// The keys each module kind takes (besides `kind`).
fn module_keys(kind: &str) -> Option<&'static [&'static str]> {
    const DIALOG: [&str; 4] = ["banner", "tries", "prompt_timeout", "domain"];
    Some(match kind {
        "users" => &DIALOG,
        "pin" => &["user", "pin_file", "tries"],
        "c" => &["path"],
        "totp" => &[
            "banner",
            "tries",
            "prompt_timeout",
            "domain",
            "store",
            "window",
            "user_from_previous",
        ],
        "radius" => &[
            "banner",
            "tries",
            "prompt_timeout",
            "domain",
            "servers",
            "timeout",
            "retries",
            "require_message_authenticator",
            "nas_identifier",
            "max_challenge_rounds",
        ],
        "pam" => &[
            "banner",
            "tries",
            "prompt_timeout",
            "domain",
            "service",
            "ask_username",
        ],
        "exec" => &["program", "args", "env"],
        "chain" => &["steps"],
        _ => return None,
    })
}

fn check_module_at(
    cx: &Ctx<'_>,
    m: &RawModule,
    data_dir: &Path,
    depth: usize,
) -> Result<ModuleConfig, ConfigError> {
    let kind = m.kind.get_ref().as_str();
    let Some(keys) = module_keys(kind) else {
        return Err(cx.at(
            &m.kind,
            format!("unknown module `{kind}` (users, pin, totp, radius, pam, exec, chain or c)"),
        ));
    };
    for (key, span) in m.present() {
        if !keys.contains(&key) {
            return Err(cx.err(
                Some(span),
                format!("`{key}` does not apply to the `{kind}` module"),
            ));
        }
    }
    let tries = positive(cx, &m.tries, 3, 20, "tries")? as u32;
    let banner = m
        .banner
        .as_ref()
        .map(|b| b.get_ref().clone())
        .unwrap_or_default();
    let domain = m
        .domain
        .as_ref()
        .map(|d| d.get_ref().clone())
        .unwrap_or_default();
    if domain.len() > securityhost::consts::DNLEN {
        return Err(cx.at(
            m.domain.as_ref().unwrap_or(&m.kind),
            "domain is at most 15 bytes",
        ));
    }
    let prompt_timeout = duration(
        cx,
        &m.prompt_timeout,
        Duration::from_secs(60),
        "prompt_timeout",
    )?
    .as_secs() as u32;
    let need = |f: &Option<Spanned<String>>, what: &str| -> Result<String, ConfigError> {
        f.as_ref()
            .map(|v| v.get_ref().clone())
            .ok_or_else(|| cx.at(&m.kind, format!("the `{kind}` module needs `{what}`")))
    };
    match kind {
        "users" => Ok(ModuleConfig::Users {
            banner,
            tries,
            prompt_timeout,
            domain,
        }),
        "pin" => Ok(ModuleConfig::Pin {
            user: need(&m.user, "user")?,
            pin_file: data_dir.join(need(&m.pin_file, "pin_file")?),
            tries,
        }),
        "c" => {
            let p = PathBuf::from(need(&m.path, "path")?);
            // Relative to the configuration file's directory.
            let p = if p.is_relative() { cx.base.join(p) } else { p };
            Ok(ModuleConfig::C { path: p })
        }
        "totp" => {
            let window = match &m.window {
                None => 1,
                Some(w) if (0..=10).contains(w.get_ref()) => *w.get_ref() as u64,
                Some(w) => return Err(cx.at(w, "window is 0 to 10 steps")),
            };
            Ok(ModuleConfig::Totp {
                store: data_dir.join(
                    m.store
                        .as_ref()
                        .map_or("totp.toml", |s| s.get_ref().as_str()),
                ),
                banner,
                tries,
                prompt_timeout,
                domain,
                window,
                user_from_previous: m.user_from_previous.as_ref().is_some_and(|b| *b.get_ref()),
            })
        }
        "radius" => {
            let list = m.servers.as_ref().ok_or_else(|| {
                cx.at(&m.kind, "the `radius` module needs `servers = [{ address = \"HOST:1812\", secret_file = \"...\" }]`")
            })?;
            if list.get_ref().is_empty() {
                return Err(cx.at(list, "at least one RADIUS server"));
            }
            let servers = radius_servers(cx, list.get_ref())?;
            Ok(ModuleConfig::Radius {
                servers,
                timeout: duration(cx, &m.timeout, Duration::from_secs(3), "timeout")?,
                retries: match &m.retries {
                    None => 2,
                    Some(r) if (0..=10).contains(r.get_ref()) => *r.get_ref() as u32,
                    Some(r) => return Err(cx.at(r, "retries is 0 to 10")),
                },
                require_message_authenticator: require_ma(cx, &m.require_message_authenticator)?,
                nas_identifier: m
                    .nas_identifier
                    .as_ref()
                    .map_or_else(|| "dialgate".to_string(), |n| n.get_ref().clone()),
                banner,
                tries: if m.tries.is_some() { tries } else { 1 },
                max_challenge_rounds: match &m.max_challenge_rounds {
                    None => 10,
                    Some(r) if (0..=100).contains(r.get_ref()) => *r.get_ref() as u32,
                    Some(r) => return Err(cx.at(r, "max_challenge_rounds is 0 to 100")),
                },
                prompt_timeout,
                domain,
            })
        }
        "pam" => Ok(ModuleConfig::Pam {
            service: m
                .service
                .as_ref()
                .map_or_else(|| "dialgate".to_string(), |s| s.get_ref().clone()),
            ask_username: m.ask_username.as_ref().is_none_or(|b| *b.get_ref()),
            banner,
            tries,
            prompt_timeout,
            domain,
        }),
        "exec" => {
            let p = PathBuf::from(need(&m.program, "program")?);
            let p = if p.is_relative() { cx.base.join(p) } else { p };
            Ok(ModuleConfig::Exec {
                program: p,
                args: m
                    .args
                    .as_ref()
                    .map(|a| a.get_ref().clone())
                    .unwrap_or_default(),
                env: m
                    .env
                    .as_ref()
                    .map(|e| {
                        e.get_ref()
                            .iter()
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        }
        "chain" => {
            let list = m
                .steps
                .as_ref()
                .ok_or_else(|| cx.at(&m.kind, "a `chain` module needs `steps = [{ kind = \"users\" }, { kind = \"totp\", user_from_previous = true }]`"))?;
            if list.get_ref().len() < 2 {
                return Err(cx.at(list, "a chain has at least two steps"));
            }
            if depth > 0 {
                return Err(cx.at(&m.kind, "a chain cannot contain a chain"));
            }
            let steps = list
                .get_ref()
                .iter()
                .map(|st| check_module_at(cx, st.get_ref(), data_dir, depth + 1))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(ModuleConfig::Chain { steps })
        }
        _ => unreachable!("module_keys knows every kind"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<Config, ConfigError> {
        parse(text, "t.toml", Path::new("/data"), None)
    }

    #[test]
    fn embedded_defaults_parse() {
        let c = parse(DEFAULT_CONFIG, "<embedded defaults>", Path::new("/d"), None).unwrap();
        assert_eq!(c.groups.len(), 1);
        assert_eq!(
            c.groups[0].kind,
            PortKind::Telnet("127.0.0.1:2323".parse().unwrap())
        );
        assert_eq!(c.event_log, Path::new("/d/events.sqlite"));
        assert_eq!(c.event_log_timeout, DEFAULT_EVENT_LOG_TIMEOUT);
    }

    #[test]
    fn hole_7_event_log_timeout_is_read_and_bounded() {
        let g = "[[group]]\nname = \"a\"\nkind = \"tcp\"\nlisten = \"127.0.0.1:0\"\n[group.handoff]\nkind = \"exec\"\nprogram = \"/bin/true\"\n[group.module]\nkind = \"users\"\n";
        let c = p(&format!("event_log_timeout = \"250ms\"\n{g}")).unwrap();
        assert_eq!(c.event_log_timeout, Duration::from_millis(250));
        let e = p(&format!("event_log_timeout = \"11m\"\n{g}")).unwrap_err();
        assert!(e.message.contains("at most 10m"), "{e}");
        assert_eq!(e.at, Some((1, 21)), "{e}");
        let e = p(&format!("event_log_timeout = 0\n{g}")).unwrap_err();
        assert!(e.message.contains("more than 0"), "{e}");
    }

    #[test]
    fn syntax_errors_have_line_and_column() {
        let e = p("[[group]]\nname = \"a\"\nkind = \n").unwrap_err();
        assert_eq!(e.at.map(|a| a.0), Some(3), "{e}");
        assert!(e.to_string().starts_with("t.toml:3:"), "{e}");
    }

    #[test]
    fn semantic_errors_point_at_the_value() {
        let text = "[[group]]\nname = \"a\"\nkind = \"telnet\"\nlisten = \"nowhere\"\n[group.module]\nkind = \"users\"\n";
        let e = p(text).unwrap_err();
        assert_eq!(e.at, Some((4, 10)), "{e}");
        assert!(e.message.contains("not an address"), "{e}");
        let text = "[[group]]\nname = \"a\"\nkind = \"serial\"\n[group.module]\nkind = \"users\"\n";
        let e = p(text).unwrap_err();
        assert_eq!(e.at, Some((3, 8)), "{e}");
        let text = "[[group]]\nname = \"a\"\nkind = \"tcp\"\nlisten = \"127.0.0.1:1\"\n[group.module]\nkind = \"radius\"\n";
        let e = p(text).unwrap_err();
        assert_eq!(e.at, Some((6, 8)), "{e}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let e = p("colour = 1\n").unwrap_err();
        assert!(e.message.contains("colour"), "{e}");
        assert_eq!(e.at.map(|a| a.0), Some(1));
    }

    #[test]
    fn duplicate_names_and_addresses_are_refused() {
        let g = "[[group]]\nname = \"a\"\nkind = \"tcp\"\nlisten = \"127.0.0.1:5000\"\n[group.module]\nkind = \"users\"\n";
        let net = "[network]\ntun = \"dg0\"\naddress = \"10.250.1.1/24\"\n";
        let e = p(&format!("{net}{g}{g}")).unwrap_err();
        assert!(e.message.contains("second group"), "{e}");
        let g2 = g.replace("name = \"a\"", "name = \"b\"");
        let e = p(&format!("{net}{g}{g2}")).unwrap_err();
        assert!(e.message.contains("already uses"), "{e}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("5x"), None);
        assert_eq!(parse_duration("m"), None);
        assert_eq!(parse_duration("5m3"), None);
        let text = "[[group]]\nname = \"a\"\nkind = \"pty\"\nlink = \"/tmp/x\"\ndialog_time_limit = \"soon\"\n[group.module]\nkind = \"users\"\n";
        let e = p(text).unwrap_err();
        assert_eq!(e.at.map(|a| a.0), Some(5), "{e}");
    }

    #[test]
    fn pty_group_and_limits() {
        let text = "[[group]]\nname = \"modem0\"\nkind = \"pty\"\nlink = \"/run/dg/pty0\"\ndialog_time_limit = \"30s\"\nrecv_buffer = 64\n[group.module]\nkind = \"users\"\ntries = 2\n";
        let net = "[network]\ntun = \"dg0\"\naddress = \"10.250.1.1/24\"\n";
        let c = p(&format!("{net}{text}")).unwrap();
        let g = &c.groups[0];
        // PPP is the default hand-off, its pool taken from [network].
        let Handoff::Ppp(ppp) = &g.handoff else {
            panic!("{:?}", g.handoff)
        };
        assert_eq!(
            ppp.pool,
            (
                "10.250.1.2".parse().unwrap(),
                "10.250.1.254".parse().unwrap()
            )
        );
        let e = p(text).unwrap_err();
        assert!(e.message.contains("[network]"), "{e}");
        assert_eq!(
            g.kind,
            PortKind::Pty {
                link: "/run/dg/pty0".into()
            }
        );
        assert_eq!(g.max_callers, 1);
        assert_eq!(g.transaction.dialog_time_limit, Duration::from_secs(30));
        assert_eq!(g.transaction.recv_buffer_size, 64);
        assert!(matches!(
            g.module,
            Some(ModuleConfig::Users { tries: 2, .. })
        ));
        let e = p(&format!(
            "{net}{}",
            text.replace("recv_buffer = 64", "recv_buffer = 0")
        ))
        .unwrap_err();
        assert_eq!(e.at.map(|a| a.0), Some(9));
    }

    #[test]
    fn line_col_counts_characters() {
        assert_eq!(line_col("ab\ncdé", 7), (2, 4));
        assert_eq!(
            line_col("ab\ncdé", 6),
            (2, 3),
            "inside a character: its start"
        );
        assert_eq!(line_col("", 10), (1, 1));
    }

    // ---- serial groups, [group.modem], [group.callback] ---------------------

    const SNET: &str = "[network]\ntun = \"dg0\"\naddress = \"10.250.1.1/24\"\n";

    /// A serial group `lines` with `keys` in its table and `tables` after its
    /// `[group.module]` (users); PPP is its (default) hand-off.
    fn serial(keys: &str, tables: &str) -> String {
        format!(
            "{SNET}[[group]]\nname = \"lines\"\nkind = \"serial\"\n{keys}[group.module]\nkind = \"users\"\n{tables}"
        )
    }

    /// The 1-based line of the first occurrence of `needle` in `text`.
    fn line_of(text: &str, needle: &str) -> usize {
        let at = text
            .find(needle)
            .unwrap_or_else(|| panic!("{needle:?} not in {text:?}"));
        text[..at].matches('\n').count() + 1
    }

    /// The error of `text`, which must name `needles` and point at the line
    /// holding `at_line_of`.
    fn refused(text: &str, needles: &[&str], at_line_of: &str) -> ConfigError {
        let e = match p(text) {
            Ok(c) => panic!("accepted: {text}\n{:?}", c.groups),
            Err(e) => e,
        };
        for n in needles {
            assert!(e.message.contains(n), "{n:?} not in: {e}\n{text}");
        }
        assert_eq!(
            e.at.map(|a| a.0),
            Some(line_of(text, at_line_of)),
            "{e}\n{text}"
        );
        e
    }

    const FULL_MODEM: &str = "[group.modem]\ninit = [\"ATZ\", \"at&f1e0v1s0=0\"]\nanswer_on_ring = 3\ncommand_timeout = \"1500ms\"\ninit_backoff = \"2s\"\ninit_backoff_max = \"1m30s\"\ninit_attempts = 7\ninit_failed_retry = \"5m\"\nconnect_timeout = 45\nring_reset = \"10s\"\ndtr_drop = \"250ms\"\nguard_time = \"1s\"\ncarrier_poll = \"50ms\"\n";

    const FULL_CALLBACK: &str = "[group.callback]\ndelay = \"2500ms\"\nattempts = 4\nprompt = \"Number to call: \"\nprompt_timeout = \"45s\"\nusers = { alice = \"5551234\", bob = \"caller\", carol = \"none\", dave = \"*70,9w555#\" }\n";

    #[test]
    fn a_full_serial_group_parses_every_key() {
        let text = serial(
            "devices = [\"/dev/ttyUSB0\", \"/dev/ttyUSB1\"]\nspeed = 57600\ndata_bits = 7\nparity = \"even\"\nstop_bits = 2\nflow_control = \"xon/xoff\"\ndialog_time_limit = \"90s\"\n",
            &format!("{FULL_MODEM}{FULL_CALLBACK}"),
        );
        let c = p(&text).unwrap();
        let g = &c.groups[0];
        assert_eq!(g.name, "lines");
        assert_eq!(g.kind.name(), "serial");
        assert_eq!(
            g.kind,
            PortKind::Serial {
                devices: vec!["/dev/ttyUSB0".into(), "/dev/ttyUSB1".into()],
                settings: ports::SerialSettings {
                    speed: 57_600,
                    data_bits: 7,
                    parity: ports::Parity::Even,
                    stop_bits: 2,
                    flow: ports::FlowControl::XonXoff,
                },
            }
        );
        assert_eq!(g.max_callers, 2, "one caller per device");
        assert_eq!(g.transaction.dialog_time_limit, Duration::from_secs(90));
        assert!(matches!(g.module, Some(ModuleConfig::Users { .. })));
        assert!(matches!(g.handoff, Handoff::Ppp(_)));

        let m = g.modem.as_ref().expect("[group.modem]");
        assert_eq!(
            m.answerer,
            modem::Config {
                init_commands: vec!["ATZ".into(), "at&f1e0v1s0=0".into()],
                answer_on_ring: 3,
                command_timeout: Duration::from_millis(1500),
                init_backoff: Duration::from_secs(2),
                init_backoff_max: Duration::from_secs(90),
                init_max_attempts: 7,
                init_failed_retry: Duration::from_secs(300),
                connect_timeout: Duration::from_secs(45),
                ring_reset: Duration::from_secs(10),
                dtr_drop: Duration::from_millis(250),
                guard_time: Duration::from_secs(1),
            }
        );
        assert_eq!(m.carrier_poll, Duration::from_millis(50));

        let cb = g.callback.as_ref().expect("[group.callback]");
        assert_eq!(cb.delay, Duration::from_millis(2500));
        assert_eq!(cb.attempts, 4);
        assert_eq!(cb.prompt, "Number to call: ");
        assert_eq!(cb.prompt_timeout, Duration::from_secs(45));
        assert_eq!(cb.users.len(), 4);
        assert_eq!(
            cb.policy("alice"),
            &CallbackPolicy::Number("5551234".into())
        );
        assert_eq!(cb.policy("bob"), &CallbackPolicy::Caller);
        assert_eq!(cb.policy("carol"), &CallbackPolicy::None);
        assert_eq!(
            cb.policy("dave"),
            &CallbackPolicy::Number("*70,9w555#".into()),
            "kept as written"
        );
        assert_eq!(cb.policy("mallory"), &CallbackPolicy::None, "not listed");
        assert_eq!(cb.policy(""), &CallbackPolicy::None);
        assert_eq!(cb.policy("Alice"), &CallbackPolicy::None, "names are exact");
    }

    #[test]
    fn a_serial_group_with_only_a_device_takes_the_defaults() {
        let c = p(&serial("device = \"/dev/ttyS0\"\n", "")).unwrap();
        let g = &c.groups[0];
        assert_eq!(
            g.kind,
            PortKind::Serial {
                devices: vec!["/dev/ttyS0".into()],
                settings: ports::SerialSettings::default(),
            }
        );
        let PortKind::Serial { settings, .. } = &g.kind else {
            unreachable!()
        };
        assert_eq!(settings.speed, 115_200);
        assert_eq!(settings.data_bits, 8);
        assert_eq!(settings.parity, ports::Parity::None);
        assert_eq!(settings.stop_bits, 1);
        assert_eq!(settings.flow, ports::FlowControl::RtsCts);
        assert_eq!(g.max_callers, 1);
        assert!(g.modem.is_none(), "direct line");
        assert!(g.callback.is_none());
        assert!(matches!(g.handoff, Handoff::Ppp(_)));

        // Empty [group.modem] and [group.callback]: their defaults.
        let c = p(&serial(
            "device = \"/dev/ttyS0\"\n",
            "[group.modem]\n[group.callback]\n",
        ))
        .unwrap();
        let g = &c.groups[0];
        let m = g.modem.as_ref().unwrap();
        assert_eq!(m.answerer, modem::Config::default());
        assert_eq!(m.carrier_poll, Duration::from_millis(100));
        let cb = g.callback.as_ref().unwrap();
        assert!(cb.users.is_empty());
        assert_eq!(cb.delay, Duration::from_secs(5));
        assert_eq!(cb.attempts, 2);
        assert_eq!(cb.prompt, "Callback number: ");
        assert_eq!(cb.prompt_timeout, Duration::from_secs(60));
        assert_eq!(cb.policy("anyone"), &CallbackPolicy::None);
    }

    #[test]
    fn serial_speeds_parity_and_flow_control_spellings() {
        for speed in [
            50, 300, 1200, 2400, 9600, 19_200, 38_400, 230_400, 4_000_000,
        ] {
            let c = p(&serial(
                &format!("device = \"/dev/ttyS0\"\nspeed = {speed}\n"),
                "",
            ))
            .unwrap_or_else(|e| panic!("{speed}: {e}"));
            let PortKind::Serial { settings, .. } = &c.groups[0].kind else {
                panic!()
            };
            assert_eq!(settings.speed, speed);
        }
        for (word, parity) in [
            ("none", ports::Parity::None),
            ("even", ports::Parity::Even),
            ("odd", ports::Parity::Odd),
        ] {
            let c = p(&serial(
                &format!("device = \"/dev/ttyS0\"\nparity = \"{word}\"\n"),
                "",
            ))
            .unwrap();
            let PortKind::Serial { settings, .. } = &c.groups[0].kind else {
                panic!()
            };
            assert_eq!(settings.parity, parity, "{word}");
        }
        for (word, flow) in [
            ("none", ports::FlowControl::None),
            ("rts/cts", ports::FlowControl::RtsCts),
            ("rtscts", ports::FlowControl::RtsCts),
            ("hardware", ports::FlowControl::RtsCts),
            ("xon/xoff", ports::FlowControl::XonXoff),
            ("xonxoff", ports::FlowControl::XonXoff),
            ("software", ports::FlowControl::XonXoff),
        ] {
            let c = p(&serial(
                &format!("device = \"/dev/ttyS0\"\nflow_control = \"{word}\"\n"),
                "",
            ))
            .unwrap();
            let PortKind::Serial { settings, .. } = &c.groups[0].kind else {
                panic!()
            };
            assert_eq!(settings.flow, flow, "{word}");
        }
        for (bits, stop) in [(5, 1), (6, 2), (8, 2)] {
            let c = p(&serial(
                &format!("device = \"/dev/ttyS0\"\ndata_bits = {bits}\nstop_bits = {stop}\n"),
                "",
            ))
            .unwrap();
            let PortKind::Serial { settings, .. } = &c.groups[0].kind else {
                panic!()
            };
            assert_eq!((settings.data_bits, settings.stop_bits), (bits, stop));
        }
    }

    #[test]
    fn serial_devices_mistakes_are_located() {
        let text = serial("speed = 9600\n", "");
        refused(&text, &["device"], "kind = \"serial\"");
        let text = serial("device = \"/dev/ttyS0\"\ndevices = [\"/dev/ttyS1\"]\n", "");
        refused(&text, &["device", "devices", "not both"], "device = ");
        let text = serial("devices = []\n", "");
        refused(&text, &["devices", "empty"], "devices = ");
        let text = serial("device = \"ttyS0\"\n", "");
        refused(&text, &["absolute"], "device = ");
        let text = serial(
            "devices = [\"/dev/ttyS0\",\n  \"/dev/ttyS1\",\n  \"/dev/ttyS0\"]\n",
            "",
        );
        let e = refused(&text, &["/dev/ttyS0", "twice"], "  \"/dev/ttyS0\"]");
        assert!(!e.message.contains("ttyS1"), "{e}");
        // A device in two groups.
        let second = "[[group]]\nname = \"more\"\nkind = \"serial\"\ndevices = [\"/dev/ttyS1\", \"/dev/ttyS0\"]\n[group.module]\nkind = \"users\"\n";
        let text = format!("{}{second}", serial("device = \"/dev/ttyS0\"\n", ""));
        let e = p(&text).unwrap_err();
        assert!(e.message.contains("`lines`"), "names the first group: {e}");
        assert!(e.message.contains("answers on /dev/ttyS0"), "{e}");
        assert_eq!(
            e.at.unwrap().0,
            line_of(&text, "devices = [\"/dev/ttyS1\""),
            "{e}"
        );
        // Serial groups take no listen, link or max_callers.
        let text = serial("device = \"/dev/ttyS0\"\nlisten = \"127.0.0.1:1\"\n", "");
        refused(&text, &["devices", "listen"], "listen = ");
        let text = serial("device = \"/dev/ttyS0\"\nlink = \"/tmp/l\"\n", "");
        refused(&text, &["link"], "link = ");
        let text = serial("device = \"/dev/ttyS0\"\nmax_callers = 2\n", "");
        refused(&text, &["devices"], "max_callers = ");
    }

    #[test]
    fn serial_line_settings_mistakes_are_located() {
        let base = "devices = [\"/dev/ttyS0\"]\nspeed = 9600\n";
        for (key, value, needles) in [
            ("speed", "12345", &["speed", "12345"][..]),
            ("speed", "0", &["speed"][..]),
            ("speed", "-9600", &["speed", "-9600"][..]),
            ("speed", "\"fast\"", &["fast"][..]),
            ("data_bits", "9", &["data_bits", "9"][..]),
            ("data_bits", "4", &["data_bits", "4"][..]),
            ("data_bits", "300", &["data_bits", "300"][..]),
            ("data_bits", "\"eight\"", &["eight"][..]),
            ("stop_bits", "3", &["stop_bits", "3"][..]),
            ("stop_bits", "0", &["stop_bits"][..]),
            ("stop_bits", "\"one\"", &["one"][..]),
            ("parity", "\"mark\"", &["parity", "mark", "even"][..]),
            ("parity", "\"\"", &["parity"][..]),
            ("parity", "1", &[][..]),
            ("flow_control", "\"rts\"", &["flow_control", "`rts`"][..]),
            ("flow_control", "\"\"", &["flow_control"][..]),
        ] {
            // The bad key after `speed`, so that its line is not the
            // group's first line settings key.
            let keys = if key == "speed" {
                format!("devices = [\"/dev/ttyS0\"]\nparity = \"none\"\n{key} = {value}\n")
            } else {
                format!("{base}{key} = {value}\n")
            };
            let text = serial(&keys, "");
            refused(&text, needles, &format!("{key} = {value}"));
        }
    }

    #[test]
    fn modem_settings_mistakes_are_located() {
        let dev = "device = \"/dev/ttyS0\"\n";
        // answer_on_ring: 0 (the modem answers by itself) to 20.
        for n in [0, 1, 20] {
            let c = p(&serial(
                dev,
                &format!("[group.modem]\nanswer_on_ring = {n}\n"),
            ))
            .unwrap();
            assert_eq!(
                c.groups[0].modem.as_ref().unwrap().answerer.answer_on_ring,
                n
            );
        }
        for n in ["21", "-1", "1000"] {
            let text = serial(dev, &format!("[group.modem]\nanswer_on_ring = {n}\n"));
            refused(&text, &["answer_on_ring", "20"], "answer_on_ring = ");
        }
        // Every duration: zero (in seconds or ms), negative, nonsense, too long.
        for key in [
            "command_timeout",
            "init_backoff",
            "init_backoff_max",
            "init_failed_retry",
            "connect_timeout",
            "ring_reset",
            "dtr_drop",
            "guard_time",
            "carrier_poll",
        ] {
            for (value, why) in [
                ("0", "more than 0"),
                ("\"0ms\"", "more than 0"),
                ("\"0s\"", "more than 0"),
                ("-3", "negative"),
                ("\"soon\"", "not a duration"),
                ("\"1.5s\"", "not a duration"),
                ("\"5ms3\"", "not a duration"),
                ("\"25h\"", "at most 24h"),
            ] {
                let text = serial(
                    dev,
                    &format!("[group.modem]\nanswer_on_ring = 2\n{key} = {value}\n"),
                );
                refused(&text, &[key, why], &format!("{key} = "));
            }
            // (init_backoff_max may not be shorter than init_backoff.)
            let extra = if key == "init_backoff_max" {
                "init_backoff = \"10ms\"\n"
            } else {
                ""
            };
            let c = p(&serial(
                dev,
                &format!("[group.modem]\n{extra}{key} = \"20ms\"\n"),
            ))
            .unwrap();
            assert_ne!(
                c.groups[0].modem.as_ref().unwrap(),
                &ModemSettings {
                    answerer: modem::Config::default(),
                    carrier_poll: Duration::from_millis(100),
                },
                "{key} is read"
            );
        }
        for n in ["0", "101", "-1"] {
            let text = serial(dev, &format!("[group.modem]\ninit_attempts = {n}\n"));
            refused(&text, &["init_attempts", "100"], "init_attempts = ");
        }
        // Init commands are AT commands, printable, at most 60 bytes.
        let long = format!("AT{}", "Z".repeat(59));
        for bad in ["ZAT", "A", "", "ATZ\\r", "AT\\u00e9", long.as_str()] {
            let text = serial(
                dev,
                &format!("[group.modem]\ninit = [\"ATZ\", \"{bad}\"]\n"),
            );
            refused(&text, &["init command"], "init = ");
        }
        let ok = format!("AT{}", "Z".repeat(58));
        let c = p(&serial(dev, &format!("[group.modem]\ninit = [\"{ok}\"]\n"))).unwrap();
        assert_eq!(
            c.groups[0].modem.as_ref().unwrap().answerer.init_commands,
            [ok]
        );
        // Unknown keys.
        let text = serial(dev, "[group.modem]\nanswer_on_rings = 2\n");
        refused(&text, &["answer_on_rings"], "answer_on_rings");
        let text = serial(dev, "[group.modem]\nspeed = 9600\n");
        refused(&text, &["speed"], "speed = ");
    }

    #[test]
    fn an_init_backoff_longer_than_its_maximum_is_refused() {
        let text = serial(
            "device = \"/dev/ttyS0\"\n",
            "[group.modem]\ninit_backoff = \"10s\"\ninit_backoff_max = \"5s\"\n",
        );
        refused(
            &text,
            &["init_backoff", "init_backoff_max"],
            "init_backoff_max = ",
        );
        let text = serial(
            "device = \"/dev/ttyS0\"\n",
            "[group.modem]\ninit_backoff = \"2m\"\n",
        );
        refused(&text, &["init_backoff", "longer"], "init_backoff = ");
    }

    #[test]
    fn modem_and_callback_are_for_serial_groups() {
        let tcp = |tables: &str| {
            format!(
                "{SNET}[[group]]\nname = \"t\"\nkind = \"tcp\"\nlisten = \"127.0.0.1:0\"\n[group.module]\nkind = \"users\"\n{tables}"
            )
        };
        let text = tcp("[group.modem]\nanswer_on_ring = 2\n");
        let e = p(&text).unwrap_err();
        assert!(e.message.contains("`modem` is for serial groups"), "{e}");
        assert!(e.at.is_some(), "{e}");
        let text = tcp("[group.modem]\n[group.callback]\n");
        let e = p(&text).unwrap_err();
        assert!(e.message.contains("serial"), "{e}");
        let text = tcp("[group.callback]\ndelay = 5\n");
        let e = p(&text).unwrap_err();
        assert!(e.message.contains("`callback` is for serial groups"), "{e}");
        for key in [
            "device = \"/dev/ttyS0\"",
            "devices = [\"/dev/ttyS0\"]",
            "speed = 9600",
            "data_bits = 8",
            "parity = \"none\"",
            "stop_bits = 1",
            "flow_control = \"none\"",
        ] {
            let text = format!(
                "{SNET}[[group]]\nname = \"t\"\nkind = \"telnet\"\nlisten = \"127.0.0.1:0\"\n{key}\n[group.module]\nkind = \"users\"\n"
            );
            let name = key.split(' ').next().unwrap();
            refused(&text, &[&format!("`{name}`"), "serial"], key);
        }
    }

    #[test]
    fn callback_needs_a_modem_ppp_and_a_module() {
        let dev = "device = \"/dev/ttyS0\"\n";
        let text = serial(dev, "[group.callback]\nusers = { alice = \"caller\" }\n");
        let e = p(&text).unwrap_err();
        assert!(e.message.contains("[group.modem]"), "{e}");
        assert!(e.at.unwrap().0 >= line_of(&text, "[group.callback]"), "{e}");
        let text = serial(
            dev,
            "[group.handoff]\nkind = \"exec\"\nprogram = \"/bin/sh\"\n[group.modem]\n[group.callback]\nusers = { alice = \"caller\" }\n",
        );
        let e = p(&text).unwrap_err();
        assert!(e.message.contains("not ppp"), "{e}");
        assert!(e.at.unwrap().0 >= line_of(&text, "[group.callback]"), "{e}");
        // A dedicated PPP port: no dialog, so no one to call back.
        let text = format!(
            "{SNET}[[group]]\nname = \"lines\"\nkind = \"serial\"\n{dev}[group.modem]\n[group.callback]\nusers = {{ alice = \"caller\" }}\n"
        );
        let e = p(&text).unwrap_err();
        assert!(e.message.contains("[group.module]"), "{e}");
        // With all three it is accepted, also with an explicit ppp hand-off.
        let text = serial(
            dev,
            "[group.handoff]\nkind = \"ppp\"\npool = \"10.250.1.10-10.250.1.20\"\n[group.modem]\n[group.callback]\nusers = { alice = \"caller\" }\n",
        );
        let c = p(&text).unwrap();
        assert_eq!(
            c.groups[0].callback.as_ref().unwrap().policy("alice"),
            &CallbackPolicy::Caller
        );
    }

    #[test]
    fn callback_mistakes_are_located() {
        let dev = "device = \"/dev/ttyS0\"\n";
        let cb = |body: &str| serial(dev, &format!("[group.modem]\n[group.callback]\n{body}"));
        let long = "5".repeat(modem::MAX_NUMBER + 1);
        for bad in [
            "abc",
            "",
            " ",
            "555-1234",
            "555 1234",
            "+4930123",
            "CALLER",
            long.as_str(),
        ] {
            let text = cb(&format!(
                "users = {{ alice = \"caller\", zoe = \"{bad}\" }}\n"
            ));
            refused(&text, &["`zoe`", "none", "caller"], "users = ");
        }
        let max = "5".repeat(modem::MAX_NUMBER);
        let c = p(&cb(&format!("users = {{ zoe = \"{max}\" }}\n"))).unwrap();
        assert_eq!(
            c.groups[0].callback.as_ref().unwrap().policy("zoe"),
            &CallbackPolicy::Number(max)
        );
        // One user per line: the error points at the bad one.
        let text = cb("[group.callback.users]\nalice = \"caller\"\nbob = \"x1\"\n");
        refused(&text, &["`bob`", "x1"], "bob = ");
        let text = cb("users = { alice = 5551234 }\n");
        refused(&text, &[], "users = ");
        for n in ["0", "11", "-2"] {
            let text = cb(&format!("attempts = {n}\n"));
            refused(&text, &["attempts", "10"], "attempts = ");
        }
        for key in ["delay", "prompt_timeout"] {
            for (value, why) in [
                ("0", "more than 0"),
                ("\"0ms\"", "more than 0"),
                ("-1", "negative"),
                ("\"later\"", "not a duration"),
                ("\"2d\"", "at most 24h"),
            ] {
                let text = cb(&format!("{key} = {value}\n"));
                refused(&text, &[key, why], &format!("{key} = "));
            }
        }
        let c = p(&cb("delay = \"750ms\"\nprompt_timeout = \"1m\"\n")).unwrap();
        let got = c.groups[0].callback.as_ref().unwrap();
        assert_eq!(got.delay, Duration::from_millis(750));
        assert_eq!(got.prompt_timeout, Duration::from_secs(60));
        // Unknown keys.
        let text = cb("retries = 3\n");
        refused(&text, &["retries"], "retries = ");
        let text = cb("users = { alice = \"caller\" }\nnumber = \"555\"\n");
        refused(&text, &["number"], "number = ");
    }
}

#[cfg(test)]
mod ppp_tests {
    use super::*;

    const NET: &str =
        "[network]\ntun = \"dg0\"\naddress = \"10.250.1.1/24\"\ndns = [\"10.250.1.1\"]\n";

    fn group(handoff: &str, module: bool) -> String {
        let m = if module {
            "[group.module]\nkind = \"users\"\n"
        } else {
            ""
        };
        format!(
            "[[group]]\nname = \"p\"\nkind = \"tcp\"\nlisten = \"127.0.0.1:0\"\n{m}[group.handoff]\n{handoff}"
        )
    }

    fn p(text: &str) -> Result<Config, ConfigError> {
        parse(text, "t.toml", Path::new("/data"), None)
    }

    #[test]
    fn a_ppp_handoff_parses_with_defaults() {
        let c = p(&format!(
            "{NET}{}",
            group("kind = \"ppp\"\npool = \"10.250.1.10-10.250.1.20\"\n", true)
        ))
        .unwrap();
        let Handoff::Ppp(ppp) = &c.groups[0].handoff else {
            panic!()
        };
        assert_eq!(ppp.auth.len(), 3);
        assert!(ppp.same_user);
        assert_eq!(c.network.as_ref().unwrap().prefix_len, 24);
    }

    #[test]
    fn hole_3_ppp_auth_timeout_defaults_to_30s_and_is_checked() {
        let ppp_of = |extra: &str| {
            p(&format!(
                "{NET}{}",
                group(
                    &format!("kind = \"ppp\"\npool = \"10.250.1.10-10.250.1.20\"\n{extra}"),
                    true
                )
            ))
        };
        let c = ppp_of("").unwrap();
        let Handoff::Ppp(ppp) = &c.groups[0].handoff else {
            panic!()
        };
        assert_eq!(ppp.auth_timeout, Duration::from_secs(30));
        let c = ppp_of("auth_timeout = \"5s\"\n").unwrap();
        let Handoff::Ppp(ppp) = &c.groups[0].handoff else {
            panic!()
        };
        assert_eq!(ppp.auth_timeout, Duration::from_secs(5));
        for bad in ["0", "\"11m\"", "-3", "\"soon\""] {
            let e = ppp_of(&format!("auth_timeout = {bad}\n")).unwrap_err();
            assert!(e.to_string().contains("auth_timeout"), "{bad}: {e}");
            assert!(e.at.is_some(), "{bad}: points at the key");
        }
    }

    #[test]
    fn a_dedicated_ppp_port_has_no_module() {
        let c = p(&format!(
            "{NET}{}",
            group(
                "kind = \"ppp\"\npool = \"10.250.1.10-10.250.1.20\"\nauth = [\"pap\"]\n",
                false
            )
        ))
        .unwrap();
        assert!(c.groups[0].module.is_none());
        let e = p(&group("kind = \"exec\"\nprogram = \"/bin/true\"\n", false)).unwrap_err();
        assert!(e.message.contains("dedicated"), "{e}");
    }

    #[test]
    fn ppp_mistakes_are_located() {
        let e = p(&group(
            "kind = \"ppp\"\npool = \"10.250.1.10-10.250.1.20\"\n",
            true,
        ))
        .unwrap_err();
        assert!(e.message.contains("[network]"), "{e}");
        let e = p(&format!(
            "{NET}{}",
            group("kind = \"ppp\"\npool = \"10.9.1.10-10.9.1.20\"\n", true)
        ))
        .unwrap_err();
        assert!(e.message.contains("not inside"), "{e}");
        let e = p(&format!(
            "{NET}{}",
            group("kind = \"ppp\"\npool = \"10.250.1.1-10.250.1.20\"\n", true)
        ))
        .unwrap_err();
        assert!(e.message.contains("own address"), "{e}");
        let e = p(&format!(
            "{NET}{}",
            group(
                "kind = \"ppp\"\npool = \"10.250.1.10-10.250.1.20\"\nauth = [\"eap\"]\n",
                true
            )
        ))
        .unwrap_err();
        assert!(e.message.contains("eap"), "{e}");
        assert!(e.at.is_some());
        let e = p(&format!(
            "{NET}{}",
            group("kind = \"ppp\"\npool = \"banana\"\n", true)
        ))
        .unwrap_err();
        assert!(e.message.contains("range"), "{e}");
    }

    #[test]
    fn hole_13_pool_with_network_or_broadcast_address_is_refused() {
        // 10.250.1.1/24: .0 is the network's address, .255 its broadcast.
        let text = format!(
            "{NET}{}",
            group(
                "kind = \"ppp\"\npool = \"10.250.1.240-10.250.1.255\"\n",
                true
            )
        );
        let e = p(&text).unwrap_err();
        assert!(e.message.contains("broadcast address 10.250.1.255"), "{e}");
        // Located at the `pool` key's value, not at the group.
        let line = text.lines().position(|l| l.starts_with("pool")).unwrap() + 1;
        assert_eq!(e.at, Some((line, 8)), "{e}");
        let e = p(&format!(
            "{NET}{}",
            group("kind = \"ppp\"\npool = \"10.250.1.0-10.250.1.0\"\n", true)
        ))
        .unwrap_err();
        assert!(e.message.contains("network address 10.250.1.0"), "{e}");
        // The last host and the first host are fine.
        p(&format!(
            "{NET}{}",
            group("kind = \"ppp\"\npool = \"10.250.1.2-10.250.1.254\"\n", true)
        ))
        .unwrap();
        // The default pool (no `pool` key) never holds either.
        let c = p(&format!(
            "{NET}[[group]]\nname = \"d\"\nkind = \"tcp\"\nlisten = \"127.0.0.1:0\"\n[group.module]\nkind = \"users\"\n"
        ))
        .unwrap();
        let Handoff::Ppp(ppp) = &c.groups[0].handoff else {
            panic!()
        };
        assert_eq!(
            ppp.pool,
            (
                "10.250.1.2".parse().unwrap(),
                "10.250.1.254".parse().unwrap()
            )
        );
    }
}

#[cfg(test)]
mod module_tests {
    use super::*;

    fn module(body: &str) -> Result<Config, ConfigError> {
        let text = format!(
            "[network]\ntun = \"dg0\"\naddress = \"10.250.1.1/24\"\n[[group]]\nname = \"g\"\nkind = \"tcp\"\nlisten = \"127.0.0.1:0\"\n[group.module]\n{body}"
        );
        parse(
            &text,
            "t.toml",
            Path::new("/data"),
            Some(PathBuf::from("/etc/dialgate/dialgate.toml")),
        )
    }

    fn ok(body: &str) -> ModuleConfig {
        module(body).unwrap().groups[0].module.clone().unwrap()
    }

    /// Issue 12 hole 5: without the key, RADIUS replies must be signed;
    /// `"auto"` and `false` are explicit choices; anything else is an error
    /// at its place.
    #[test]
    fn hole_5_message_authenticator_is_required_by_default() {
        use radius::RequireMessageAuthenticator as R;
        let radius = |extra: &str| {
            module(&format!(
                "kind = \"radius\"\nservers = [{{ address = \"127.0.0.1:1812\", secret = \"s\" }}]\n{extra}"
            ))
        };
        let policy = |extra: &str| match radius(extra).unwrap().groups[0].module.clone() {
            Some(ModuleConfig::Radius {
                require_message_authenticator,
                ..
            }) => require_message_authenticator,
            other => panic!("{other:?}"),
        };
        assert_eq!(policy(""), R::Always);
        assert_eq!(policy("require_message_authenticator = true\n"), R::Always);
        assert_eq!(
            policy("require_message_authenticator = \"auto\"\n"),
            R::Auto
        );
        assert_eq!(policy("require_message_authenticator = false\n"), R::Never);
        let e = radius("require_message_authenticator = \"sometimes\"\n").unwrap_err();
        assert!(e.to_string().contains("true, false or \"auto\""), "{e}");
        assert!(e.at.is_some(), "{e}");
    }

    #[test]
    fn every_module_kind_parses() {
        assert!(matches!(
            ok("kind = \"users\"\ntries = 2\n"),
            ModuleConfig::Users { tries: 2, .. }
        ));
        assert!(matches!(
            ok("kind = \"totp\"\nwindow = 2\n"),
            ModuleConfig::Totp { window: 2, ref store, .. } if store == Path::new("/data/totp.toml")
        ));
        let r = ok(
            "kind = \"radius\"\nservers = [{ address = \"127.0.0.1:1812\", secret = \"s3\" }]\nrequire_message_authenticator = true\n",
        );
        assert!(
            matches!(r, ModuleConfig::Radius { ref servers, tries: 1, require_message_authenticator: radius::RequireMessageAuthenticator::Always, .. } if servers[0].1.expose() == b"s3")
        );
        assert!(
            matches!(ok("kind = \"pam\"\nservice = \"dialin\"\n"), ModuleConfig::Pam { ref service, ask_username: true, .. } if service == "dialin")
        );
        assert!(matches!(
            ok("kind = \"exec\"\nprogram = \"check.sh\"\nenv = { A = \"1\" }\n"),
            ModuleConfig::Exec { ref program, ref env, .. } if program == Path::new("/etc/dialgate/check.sh") && env.len() == 1
        ));
        let c = ok(
            "kind = \"chain\"\nsteps = [{ kind = \"users\" }, { kind = \"totp\", user_from_previous = true }]\n",
        );
        let ModuleConfig::Chain { steps } = c else {
            panic!()
        };
        assert!(matches!(
            steps[1],
            ModuleConfig::Totp {
                user_from_previous: true,
                ..
            }
        ));
    }

    #[test]
    fn keys_of_other_modules_are_refused_where_they_stand() {
        let e = module("kind = \"users\"\nservice = \"x\"\n").unwrap_err();
        assert!(
            e.message
                .contains("`service` does not apply to the `users` module"),
            "{e}"
        );
        assert_eq!(e.at, Some((10, 11)));
        let e = module("kind = \"radius\"\n").unwrap_err();
        assert!(e.message.contains("servers"), "{e}");
        let e =
            module("kind = \"radius\"\nservers = [{ address = \"nowhere\", secret = \"s\" }]\n")
                .unwrap_err();
        assert!(e.message.contains("not an address"), "{e}");
        let e = module("kind = \"chain\"\nsteps = [{ kind = \"users\" }]\n").unwrap_err();
        assert!(e.message.contains("at least two"), "{e}");
        let e = module(
            "kind = \"chain\"\nsteps = [{ kind = \"users\" }, { kind = \"chain\", steps = [] }]\n",
        )
        .unwrap_err();
        assert!(
            e.message.contains("two steps") || e.message.contains("cannot contain"),
            "{e}"
        );
        let e = module("kind = \"totp\"\nwindow = 99\n").unwrap_err();
        assert!(e.message.contains("window"), "{e}");
        let e = module("kind = \"ldap\"\n").unwrap_err();
        assert!(e.message.contains("unknown module"), "{e}");
    }

    #[test]
    fn hole_13_debug_of_a_config_never_prints_a_secret() {
        // A RADIUS module (in a chain too) and PPP RADIUS with accounting.
        let text = "[network]\ntun = \"dg0\"\naddress = \"10.250.1.1/24\"\n\
            [[group]]\nname = \"g\"\nkind = \"tcp\"\nlisten = \"127.0.0.1:0\"\n\
            [group.module]\nkind = \"chain\"\nsteps = [{ kind = \"radius\", servers = [{ address = \"127.0.0.1:1812\", secret = \"Sekr1t-module\" }] }, { kind = \"users\" }]\n\
            [group.handoff]\nkind = \"ppp\"\npool = \"10.250.1.10-10.250.1.20\"\n\
            [group.handoff.radius]\nservers = [{ address = \"127.0.0.1:1812\", secret = \"Sekr1t-ppp\" }]\n\
            accounting = [{ address = \"127.0.0.1:1813\", secret = \"Sekr1t-acct\" }]\n";
        let c = parse(text, "t.toml", Path::new("/data"), None).unwrap();
        for shown in [
            format!("{c:?}"),
            format!("{c:#?}"),
            format!("{:?}", c.groups[0]),
            format!("{:?}", c.groups[0].module),
            format!("{:?}", c.groups[0].handoff),
        ] {
            for secret in ["Sekr1t-module", "Sekr1t-ppp", "Sekr1t-acct"] {
                assert!(!shown.contains(secret), "{secret} in {shown}");
                // Nor as the bytes' Debug (`[83, 101, ...]`).
                let bytes = format!("{:?}", secret.as_bytes());
                let bytes = bytes.trim_start_matches('[').trim_end_matches(']');
                assert!(!shown.contains(bytes), "{secret} as bytes in {shown}");
            }
        }
        let shown = format!("{c:?}");
        assert!(
            shown.contains("127.0.0.1:1812"),
            "addresses still shown: {shown}"
        );
        assert!(shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn hole_13_debug_of_an_exec_module_never_prints_its_environment_values() {
        let text = "[[group]]\nname = \"g\"\nkind = \"tcp\"\nlisten = \"127.0.0.1:0\"\n\
            [group.module]\nkind = \"exec\"\nprogram = \"/bin/true\"\nenv = { API_TOKEN = \"Sekr1t-env\" }\n\
            [group.handoff]\nkind = \"exec\"\nprogram = \"/bin/true\"\n";
        let c = parse(text, "t.toml", Path::new("/data"), None).unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("Sekr1t-env"), "{shown}");
        assert!(shown.contains("API_TOKEN"), "names still shown: {shown}");
    }
}
