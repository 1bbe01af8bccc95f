//! A PPP session on a caller's line: the driver of a sans-IO `ppp::Link` in
//! the server role. It authenticates the caller again (PAP, CHAP-MD5 or
//! MS-CHAPv2 against the users backend, for the same user as the dialog),
//! gives it an address from the group's pool, and carries its IPv4 packets
//! to and from the shared tun.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ppp::auth::{AuthProtocol, Verdict, VerifyId};
use ppp::link::{DownCause, Event, Link, LinkConfig, LinkError};
use time::OffsetDateTime;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

use crate::call::CallerId;
use crate::config::PppConfig;
use crate::network::{Network, ipv4_src};
use crate::pool::Pool;

/// What a group's PPP hand-off shares between its sessions.
pub struct PppRuntime {
    /// The hand-off's settings.
    pub cfg: PppConfig,
    /// The group's addresses.
    pub pool: Arc<Pool>,
    /// The tun and the routing table.
    pub net: Arc<Network>,
    /// PPP credentials against the users file (PAP) and the PPP secrets
    /// file (CHAP-MD5, MS-CHAPv2), both cached per change, under the
    /// process's argon2 limiter.
    pub local: Arc<modules::LocalPpp>,
    /// PPP authentication and accounting through RADIUS (else the users
    /// backend checks PPP credentials and nothing is accounted).
    pub radius: Option<Arc<modules::RadiusPpp>>,
}

/// Who the session is for and where it runs.
pub struct SessionStart<'a> {
    /// The group's name.
    pub group: &'a str,
    /// The module that held the dialog (`none` on a dedicated port).
    pub module: &'a str,
    /// The caller.
    pub who: &'a CallerId,
    /// The dialog's UserName, when there was a dialog.
    pub dialog_user: Option<&'a str>,
    /// Caller bytes the dialog did not read (the first PPP frames).
    pub backlog: Vec<u8>,
    /// The first leg of a callback: once PPP has authenticated the caller,
    /// close the link ("Calling you back") and end with
    /// [`eventlog::Outcome::Callback`]; the line then hangs up and dials.
    pub callback: bool,
}

fn method_name(p: AuthProtocol) -> &'static str {
    match p {
        AuthProtocol::Pap => "pap",
        AuthProtocol::ChapMd5 => "chap-md5",
        AuthProtocol::MsChapV2 => "ms-chapv2",
    }
}

/// Runs the session until the link goes down; returns its record.
pub async fn run<S>(
    rt: &PppRuntime,
    start: SessionStart<'_>,
    stream: &mut S,
    mut shutdown: watch::Receiver<bool>,
) -> eventlog::Record
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let started = OffsetDateTime::now_utc();
    let mut rec = eventlog::Record::new(
        eventlog::Kind::PppSession,
        started,
        started,
        start.group,
        start.who.device.clone(),
        start.module,
        eventlog::Outcome::SessionEnded,
    );
    rec.remote = start.who.remote.clone();
    rec.user = start.dialog_user.map(str::to_string);
    let mut info = eventlog::PppInfo::default();

    let lease = match rt.pool.lease() {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(group = start.group, "PPP refused: {e}");
            rec.outcome = eventlog::Outcome::Refused;
            rec.detail = Some(e.to_string());
            rec.ended_at = OffsetDateTime::now_utc();
            return rec;
        }
    };
    let peer = lease.addr();
    tracing::debug!(
        group = start.group,
        "leased {peer} ({} of {} in use)",
        rt.pool.in_use(),
        rt.pool.size()
    );
    info.address = Some(peer.to_string());
    let mut cfg = LinkConfig::server(rt.net.local, peer, rt.cfg.auth.clone());
    cfg.ipcp.dns = rt.net.dns;
    cfg.echo_interval = Some(rt.cfg.echo_interval);
    cfg.echo_max_missed = rt.cfg.echo_max_missed;
    cfg.auth_timeout = Some(rt.cfg.auth_timeout);
    let now = Instant::now();
    let mut link = match Link::new(cfg, now, Box::new(|b: &mut [u8]| rand::fill(b))) {
        Ok(l) => l,
        Err(e) => {
            rec.outcome = eventlog::Outcome::Error;
            rec.detail = Some(format!("PPP link could not start: {e}"));
            rec.ended_at = OffsetDateTime::now_utc();
            return rec;
        }
    };
    if !start.backlog.is_empty() {
        link.handle_input(now, &start.backlog);
    }

    // Every verdict names the request it answers; the link refuses one
    // that is not for its pending request.
    let (verdict_tx, mut verdict_rx) = mpsc::channel::<(VerifyId, Verdict)>(4);
    // The check running for the pending request (aborted when the link
    // voids the request).
    let mut check: Option<(VerifyId, tokio::task::AbortHandle)> = None;
    let mut stale_verdicts: u64 = 0;
    let mut route: Option<(crate::network::Route, mpsc::Receiver<Vec<u8>>)> = None;
    let mut buf = vec![0u8; 4096];
    let mut out: Vec<u8> = Vec::new();
    let mut off = 0usize;
    let mut eof = false;
    let mut name_mismatch = false;
    let mut auth_failed = false;
    let mut called_back = false;
    let mut shut = *shutdown.borrow();
    let session_deadline = rt
        .cfg
        .session_limit
        .map(|d| tokio::time::Instant::now() + d);
    let mut last_ip = tokio::time::Instant::now();
    let mut cause: Option<DownCause> = None;
    let mut spoofed: u64 = 0;
    let mut acct: Option<(modules::AcctSession, Instant)> = None;
    let mut acct_start: Option<tokio::task::JoinHandle<bool>> = None;
    let mut next_interim: Option<tokio::time::Instant> = None;
    let mut close_cause: Option<modules::TerminateCause> = None;
    let mut flush_deadline: Option<tokio::time::Instant> = None;
    let (mut rd, mut wr) = tokio::io::split(&mut *stream);
    if shut {
        link.close(now, "Server shutting down");
    }

    loop {
        // Events first: they may queue frames.
        while let Some(ev) = link.poll_event() {
            match ev {
                Event::Verify(req) => {
                    let id = req.id;
                    let creds = req.credentials;
                    info.user = Some(String::from_utf8_lossy(creds.user()).into_owned());
                    info.method = Some(method_name(creds.protocol()).to_string());
                    let mismatch = rt.cfg.same_user
                        && start
                            .dialog_user
                            .is_some_and(|u| u.as_bytes() != creds.user());
                    let tx = verdict_tx.clone();
                    if let Some((_, old)) = check.take() {
                        // The link asks again only after voiding the old one.
                        old.abort();
                    }
                    if mismatch {
                        // Given at once, so it cannot be lost or delayed.
                        name_mismatch = true;
                        let v =
                            Verdict::reject("User name differs from the one given in the dialog");
                        if let Err(e) = link.verified(Instant::now(), id, v) {
                            tracing::warn!("PPP name-mismatch verdict not taken: {e}");
                        }
                    } else if let Some(rp) = rt.radius.clone() {
                        let calling = modules::radius_ppp::device_port(&start.who.device).1;
                        let h = tokio::spawn(async move {
                            let v = rp.verify(&creds, calling.as_deref()).await;
                            let _ = tx.send((id, v)).await;
                        });
                        check = Some((id, h.abort_handle()));
                    } else {
                        let local = rt.local.clone();
                        let h = tokio::spawn(async move {
                            let v = local.verify(creds).await;
                            let _ = tx.send((id, v)).await;
                        });
                        // Aborting it while it waits for the argon2 limiter
                        // frees its place; a check already running on the
                        // blocking pool finishes (holding its permit) and
                        // its answer is dropped.
                        check = Some((id, h.abort_handle()));
                    }
                }
                Event::VerifyAborted(id) => {
                    if let Some((c, h)) = check.take_if(|(c, _)| *c == id) {
                        h.abort();
                        tracing::info!(
                            group = start.group,
                            "PPP credential check {} aborted: authentication restarted",
                            c.0
                        );
                    }
                }
                Event::Authenticated { user, protocol } => {
                    info.user = Some(String::from_utf8_lossy(&user).into_owned());
                    info.method = Some(method_name(protocol).to_string());
                    tracing::info!(group = start.group, user = %String::from_utf8_lossy(&user), method = method_name(protocol), "PPP authenticated");
                    if start.callback {
                        called_back = true;
                        link.close(Instant::now(), "Calling you back");
                    }
                }
                Event::AuthFailed(r) => {
                    auth_failed = true;
                    tracing::info!(group = start.group, "PPP authentication failed: {r:?}");
                }
                Event::Up { local, peer: p, .. } => {
                    if p != peer {
                        tracing::warn!("PPP peer took {p}, not the assigned {peer}");
                    }
                    match rt.net.register(peer) {
                        Some(r) => {
                            route = Some(r);
                            last_ip = tokio::time::Instant::now();
                            tracing::info!(group = start.group, "PPP up: {local} <-> {peer}");
                            if let Some(rp) = rt
                                .radius
                                .as_ref()
                                .filter(|rp| rp.accounting() && acct.is_none())
                            {
                                let user = info.user.clone().unwrap_or_default();
                                let s = modules::AcctSession::new(
                                    user.as_bytes(),
                                    Some(peer),
                                    &start.who.device,
                                );
                                let (rp2, s2) = (rp.clone(), s.clone());
                                acct_start =
                                    Some(tokio::spawn(async move { rp2.start(&s2).await }));
                                acct = Some((s, Instant::now()));
                                next_interim = rt
                                    .cfg
                                    .radius
                                    .as_ref()
                                    .and_then(|r| r.interim_interval)
                                    .map(|d| tokio::time::Instant::now() + d);
                            }
                        }
                        None => {
                            // Never two live sessions on one address.
                            link.close(Instant::now(), "Address in use");
                        }
                    }
                }
                Event::IpDown => route = None,
                Event::IpPacket(p) => {
                    if ipv4_src(&p) != Some(peer) {
                        // Anti-spoofing: only the assigned source reaches the tun.
                        spoofed += 1;
                        continue;
                    }
                    info.packets_in += 1;
                    info.bytes_in += p.len() as u64;
                    last_ip = tokio::time::Instant::now();
                    if let Err(e) = rt.net.send(&p).await {
                        tracing::debug!("tun write failed: {e}");
                    }
                }
                Event::Down { cause: c } => cause = Some(c),
                Event::Phase(_) => {}
            }
        }
        if out.is_empty() {
            while let Some(frame) = link.poll_transmit() {
                out.extend_from_slice(&frame);
                if out.len() >= link.tx_queue_max() {
                    break;
                }
            }
            off = 0;
        }
        // Back-pressure: while the link's transmit queue is full (the
        // caller does not read), read neither the line nor the route.
        let room = link.pending_tx_bytes() < link.tx_queue_max();
        if cause.is_some() {
            if out.is_empty() || eof {
                break;
            }
            // The last frames (Terminate-Ack) get a moment to go out.
            flush_deadline.get_or_insert(tokio::time::Instant::now() + Duration::from_secs(2));
        }
        let timer = link.poll_timeout().map(tokio::time::Instant::from_std);
        let idle = rt
            .cfg
            .idle_timeout
            .filter(|_| route.is_some())
            .map(|d| last_ip + d);
        tokio::select! {
            r = rd.read(&mut buf), if !eof && room => match r {
                Ok(0) | Err(_) => {
                    eof = true;
                    out.clear();
                    link.handle_hangup(Instant::now());
                }
                Ok(n) => link.handle_input(Instant::now(), &buf[..n]),
            },
            r = wr.write(&out[off..]), if off < out.len() && !eof => match r {
                Ok(0) | Err(_) => {
                    eof = true;
                    out.clear();
                    link.handle_hangup(Instant::now());
                }
                Ok(n) => {
                    off += n;
                    if off >= out.len() {
                        out.clear();
                        off = 0;
                    }
                }
            },
            Some((id, v)) = verdict_rx.recv() => {
                if check.as_ref().is_some_and(|(c, _)| *c == id) {
                    check = None;
                }
                match link.verified(Instant::now(), id, v) {
                    Ok(()) => {}
                    Err(e @ LinkError::StaleVerdict(_)) => {
                        // A check for a request the link voided: dropped.
                        stale_verdicts += 1;
                        tracing::warn!(group = start.group, "PPP verdict refused: {e}");
                    }
                    Err(e) => tracing::warn!("PPP verdict not taken: {e}"),
                }
            }
            Some(p) = recv_opt(&mut route), if room => {
                last_ip = tokio::time::Instant::now();
                match link.send_ip(&p) {
                    Ok(()) => {
                        info.packets_out += 1;
                        info.bytes_out += p.len() as u64;
                    }
                    Err(e) => tracing::debug!("packet for {peer} not sent: {e}"),
                }
            }
            _ = sleep_opt(timer) => link.handle_timeout(Instant::now()),
            _ = sleep_opt(idle) => {
                close_cause.get_or_insert(modules::TerminateCause::IdleTimeout);
                link.close(Instant::now(), "Idle timeout");
            }
            _ = sleep_opt(session_deadline) => {
                close_cause.get_or_insert(modules::TerminateCause::SessionTimeout);
                link.close(Instant::now(), "Session time limit");
            }
            _ = sleep_opt(next_interim) => {
                if let (Some(rp), Some((s, t0))) = (rt.radius.clone(), acct.clone()) {
                    let c = counters(&info, t0);
                    tokio::spawn(async move { rp.interim(&s, &c).await });
                }
                next_interim = rt.cfg.radius.as_ref().and_then(|r| r.interim_interval).map(|d| tokio::time::Instant::now() + d);
            }
            _ = sleep_opt(flush_deadline) => break,
            r = shutdown.changed(), if !shut => {
                shut = true;
                if r.is_err() || *shutdown.borrow() {
                    close_cause.get_or_insert(modules::TerminateCause::AdminReboot);
                    link.close(Instant::now(), "Server shutting down");
                }
            }
        }
    }
    if let Some((_, h)) = check.take() {
        h.abort();
    }
    drop(route);
    drop(lease);
    let _ = wr.flush().await;
    let cause = cause.unwrap_or(DownCause::Hangup);
    info.cause = Some(cause.to_string());
    if let (Some(rp), Some((s, t0))) = (rt.radius.as_ref(), acct.take()) {
        // Start before Stop, each bounded by the client's timeouts.
        if let Some(h) = acct_start.take() {
            let _ = h.await;
        }
        let tc = close_cause.unwrap_or_else(|| modules::TerminateCause::from_down_cause(&cause));
        rp.stop(&s, &counters(&info, t0), tc).await;
    }
    rec.outcome = if name_mismatch {
        eventlog::Outcome::PppNameMismatch
    } else if auth_failed || matches!(cause, DownCause::AuthFailed(_) | DownCause::AuthTimeout) {
        eventlog::Outcome::PppAuthFailed
    } else if called_back && !shut {
        eventlog::Outcome::Callback
    } else if shut && matches!(cause, DownCause::LocalClose(_)) {
        eventlog::Outcome::Shutdown
    } else {
        eventlog::Outcome::SessionEnded
    };
    let mut notes = Vec::new();
    if spoofed > 0 {
        notes.push(format!("{spoofed} packets with a spoofed source dropped"));
    }
    let st = link.stats();
    if st.tx_dropped > 0 {
        notes.push(format!(
            "{} frames dropped: transmit queue full (the caller did not read)",
            st.tx_dropped
        ));
    }
    if st.replies_limited > 0 {
        notes.push(format!(
            "{} echo replies or protocol rejects not sent (rate limit)",
            st.replies_limited
        ));
    }
    if stale_verdicts > 0 {
        notes.push(format!(
            "{stale_verdicts} stale credential verdicts refused"
        ));
    }
    if matches!(cause, DownCause::AuthTimeout) {
        notes.push(format!(
            "PPP authentication did not complete within {}s",
            rt.cfg.auth_timeout.as_secs()
        ));
    }
    if !notes.is_empty() {
        rec.detail = Some(notes.join("; "));
    }
    if name_mismatch {
        rec.detail = Some(format!(
            "PPP name {:?} differs from the dialog's user {:?} (Windows event 20096)",
            info.user.as_deref().unwrap_or(""),
            start.dialog_user.unwrap_or("")
        ));
    }
    rec.ppp = Some(info);
    rec.ended_at = OffsetDateTime::now_utc();
    rec
}

async fn recv_opt(
    r: &mut Option<(crate::network::Route, mpsc::Receiver<Vec<u8>>)>,
) -> Option<Vec<u8>> {
    match r {
        Some((_, rx)) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_opt(t: Option<tokio::time::Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

fn counters(info: &eventlog::PppInfo, since: Instant) -> modules::AcctCounters {
    modules::AcctCounters {
        octets_in: info.bytes_in,
        octets_out: info.bytes_out,
        packets_in: info.packets_in,
        packets_out: info.packets_out,
        session_time: since.elapsed(),
    }
}
