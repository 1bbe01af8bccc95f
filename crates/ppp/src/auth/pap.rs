//! PAP (RFC 1334 §2) machines, both roles.

use std::time::Instant;

use super::crypto::ct_eq;
use super::wire::{PapPacket, packet_extent};
use super::{
    AuthError, AuthProtocol, AuthStatus, AuthenticatorConfig, ChallengeSource, Credentials, Event,
    FailureReason, Outbox, PeerConfig, SecretBytes, Verdict, VerifyId,
};

/// Truncates a message to the 255 octets a PAP Msg-Length can carry.
fn pap_message(text: &str) -> &[u8] {
    let b = text.as_bytes();
    b.get(..255).unwrap_or(b)
}

#[derive(Debug)]
enum AuthState {
    Idle,
    /// Waiting for an Authenticate-Request until `deadline`.
    Waiting {
        deadline: Instant,
    },
    /// The host is judging `request` (the packet's data after the header,
    /// for duplicate detection: a retransmission may carry a new Identifier).
    Verifying {
        request: SecretBytes,
        id: u8,
        user: Vec<u8>,
        /// The identity of the [`VerifyRequest`] the host is judging.
        verify: VerifyId,
    },
    /// Acked `request` (data after the header).
    Open {
        request: SecretBytes,
    },
    /// Gave up.
    Failed,
}

/// PAP authenticator: waits for an Authenticate-Request, has the host judge
/// it, answers Ack or Nak.
#[derive(Debug)]
pub(crate) struct PapAuthenticator {
    config: AuthenticatorConfig,
    state: AuthState,
    attempts: u32,
    /// The last Nak'ed request (data after the header) and the Nak message,
    /// Nak'ed again if the same request comes again (our Nak was lost)
    /// without counting another attempt.
    last_nak: Option<(SecretBytes, String)>,
    pub(crate) out: Outbox,
}

impl PapAuthenticator {
    pub(crate) fn new(config: AuthenticatorConfig) -> Self {
        PapAuthenticator {
            config,
            state: AuthState::Idle,
            attempts: 0,
            last_nak: None,
            out: Outbox::default(),
        }
    }

    pub(crate) fn start(&mut self, now: Instant) {
        if matches!(self.state, AuthState::Idle) {
            self.state = AuthState::Waiting {
                deadline: now + self.config.pap_timeout,
            };
        }
    }

    pub(crate) fn handle_packet(&mut self, _now: Instant, payload: &[u8]) -> Result<(), AuthError> {
        let pkt = PapPacket::parse(payload)?;
        let PapPacket::Request {
            id,
            peer_id,
            password,
        } = pkt
        else {
            return Err(AuthError::Unexpected(
                "PAP Ack/Nak sent to the authenticator",
            ));
        };
        // The data inside Length identifies the request; the peer changes
        // the Identifier on each retransmission (RFC 1334 §2.2.1).
        let raw = packet_extent(payload).get(4..).unwrap_or(&[]);
        if let Some((req, message)) = &self.last_nak
            && ct_eq(&req.0, raw)
        {
            let nak = PapPacket::Nak {
                id,
                message: pap_message(message),
            }
            .encode()?;
            self.out.transmits.push_back(nak);
            return Ok(());
        }
        match &self.state {
            AuthState::Idle => Err(AuthError::Unexpected(
                "PAP Request before the Authenticate phase",
            )),
            AuthState::Waiting { .. } => {
                let verify = self.out.push_verify(Credentials::Pap {
                    user: peer_id.to_vec(),
                    password: password.to_vec(),
                });
                self.state = AuthState::Verifying {
                    request: SecretBytes(raw.to_vec()),
                    id,
                    user: peer_id.to_vec(),
                    verify,
                };
                Ok(())
            }
            AuthState::Verifying { request, .. } => {
                if ct_eq(&request.0, raw) {
                    // Retransmission while the host judges: not judged twice.
                    Ok(())
                } else {
                    Err(AuthError::Unexpected(
                        "another PAP Request while one is being verified",
                    ))
                }
            }
            AuthState::Open { request } => {
                if ct_eq(&request.0, raw) {
                    // Our Ack was lost: ack the identical request again.
                    let ack = PapPacket::Ack {
                        id,
                        message: pap_message(&self.config.success_message),
                    }
                    .encode()?;
                    self.out.transmits.push_back(ack);
                    Ok(())
                } else {
                    Err(AuthError::Unexpected(
                        "a different PAP Request after success",
                    ))
                }
            }
            AuthState::Failed => Err(AuthError::Unexpected(
                "PAP Request after authentication failed",
            )),
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
        let old = std::mem::replace(&mut self.state, AuthState::Failed);
        let AuthState::Verifying { request, user, .. } = old else {
            return Err(AuthError::Misuse("verified() with no verification pending"));
        };
        match verdict {
            Verdict::Accept { .. } => {
                let ack = PapPacket::Ack {
                    id,
                    message: pap_message(&self.config.success_message),
                }
                .encode()?;
                self.out.transmits.push_back(ack);
                self.state = AuthState::Open { request };
                self.out.events.push_back(Event::Succeeded {
                    user,
                    protocol: AuthProtocol::Pap,
                });
            }
            Verdict::Reject { message, .. } => {
                let nak = PapPacket::Nak {
                    id,
                    message: pap_message(&message),
                }
                .encode()?;
                self.out.transmits.push_back(nak);
                self.last_nak = Some((request, message.clone()));
                self.attempts += 1;
                if self.attempts < self.config.max_attempts {
                    self.state = AuthState::Waiting {
                        deadline: now + self.config.pap_timeout,
                    };
                } else {
                    self.state = AuthState::Failed;
                    self.out.events.push_back(Event::Failed {
                        user: Some(user),
                        protocol: AuthProtocol::Pap,
                        reason: FailureReason::Rejected {
                            message,
                            code: None,
                        },
                    });
                }
            }
        }
        Ok(())
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if let AuthState::Waiting { deadline } = self.state
            && now >= deadline
        {
            self.state = AuthState::Failed;
            self.out.events.push_back(Event::Failed {
                user: None,
                protocol: AuthProtocol::Pap,
                reason: FailureReason::Timeout,
            });
        }
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            AuthState::Waiting { deadline } => Some(deadline),
            _ => None,
        }
    }

    pub(crate) fn status(&self) -> AuthStatus {
        match self.state {
            AuthState::Idle => AuthStatus::Idle,
            AuthState::Waiting { .. } | AuthState::Verifying { .. } => AuthStatus::InProgress,
            AuthState::Open { .. } => AuthStatus::Succeeded,
            AuthState::Failed => AuthStatus::Failed,
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

#[derive(Debug)]
enum PeerState {
    Idle,
    /// Request sent `transmits` times; the latest with `id`.
    Requesting {
        id: u8,
        transmits: u32,
        deadline: Instant,
        sent_ids: Vec<u8>,
    },
    Succeeded,
    Failed,
}

/// PAP peer: sends Authenticate-Request until Ack/Nak or the limit.
#[derive(Debug)]
pub(crate) struct PapPeer {
    config: PeerConfig,
    password: SecretBytes,
    source: ChallengeSource,
    state: PeerState,
    pub(crate) out: Outbox,
}

impl PapPeer {
    pub(crate) fn new(mut config: PeerConfig) -> Result<Self, AuthError> {
        if config.user.len() > 255 {
            return Err(AuthError::Misuse("PAP user name longer than 255 octets"));
        }
        if config.password.len() > 255 {
            return Err(AuthError::Misuse("PAP password longer than 255 octets"));
        }
        let password = SecretBytes(std::mem::take(&mut config.password).into_bytes());
        let source = ChallengeSource::new(&config.challenge_seed);
        Ok(PapPeer {
            config,
            password,
            source,
            state: PeerState::Idle,
            out: Outbox::default(),
        })
    }

    fn send_request(&mut self, id: u8) {
        let pkt = PapPacket::Request {
            id,
            peer_id: &self.config.user,
            password: &self.password.0,
        };
        // Lengths were checked in `new`, so this cannot fail; stay silent if it did.
        if let Ok(bytes) = pkt.encode() {
            self.out.transmits.push_back(bytes);
        }
    }

    pub(crate) fn start(&mut self, now: Instant) {
        if matches!(self.state, PeerState::Idle) {
            let id = self
                .config
                .first_identifier
                .unwrap_or_else(|| self.source.next_u8());
            self.send_request(id);
            self.state = PeerState::Requesting {
                id,
                transmits: 1,
                deadline: now + self.config.restart_interval,
                sent_ids: vec![id],
            };
        }
    }

    pub(crate) fn handle_packet(&mut self, _now: Instant, payload: &[u8]) -> Result<(), AuthError> {
        let pkt = PapPacket::parse(payload)?;
        let (id, message, ack) = match pkt {
            PapPacket::Ack { id, message } => (id, message, true),
            PapPacket::Nak { id, message } => (id, message, false),
            PapPacket::Request { .. } => {
                return Err(AuthError::Unexpected("PAP Request sent to the peer"));
            }
        };
        let PeerState::Requesting { sent_ids, .. } = &self.state else {
            return Err(AuthError::Unexpected(
                "PAP Ack/Nak with no Request outstanding",
            ));
        };
        // RFC 1334: a new Identifier per Request; a reply to any of ours counts.
        if !sent_ids.contains(&id) {
            return Err(AuthError::Unexpected(
                "PAP Ack/Nak with an Identifier we did not send",
            ));
        }
        let user = self.config.user.clone();
        if ack {
            self.state = PeerState::Succeeded;
            self.out.events.push_back(Event::Succeeded {
                user,
                protocol: AuthProtocol::Pap,
            });
        } else {
            self.state = PeerState::Failed;
            self.out.events.push_back(Event::Failed {
                user: Some(user),
                protocol: AuthProtocol::Pap,
                reason: FailureReason::Rejected {
                    message: String::from_utf8_lossy(message).into_owned(),
                    code: None,
                },
            });
        }
        Ok(())
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        let PeerState::Requesting {
            id,
            transmits,
            deadline,
            sent_ids,
        } = &mut self.state
        else {
            return;
        };
        if now < *deadline {
            return;
        }
        if *transmits >= self.config.max_transmits {
            self.state = PeerState::Failed;
            self.out.events.push_back(Event::Failed {
                user: Some(self.config.user.clone()),
                protocol: AuthProtocol::Pap,
                reason: FailureReason::Timeout,
            });
            return;
        }
        let new_id = id.wrapping_add(1);
        *id = new_id;
        *transmits += 1;
        *deadline = now + self.config.restart_interval;
        if !sent_ids.contains(&new_id) {
            sent_ids.push(new_id);
        }
        self.send_request(new_id);
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            PeerState::Requesting { deadline, .. } => Some(deadline),
            _ => None,
        }
    }

    pub(crate) fn status(&self) -> AuthStatus {
        match self.state {
            PeerState::Idle => AuthStatus::Idle,
            PeerState::Requesting { .. } => AuthStatus::InProgress,
            PeerState::Succeeded => AuthStatus::Succeeded,
            PeerState::Failed => AuthStatus::Failed,
        }
    }
}
