//! CHAP (RFC 1994) machines for MD5 and MS-CHAPv2 (RFC 2759), both roles.

use std::time::Instant;

use super::crypto::{self, chap_md5_response, mschap_hash_user};
use super::wire::{ChapPacket, MsChapV2Failure, MsChapV2Response, MsChapV2Success, packet_extent};
use super::{
    AuthError, AuthProtocol, AuthStatus, AuthenticatorConfig, ChallengeSource, Credentials, Event,
    FailureReason, Outbox, PeerConfig, SecretBytes, Verdict, VerifyId,
};

/// Longest message text we put in a Success/Failure (keeps packets small).
const MAX_MESSAGE: usize = 1000;

/// `text` cut to at most `MAX_MESSAGE` octets, at a character boundary.
fn bounded(text: &str) -> &str {
    if text.len() <= MAX_MESSAGE {
        return text;
    }
    let mut end = MAX_MESSAGE;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or("")
}

#[derive(Debug)]
enum AuthState {
    Idle,
    /// Challenge `challenge` sent `transmits` times as `packet`.
    Challenging {
        id: u8,
        challenge: Vec<u8>,
        packet: Vec<u8>,
        transmits: u32,
        deadline: Instant,
    },
    /// The host judges `response` (the raw Response packet).
    Verifying {
        id: u8,
        response: SecretBytes,
        user: Vec<u8>,
        /// The identity of the [`VerifyRequest`] the host is judging.
        verify: VerifyId,
    },
    /// Succeeded with `response`, answered by `success`.
    Open {
        id: u8,
        response: SecretBytes,
        success: Vec<u8>,
        rechallenge_at: Option<Instant>,
    },
    /// Gave up.
    Failed,
}

/// CHAP authenticator (MD5 or MS-CHAPv2).
#[derive(Debug)]
pub(crate) struct ChapAuthenticator {
    protocol: AuthProtocol,
    config: AuthenticatorConfig,
    source: ChallengeSource,
    state: AuthState,
    /// Rejections so far (initial authentication only).
    attempts: u32,
    /// Set on the first success; re-challenges must come from the same name.
    authenticated_user: Option<Vec<u8>>,
    /// The last rejected Response and its Failure, re-sent if the identical
    /// Response comes again (RFC 1994 §4.2: our Failure was lost).
    last_failure: Option<(SecretBytes, Vec<u8>)>,
    pub(crate) out: Outbox,
}

impl ChapAuthenticator {
    pub(crate) fn new(protocol: AuthProtocol, config: AuthenticatorConfig) -> Self {
        let source = ChallengeSource::new(&config.challenge_seed);
        ChapAuthenticator {
            protocol,
            config,
            source,
            state: AuthState::Idle,
            attempts: 0,
            authenticated_user: None,
            last_failure: None,
            out: Outbox::default(),
        }
    }

    pub(crate) fn protocol(&self) -> AuthProtocol {
        self.protocol
    }

    fn challenge_len(&self) -> usize {
        match self.protocol {
            AuthProtocol::MsChapV2 => crypto::MSCHAPV2_CHALLENGE_LEN,
            _ => self.config.md5_challenge_len,
        }
    }

    pub(crate) fn queue_challenge(&mut self, challenge: &[u8]) -> Result<(), AuthError> {
        if challenge.len() != self.challenge_len() {
            return Err(AuthError::Misuse("queued challenge has the wrong length"));
        }
        self.source.queue(challenge.to_vec());
        Ok(())
    }

    /// Sends a new Challenge with `id` and `challenge`.
    fn send_challenge(&mut self, now: Instant, id: u8, challenge: Vec<u8>) {
        let packet = ChapPacket::Challenge {
            id,
            value: &challenge,
            name: &self.config.name,
        }
        .encode();
        // Value length 1..=255 and name length were validated in the config.
        let Ok(packet) = packet else {
            self.fail(None, FailureReason::Timeout);
            return;
        };
        self.out.transmits.push_back(packet.clone());
        self.state = AuthState::Challenging {
            id,
            challenge,
            packet,
            transmits: 1,
            deadline: now + self.config.restart_interval,
        };
    }

    fn fail(&mut self, user: Option<Vec<u8>>, reason: FailureReason) {
        self.state = AuthState::Failed;
        self.out.events.push_back(Event::Failed {
            user,
            protocol: self.protocol,
            reason,
        });
    }

    pub(crate) fn start(&mut self, now: Instant) {
        if matches!(self.state, AuthState::Idle) {
            let id = self
                .config
                .first_identifier
                .unwrap_or_else(|| self.source.next_u8());
            let challenge = self.source.next(self.challenge_len());
            self.send_challenge(now, id, challenge);
        }
    }

    /// The Failure packet for `id`; for MS-CHAPv2 with `E=error` and the
    /// next challenge.
    fn failure_packet(
        &self,
        id: u8,
        error: u32,
        message: &str,
        retry: bool,
        next: Option<&[u8]>,
    ) -> Vec<u8> {
        let text = bounded(message).as_bytes();
        let body = match self.protocol {
            AuthProtocol::MsChapV2 => {
                let mut c = [0u8; 16];
                if let Some(n) = next.filter(|n| n.len() == 16) {
                    c.copy_from_slice(n);
                }
                MsChapV2Failure {
                    error,
                    retry,
                    challenge: Some(c),
                    version: Some(3),
                    message: text,
                }
                .encode()
            }
            _ => text.to_vec(),
        };
        // Bounded message: the packet is far below 65535 octets.
        ChapPacket::Failure { id, message: &body }
            .encode()
            .unwrap_or_default()
    }

    pub(crate) fn handle_packet(&mut self, _now: Instant, payload: &[u8]) -> Result<(), AuthError> {
        let pkt = ChapPacket::parse(payload)?;
        let ChapPacket::Response { id, value, name } = pkt else {
            return Err(AuthError::Unexpected(
                "CHAP Challenge/Success/Failure sent to the authenticator",
            ));
        };
        let raw = packet_extent(payload);
        if let Some((resp, failure)) = &self.last_failure
            && resp.0 == raw
        {
            let failure = failure.clone();
            self.out.transmits.push_back(failure);
            return Ok(());
        }
        match &self.state {
            AuthState::Idle => Err(AuthError::Unexpected("CHAP Response before any Challenge")),
            AuthState::Failed => Err(AuthError::Unexpected(
                "CHAP Response after authentication failed",
            )),
            AuthState::Verifying { response, .. } => {
                if response.0 == raw {
                    // Retransmitted Response while the host judges: not judged twice.
                    Ok(())
                } else {
                    Err(AuthError::Unexpected(
                        "another CHAP Response while one is being verified",
                    ))
                }
            }
            AuthState::Open {
                id: open_id,
                response,
                success,
                ..
            } => {
                if *open_id == id && response.0 == raw {
                    // RFC 1994 §4.1: our Success was lost; send it again.
                    let success = success.clone();
                    self.out.transmits.push_back(success);
                    Ok(())
                } else {
                    Err(AuthError::Unexpected(
                        "CHAP Response that answers no outstanding Challenge",
                    ))
                }
            }
            AuthState::Challenging {
                id: cid, challenge, ..
            } => {
                if *cid != id {
                    return Err(AuthError::Unexpected(
                        "CHAP Response Identifier does not match the Challenge",
                    ));
                }
                let credentials = match self.protocol {
                    AuthProtocol::MsChapV2 => {
                        let r = MsChapV2Response::parse(value)?;
                        let mut authenticator_challenge = [0u8; 16];
                        if challenge.len() != 16 {
                            return Err(AuthError::Misuse("MS-CHAPv2 challenge is not 16 octets"));
                        }
                        authenticator_challenge.copy_from_slice(challenge);
                        Credentials::MsChapV2 {
                            user: name.to_vec(),
                            id,
                            authenticator_challenge,
                            peer_challenge: r.peer_challenge,
                            nt_response: r.nt_response,
                            flags: r.flags,
                        }
                    }
                    _ => {
                        let response: [u8; 16] = value.try_into().map_err(|_| {
                            AuthError::Malformed("CHAP-MD5 Response value is not 16 octets")
                        })?;
                        Credentials::ChapMd5 {
                            user: name.to_vec(),
                            id,
                            challenge: challenge.clone(),
                            response,
                        }
                    }
                };
                if let Some(user) = &self.authenticated_user
                    && user.as_slice() != name
                {
                    // Re-challenge answered under another name: final.
                    let user = user.clone();
                    let next = self.source.next(16);
                    let failure = self.failure_packet(
                        id,
                        super::wire::MSCHAP_ERROR_AUTHENTICATION_FAILURE,
                        "Authentication failed",
                        false,
                        Some(&next),
                    );
                    self.out.transmits.push_back(failure.clone());
                    self.last_failure = Some((SecretBytes(raw.to_vec()), failure));
                    self.fail(Some(user), FailureReason::UserChanged);
                    return Ok(());
                }
                let verify = self.out.push_verify(credentials);
                self.state = AuthState::Verifying {
                    id,
                    response: SecretBytes(raw.to_vec()),
                    user: name.to_vec(),
                    verify,
                };
                Ok(())
            }
        }
    }

    pub(crate) fn verified(
        &mut self,
        now: Instant,
        for_request: VerifyId,
        verdict: Verdict,
    ) -> Result<(), AuthError> {
        let AuthState::Verifying { id, verify, .. } = &self.state else {
            return Err(AuthError::StaleVerdict);
        };
        if *verify != for_request {
            return Err(AuthError::StaleVerdict);
        }
        let id = *id;
        // Validate before changing anything.
        let success_body = match (&verdict, self.protocol) {
            (
                Verdict::Accept {
                    authenticator_response: Some(ar),
                },
                AuthProtocol::MsChapV2,
            ) => Some(
                MsChapV2Success {
                    authenticator_response: *ar,
                    message: bounded(&self.config.success_message).as_bytes(),
                }
                .encode(),
            ),
            (Verdict::Accept { .. }, AuthProtocol::MsChapV2) => {
                return Err(AuthError::Misuse(
                    "MS-CHAPv2 Accept without the authenticator response",
                ));
            }
            (Verdict::Accept { .. }, _) => {
                Some(bounded(&self.config.success_message).as_bytes().to_vec())
            }
            (Verdict::Reject { .. }, _) => None,
        };
        let old = std::mem::replace(&mut self.state, AuthState::Failed);
        let AuthState::Verifying { response, user, .. } = old else {
            return Err(AuthError::Misuse("verified() with no verification pending"));
        };
        match verdict {
            Verdict::Accept { .. } => {
                let body = success_body.unwrap_or_default();
                let success = ChapPacket::Success { id, message: &body }
                    .encode()
                    .unwrap_or_default();
                self.out.transmits.push_back(success.clone());
                self.state = AuthState::Open {
                    id,
                    response,
                    success,
                    rechallenge_at: self.config.rechallenge_interval.map(|d| now + d),
                };
                if self.authenticated_user.is_none() {
                    self.authenticated_user = Some(user.clone());
                    self.out.events.push_back(Event::Succeeded {
                        user,
                        protocol: self.protocol,
                    });
                }
            }
            Verdict::Reject { message, code } => {
                let error = match self.protocol {
                    AuthProtocol::MsChapV2 => super::wire::mschap_failure_code(code),
                    _ => super::wire::MSCHAP_ERROR_AUTHENTICATION_FAILURE,
                };
                let message = if message.is_empty() {
                    "Authentication failed".to_owned()
                } else {
                    message
                };
                let rechallenge = self.authenticated_user.is_some();
                if !rechallenge {
                    self.attempts += 1;
                }
                // Only a wrong password may be tried again (RFC 2759 §6).
                let retry = !rechallenge
                    && self.attempts < self.config.max_attempts
                    && error == super::wire::MSCHAP_ERROR_AUTHENTICATION_FAILURE;
                let next = self.source.next(self.challenge_len());
                let failure = self.failure_packet(id, error, &message, retry, Some(&next));
                self.out.transmits.push_back(failure.clone());
                self.last_failure = Some((response, failure));
                if retry {
                    self.send_challenge(now, id.wrapping_add(1), next);
                } else {
                    let code = (self.protocol == AuthProtocol::MsChapV2).then_some(error);
                    self.fail(Some(user), FailureReason::Rejected { message, code });
                }
            }
        }
        Ok(())
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        match &mut self.state {
            AuthState::Challenging {
                packet,
                transmits,
                deadline,
                ..
            } => {
                if now < *deadline {
                    return;
                }
                if *transmits >= self.config.max_transmits {
                    let user = self.authenticated_user.clone();
                    self.fail(user, FailureReason::Timeout);
                    return;
                }
                *transmits += 1;
                *deadline = now + self.config.restart_interval;
                let p = packet.clone();
                self.out.transmits.push_back(p);
            }
            AuthState::Open {
                id,
                rechallenge_at: Some(at),
                ..
            } => {
                if now < *at {
                    return;
                }
                let id = id.wrapping_add(1);
                let challenge = self.source.next(self.challenge_len());
                self.send_challenge(now, id, challenge);
            }
            _ => {}
        }
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        match &self.state {
            AuthState::Challenging { deadline, .. } => Some(*deadline),
            AuthState::Open { rechallenge_at, .. } => *rechallenge_at,
            _ => None,
        }
    }

    pub(crate) fn status(&self) -> AuthStatus {
        match &self.state {
            AuthState::Idle => AuthStatus::Idle,
            AuthState::Failed => AuthStatus::Failed,
            _ if self.authenticated_user.is_some() => AuthStatus::Succeeded,
            _ => AuthStatus::InProgress,
        }
    }

    pub(crate) fn verification_pending(&self) -> bool {
        matches!(self.state, AuthState::Verifying { .. })
    }

    pub(crate) fn pending_verify_id(&self) -> Option<VerifyId> {
        match &self.state {
            AuthState::Verifying { verify, .. } => Some(*verify),
            _ => None,
        }
    }
}

/// The Response we sent to one Challenge.
#[derive(Debug)]
struct Round {
    id: u8,
    challenge: Vec<u8>,
    packet: SecretBytes,
    /// MS-CHAPv2: what the authenticator response is computed over.
    mschap: Option<([u8; 16], [u8; 16], [u8; 24])>,
    /// Success or Failure received for it.
    resolved: bool,
    /// Times the Response was sent.
    transmits: u32,
    /// When to send it again if still unresolved.
    retransmit_at: Option<Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PeerStatus {
    Idle,
    Waiting,
    Succeeded,
    Failed,
    /// Final: timeout or a server that failed mutual authentication.
    Aborted,
}

/// CHAP peer (MD5 or MS-CHAPv2).
#[derive(Debug)]
pub(crate) struct ChapPeer {
    protocol: AuthProtocol,
    user: Vec<u8>,
    password: SecretBytes,
    timeout: std::time::Duration,
    restart_interval: std::time::Duration,
    max_transmits: u32,
    source: ChallengeSource,
    status: PeerStatus,
    ever_succeeded: bool,
    deadline: Option<Instant>,
    round: Option<Round>,
    pub(crate) out: Outbox,
}

impl ChapPeer {
    pub(crate) fn new(protocol: AuthProtocol, mut config: PeerConfig) -> Self {
        let password = SecretBytes(std::mem::take(&mut config.password).into_bytes());
        ChapPeer {
            protocol,
            user: std::mem::take(&mut config.user),
            password,
            timeout: config.timeout,
            restart_interval: config.restart_interval,
            max_transmits: config.max_transmits,
            source: ChallengeSource::new(&config.challenge_seed),
            status: PeerStatus::Idle,
            ever_succeeded: false,
            deadline: None,
            round: None,
            out: Outbox::default(),
        }
    }

    pub(crate) fn protocol(&self) -> AuthProtocol {
        self.protocol
    }

    pub(crate) fn queue_peer_challenge(&mut self, peer_challenge: &[u8]) -> Result<(), AuthError> {
        if peer_challenge.len() != 16 {
            return Err(AuthError::Misuse(
                "MS-CHAPv2 peer challenge must be 16 octets",
            ));
        }
        self.source.queue(peer_challenge.to_vec());
        Ok(())
    }

    pub(crate) fn start(&mut self, now: Instant) {
        if self.status == PeerStatus::Idle {
            self.status = PeerStatus::Waiting;
            self.deadline = Some(now + self.timeout);
        }
    }

    fn abort(&mut self, reason: FailureReason) {
        self.status = PeerStatus::Aborted;
        self.deadline = None;
        self.out.events.push_back(Event::Failed {
            user: Some(self.user.clone()),
            protocol: self.protocol,
            reason,
        });
    }

    fn password_str(&self) -> &str {
        // Built from a `String` in `new`, so always UTF-8.
        std::str::from_utf8(&self.password.0).unwrap_or("")
    }

    pub(crate) fn handle_packet(&mut self, now: Instant, payload: &[u8]) -> Result<(), AuthError> {
        let pkt = ChapPacket::parse(payload)?;
        match self.status {
            PeerStatus::Idle => {
                return Err(AuthError::Unexpected(
                    "CHAP packet before the Authenticate phase",
                ));
            }
            PeerStatus::Aborted => {
                return Err(AuthError::Unexpected(
                    "CHAP packet after authentication was aborted",
                ));
            }
            _ => {}
        }
        match pkt {
            ChapPacket::Response { .. } => {
                Err(AuthError::Unexpected("CHAP Response sent to the peer"))
            }
            ChapPacket::Challenge { id, value, .. } => self.on_challenge(now, id, value),
            ChapPacket::Success { id, message } => self.on_result(id, message, true),
            ChapPacket::Failure { id, message } => self.on_result(id, message, false),
        }
    }

    fn on_challenge(&mut self, now: Instant, id: u8, value: &[u8]) -> Result<(), AuthError> {
        if let Some(r) = &self.round
            && r.id == id
            && r.challenge == value
        {
            // Retransmitted Challenge: our Response was lost; same answer.
            let p = r.packet.0.clone();
            self.out.transmits.push_back(p);
            return Ok(());
        }
        let (response_value, mschap) = match self.protocol {
            AuthProtocol::MsChapV2 => {
                let ac: [u8; 16] = value.try_into().map_err(|_| {
                    AuthError::Malformed("MS-CHAPv2 Challenge value is not 16 octets")
                })?;
                let pc_vec = self.source.next(16);
                let mut pc = [0u8; 16];
                pc.copy_from_slice(&pc_vec);
                let nt = crypto::generate_nt_response(
                    &ac,
                    &pc,
                    mschap_hash_user(&self.user),
                    self.password_str(),
                );
                let v = MsChapV2Response {
                    peer_challenge: pc,
                    nt_response: nt,
                    flags: 0,
                }
                .to_value();
                (v.to_vec(), Some((ac, pc, nt)))
            }
            _ => (
                chap_md5_response(id, &self.password.0, value).to_vec(),
                None,
            ),
        };
        let packet = ChapPacket::Response {
            id,
            value: &response_value,
            name: &self.user,
        }
        .encode()
        .map_err(|_| AuthError::Misuse("CHAP Response too long for our name"))?;
        self.out.transmits.push_back(packet.clone());
        self.round = Some(Round {
            id,
            challenge: value.to_vec(),
            packet: SecretBytes(packet),
            mschap,
            resolved: false,
            transmits: 1,
            retransmit_at: Some(now + self.restart_interval),
        });
        if self.status == PeerStatus::Failed {
            // The authenticator lets us try again.
            self.status = PeerStatus::Waiting;
            self.deadline = Some(now + self.timeout);
        }
        Ok(())
    }

    fn on_result(&mut self, id: u8, message: &[u8], success: bool) -> Result<(), AuthError> {
        let Some(round) = &mut self.round else {
            return Err(AuthError::Unexpected(
                "CHAP Success/Failure before any Response",
            ));
        };
        if round.id != id {
            return Err(AuthError::Unexpected(
                "CHAP Success/Failure Identifier does not match our Response",
            ));
        }
        if round.resolved {
            // Duplicate of a result we already acted on.
            return Ok(());
        }
        round.resolved = true;
        round.retransmit_at = None;
        let mschap = round.mschap;
        if success {
            if let Some((ac, pc, nt)) = mschap {
                let ok = match MsChapV2Success::parse(message) {
                    Ok(s) => crypto::check_authenticator_response(
                        self.password_str(),
                        &nt,
                        &pc,
                        &ac,
                        mschap_hash_user(&self.user),
                        &s.authenticator_response,
                    ),
                    Err(_) => false,
                };
                if !ok {
                    self.abort(FailureReason::BadAuthenticatorResponse);
                    return Ok(());
                }
            }
            self.status = PeerStatus::Succeeded;
            self.deadline = None;
            if !self.ever_succeeded {
                self.ever_succeeded = true;
                self.out.events.push_back(Event::Succeeded {
                    user: self.user.clone(),
                    protocol: self.protocol,
                });
            }
        } else {
            let (text, code) = if self.protocol == AuthProtocol::MsChapV2 {
                match MsChapV2Failure::parse(message) {
                    Ok(f) => (f.message, Some(f.error)),
                    Err(_) => (message, None),
                }
            } else {
                (message, None)
            };
            self.status = PeerStatus::Failed;
            self.deadline = None;
            self.out.events.push_back(Event::Failed {
                user: Some(self.user.clone()),
                protocol: self.protocol,
                reason: FailureReason::Rejected {
                    message: String::from_utf8_lossy(text).into_owned(),
                    code,
                },
            });
        }
        Ok(())
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if let Some(d) = self.deadline
            && now >= d
            && self.status == PeerStatus::Waiting
        {
            self.abort(FailureReason::Timeout);
            return;
        }
        if self.status == PeerStatus::Aborted {
            return;
        }
        // Our Success/Failure may have been lost: send the Response again
        // (the authenticator answers a repeated Response with the same
        // result, RFC 1994 §4.1/§4.2).
        let max = self.max_transmits;
        let restart = self.restart_interval;
        if let Some(r) = &mut self.round
            && !r.resolved
            && let Some(at) = r.retransmit_at
            && now >= at
        {
            if r.transmits >= max {
                r.retransmit_at = None;
            } else {
                r.transmits += 1;
                r.retransmit_at = Some(now + restart);
                let p = r.packet.0.clone();
                self.out.transmits.push_back(p);
            }
        }
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        let retx = self
            .round
            .as_ref()
            .filter(|r| !r.resolved && self.status != PeerStatus::Aborted)
            .and_then(|r| r.retransmit_at);
        match (self.deadline, retx) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub(crate) fn status(&self) -> AuthStatus {
        match self.status {
            PeerStatus::Idle => AuthStatus::Idle,
            PeerStatus::Waiting if self.ever_succeeded => AuthStatus::Succeeded,
            PeerStatus::Waiting => AuthStatus::InProgress,
            PeerStatus::Succeeded => AuthStatus::Succeeded,
            PeerStatus::Failed | PeerStatus::Aborted => AuthStatus::Failed,
        }
    }
}
