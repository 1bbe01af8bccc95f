//! LCP option negotiation (RFC 1661 §6, RFC 1662 §7.1, RFC 1994 §3,
//! RFC 2759 §2): MRU, ACCM, Authentication-Protocol, Magic-Number, PFC and
//! ACFC. The automaton is [`crate::fsm::Fsm`]; the Echo/Discard/
//! Protocol-Reject codes are handled by [`crate::link::Link`].

use crate::fsm::{JudgeBuilder, Judgement, Negotiator, Rand};
use crate::wire::{LcpOption, RawOption, lcp_opt};

pub use crate::auth::AuthProtocol;

fn auth_option_bytes(p: AuthProtocol) -> Vec<u8> {
    p.lcp_option_data().to_vec()
}

/// What we negotiate in LCP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LcpConfig {
    /// Our Maximum-Receive-Unit. Requested only when it differs from 1500.
    pub mru: u16,
    /// The ACCM we ask the peer to use when sending to us (`None`: do not
    /// ask, the default all-ones map stays).
    pub accm: Option<u32>,
    /// Ask for and accept Protocol-Field-Compression.
    pub pfc: bool,
    /// Ask for and accept Address-and-Control-Field-Compression.
    pub acfc: bool,
    /// Use a Magic-Number (loop-back detection).
    pub magic: bool,
    /// Authenticator: the methods the peer must use, in our order of
    /// preference (empty: no authentication).
    pub require_auth: Vec<AuthProtocol>,
    /// Peer role: the methods we agree to authenticate with, in our order
    /// of preference (empty: refuse to authenticate).
    pub accept_auth: Vec<AuthProtocol>,
    /// How many times the peer may echo our magic number back before we
    /// declare the link looped back.
    pub max_loopback: u32,
}

impl Default for LcpConfig {
    fn default() -> Self {
        LcpConfig {
            mru: 1500,
            accm: Some(0),
            pfc: true,
            acfc: true,
            magic: true,
            require_auth: Vec::new(),
            accept_auth: Vec::new(),
            max_loopback: 5,
        }
    }
}

/// The smallest MRU we accept from the peer (as pppd's MINMRU).
pub const MIN_MRU: u16 = 128;
/// The default MRU (RFC 1661 §6.1).
pub const DEFAULT_MRU: u16 = 1500;

/// Values agreed for one direction of the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// MRU of the receiver of this direction.
    pub mru: u16,
    /// ACCM of this direction.
    pub accm: u32,
    /// PFC allowed in this direction.
    pub pfc: bool,
    /// ACFC allowed in this direction.
    pub acfc: bool,
    /// Magic number of the sender (0: none).
    pub magic: u32,
}

impl Default for Negotiated {
    fn default() -> Self {
        Negotiated {
            mru: DEFAULT_MRU,
            accm: crate::hdlc::DEFAULT_ACCM,
            pfc: false,
            acfc: false,
            magic: 0,
        }
    }
}

/// The LCP [`Negotiator`].
#[derive(Debug, Clone)]
pub struct LcpNegotiator {
    config: LcpConfig,
    // What we currently request.
    req_mru: Option<u16>,
    req_accm: Option<u32>,
    req_pfc: bool,
    req_acfc: bool,
    req_magic: Option<u32>,
    /// The peer rejected Magic-Number: stop asking until a restart.
    magic_rejected: bool,
    /// Index into `config.require_auth` of the method we request.
    req_auth: Option<usize>,
    auth_refused: Vec<AuthProtocol>,
    /// What the peer asked for and we acked: our transmit direction.
    tx: Negotiated,
    /// What the peer acked: our receive direction.
    rx: Negotiated,
    /// Authenticator: the method the peer acked. Peer: the method we acked.
    auth: Option<AuthProtocol>,
    loopbacks: u32,
    looped_back: bool,
}

impl LcpNegotiator {
    /// A negotiator for `config`.
    pub fn new(config: LcpConfig) -> Self {
        let mut n = LcpNegotiator {
            config,
            req_mru: None,
            req_accm: None,
            req_pfc: false,
            req_acfc: false,
            req_magic: None,
            magic_rejected: false,
            req_auth: None,
            auth_refused: Vec::new(),
            tx: Negotiated::default(),
            rx: Negotiated::default(),
            auth: None,
            loopbacks: 0,
            looped_back: false,
        };
        n.reset_requests();
        n
    }

    fn reset_requests(&mut self) {
        let c = &self.config;
        self.req_mru = (c.mru != DEFAULT_MRU).then_some(c.mru);
        self.req_accm = c.accm;
        self.req_pfc = c.pfc;
        self.req_acfc = c.acfc;
        self.req_auth = (!c.require_auth.is_empty()).then_some(0);
        self.auth_refused.clear();
        self.magic_rejected = false;
        if !c.magic {
            self.req_magic = None;
        }
    }

    /// The configuration.
    pub fn config(&self) -> &LcpConfig {
        &self.config
    }

    /// Our transmit direction as the peer asked (valid once LCP is Opened).
    pub fn tx(&self) -> Negotiated {
        self.tx
    }

    /// Our receive direction as the peer acked (valid once LCP is Opened).
    pub fn rx(&self) -> Negotiated {
        self.rx
    }

    /// The authentication protocol agreed (valid once LCP is Opened).
    pub fn auth(&self) -> Option<AuthProtocol> {
        self.auth
    }

    /// Our magic number (0: none).
    pub fn our_magic(&self) -> u32 {
        self.rx.magic
    }

    /// The peer's magic number (0: none).
    pub fn peer_magic(&self) -> u32 {
        self.tx.magic
    }

    /// The peer echoed our magic number back more than allowed.
    pub fn looped_back(&self) -> bool {
        self.looped_back
    }

    /// Records that an Echo/Configure carried our own magic number back.
    pub fn note_loopback(&mut self) {
        self.loopbacks += 1;
        if self.loopbacks > self.config.max_loopback {
            self.looped_back = true;
        }
    }

    fn new_magic(rand: Rand<'_>) -> u32 {
        let mut b = [0u8; 4];
        // A zero magic is illegal (RFC 1661 §6.4); retry a few times.
        for _ in 0..8 {
            rand(&mut b);
            let m = u32::from_be_bytes(b);
            if m != 0 {
                return m;
            }
        }
        0x5050_5050
    }
}

impl Negotiator for LcpNegotiator {
    fn request(&mut self, rand: Rand<'_>) -> Vec<u8> {
        if self.config.magic && !self.magic_rejected && self.req_magic.is_none() {
            self.req_magic = Some(Self::new_magic(rand));
        }
        let mut out = Vec::new();
        if let Some(m) = self.req_mru {
            LcpOption::Mru(m).emit(&mut out);
        }
        if let Some(a) = self.req_accm {
            LcpOption::Accm(a).emit(&mut out);
        }
        if let Some(p) = self.req_auth.and_then(|i| self.config.require_auth.get(i)) {
            crate::wire::push_option(&mut out, lcp_opt::AUTH, p.lcp_option_data());
        }
        if let Some(m) = self.req_magic {
            LcpOption::MagicNumber(m).emit(&mut out);
        }
        if self.req_pfc {
            LcpOption::Pfc.emit(&mut out);
        }
        if self.req_acfc {
            LcpOption::Acfc.emit(&mut out);
        }
        out
    }

    fn judge(&mut self, options: &[RawOption<'_>], nak_allowed: bool, rand: Rand<'_>) -> Judgement {
        let mut j = JudgeBuilder::new();
        let mut tx = Negotiated::default();
        let mut auth = None;
        for raw in options {
            let Ok(opt) = LcpOption::parse(*raw) else {
                j.reject(raw);
                continue;
            };
            match opt {
                LcpOption::Mru(m) => {
                    if m < MIN_MRU {
                        j.nak(raw, &MIN_MRU.to_be_bytes());
                    } else {
                        tx.mru = m;
                    }
                }
                LcpOption::Accm(a) => tx.accm = a,
                LcpOption::AuthProtocol { .. } => {
                    let offered = AuthProtocol::from_lcp_option_data(raw.data).ok();
                    match offered {
                        Some(p) if self.config.accept_auth.contains(&p) => auth = Some(p),
                        _ => match self.config.accept_auth.first() {
                            Some(&ours) => j.nak(raw, &auth_option_bytes(ours)),
                            None => j.reject(raw),
                        },
                    }
                }
                LcpOption::MagicNumber(m) => {
                    let ours = self.req_magic.unwrap_or(0);
                    if m == 0 || (ours != 0 && m == ours) {
                        if m != 0 {
                            // Possibly looped back (RFC 1661 §6.4): pick a
                            // new number for us and suggest another one.
                            self.note_loopback();
                            self.req_magic = Some(Self::new_magic(rand));
                        }
                        let suggestion = Self::new_magic(rand);
                        j.nak(raw, &suggestion.to_be_bytes());
                    } else {
                        tx.magic = m;
                    }
                }
                LcpOption::Pfc if self.config.pfc => tx.pfc = true,
                LcpOption::Acfc if self.config.acfc => tx.acfc = true,
                LcpOption::Pfc | LcpOption::Acfc | LcpOption::Unknown(_) => j.reject(raw),
            }
        }
        // An authenticator needs no auth from the peer's request; a peer
        // that requires nothing is fine too.
        let verdict = j.finish(nak_allowed);
        if verdict == Judgement::Ack {
            self.tx = tx;
            if self.config.require_auth.is_empty() {
                self.auth = auth;
            }
        }
        verdict
    }

    fn acked(&mut self, options: &[RawOption<'_>]) {
        let mut rx = Negotiated::default();
        for raw in options {
            match LcpOption::parse(*raw) {
                Ok(LcpOption::Mru(m)) => rx.mru = m,
                Ok(LcpOption::Accm(a)) => rx.accm = a,
                Ok(LcpOption::MagicNumber(m)) => rx.magic = m,
                Ok(LcpOption::Pfc) => rx.pfc = true,
                Ok(LcpOption::Acfc) => rx.acfc = true,
                Ok(LcpOption::AuthProtocol { .. }) => {
                    self.auth = AuthProtocol::from_lcp_option_data(raw.data).ok();
                }
                _ => {}
            }
        }
        self.rx = rx;
    }

    fn nakked(&mut self, options: &[RawOption<'_>], rand: Rand<'_>) -> Result<(), String> {
        for raw in options {
            let Ok(opt) = LcpOption::parse(*raw) else {
                continue;
            };
            match opt {
                // Accept a smaller or larger MRU within sane bounds.
                LcpOption::Mru(m) if m >= MIN_MRU => self.req_mru = Some(m),
                LcpOption::Accm(a) => {
                    // Characters the peer needs escaped are added to ours.
                    self.req_accm = Some(self.req_accm.unwrap_or(0) | a);
                }
                LcpOption::AuthProtocol { .. } => {
                    let Some(cur) = self.req_auth else {
                        continue; // we did not ask for authentication
                    };
                    if let Some(p) = self.config.require_auth.get(cur).copied() {
                        self.auth_refused.push(p);
                    }
                    let suggested = AuthProtocol::from_lcp_option_data(raw.data).ok();
                    let allowed = |p: &AuthProtocol| !self.auth_refused.contains(p);
                    let pick = suggested
                        .and_then(|s| {
                            self.config
                                .require_auth
                                .iter()
                                .position(|p| *p == s && allowed(p))
                        })
                        .or_else(|| self.config.require_auth.iter().position(allowed));
                    match pick {
                        Some(i) => self.req_auth = Some(i),
                        None => {
                            return Err(
                                "peer refused every authentication method we require".to_string()
                            );
                        }
                    }
                }
                LcpOption::MagicNumber(_) if !self.magic_rejected => {
                    self.req_magic = Some(Self::new_magic(rand));
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn rejected(&mut self, options: &[RawOption<'_>]) -> Result<(), String> {
        for raw in options {
            match raw.kind {
                lcp_opt::MRU => self.req_mru = None,
                lcp_opt::ACCM => self.req_accm = None,
                lcp_opt::AUTH => {
                    return Err(
                        "peer refused to authenticate (Configure-Reject of Authentication-Protocol)"
                            .to_string(),
                    );
                }
                lcp_opt::MAGIC => {
                    self.req_magic = None;
                    self.magic_rejected = true;
                }
                lcp_opt::PFC => self.req_pfc = false,
                lcp_opt::ACFC => self.req_acfc = false,
                _ => {}
            }
        }
        Ok(())
    }

    fn extended_code(&self, code: u8) -> bool {
        (8..=11).contains(&code)
    }

    fn reset(&mut self) {
        self.tx = Negotiated::default();
        self.rx = Negotiated::default();
        self.auth = None;
        let magic = self.req_magic;
        self.reset_requests();
        self.req_magic = magic;
    }
}

/// Builds the data of an LCP Protocol-Reject (RFC 1661 §5.7): the rejected
/// protocol followed by its information field, truncated so the packet fits
/// in `peer_mru`.
pub fn protocol_reject_data(rejected: u16, info: &[u8], peer_mru: u16) -> Vec<u8> {
    let room = usize::from(peer_mru).saturating_sub(4 + 2);
    let info = info.get(..room).unwrap_or(info);
    let mut v = rejected.to_be_bytes().to_vec();
    v.extend_from_slice(info);
    v
}

/// Parses the rejected protocol number out of Protocol-Reject data.
pub fn parse_protocol_reject(data: &[u8]) -> Option<u16> {
    match data {
        [h, l, ..] => Some(u16::from_be_bytes([*h, *l])),
        _ => None,
    }
}

/// Splits an Echo-Request/Reply or Discard-Request's data into the magic
/// number and the rest.
pub fn parse_magic_data(data: &[u8]) -> Option<(u32, &[u8])> {
    match data {
        [a, b, c, d, rest @ ..] => Some((u32::from_be_bytes([*a, *b, *c, *d]), rest)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::parse_options;

    fn rnd(b: &mut [u8]) {
        for (i, x) in b.iter_mut().enumerate() {
            *x = 0x11 + i as u8;
        }
    }

    #[test]
    fn server_request_and_nak_of_auth() {
        let mut n = LcpNegotiator::new(LcpConfig {
            require_auth: vec![
                AuthProtocol::MsChapV2,
                AuthProtocol::ChapMd5,
                AuthProtocol::Pap,
            ],
            ..LcpConfig::default()
        });
        let req = n.request(&mut rnd);
        let opts = parse_options(&req).unwrap();
        assert!(
            opts.iter()
                .any(|o| o.kind == 3 && o.data == [0xc2, 0x23, 0x81])
        );
        // The peer naks with PAP: allowed, so we switch.
        n.nakked(
            &[RawOption {
                kind: 3,
                data: &[0xc0, 0x23],
            }],
            &mut rnd,
        )
        .unwrap();
        let req = n.request(&mut rnd);
        assert!(
            parse_options(&req)
                .unwrap()
                .iter()
                .any(|o| o.kind == 3 && o.data == [0xc0, 0x23])
        );
        // Nak with something unknown: next allowed one (CHAP-MD5).
        n.nakked(
            &[RawOption {
                kind: 3,
                data: &[0xc0, 0x27],
            }],
            &mut rnd,
        )
        .unwrap();
        let req = n.request(&mut rnd);
        assert!(
            parse_options(&req)
                .unwrap()
                .iter()
                .any(|o| o.kind == 3 && o.data == [0xc2, 0x23, 5])
        );
        // And then nothing left.
        assert!(
            n.nakked(
                &[RawOption {
                    kind: 3,
                    data: &[0xc0, 0x27]
                }],
                &mut rnd
            )
            .is_err()
        );
        assert!(
            n.rejected(&[RawOption {
                kind: 3,
                data: &[0xc0, 0x23]
            }])
            .is_err()
        );
    }

    #[test]
    fn client_judges_auth() {
        let mut n = LcpNegotiator::new(LcpConfig {
            accept_auth: vec![AuthProtocol::ChapMd5, AuthProtocol::Pap],
            ..LcpConfig::default()
        });
        let pap = [RawOption {
            kind: 3,
            data: &[0xc0, 0x23],
        }];
        assert_eq!(n.judge(&pap, true, &mut rnd), Judgement::Ack);
        assert_eq!(n.auth(), Some(AuthProtocol::Pap));
        let ms = [RawOption {
            kind: 3,
            data: &[0xc2, 0x23, 0x81],
        }];
        assert_eq!(
            n.judge(&ms, true, &mut rnd),
            Judgement::Nak(vec![3, 5, 0xc2, 0x23, 5])
        );
        let mut none = LcpNegotiator::new(LcpConfig::default());
        assert_eq!(
            none.judge(&pap, true, &mut rnd),
            Judgement::Reject(vec![3, 4, 0xc0, 0x23])
        );
    }

    #[test]
    fn magic_loopback() {
        let mut n = LcpNegotiator::new(LcpConfig {
            max_loopback: 1,
            ..LcpConfig::default()
        });
        let req = n.request(&mut rnd);
        let magic = parse_options(&req)
            .unwrap()
            .iter()
            .find(|o| o.kind == 5)
            .unwrap()
            .data
            .to_vec();
        let looped = [RawOption {
            kind: 5,
            data: &magic,
        }];
        assert!(matches!(
            n.judge(&looped, true, &mut rnd),
            Judgement::Nak(_)
        ));
        assert!(!n.looped_back());
        let req2 = n.request(&mut rnd);
        let magic2 = parse_options(&req2)
            .unwrap()
            .iter()
            .find(|o| o.kind == 5)
            .unwrap()
            .data
            .to_vec();
        let looped = [RawOption {
            kind: 5,
            data: &magic2,
        }];
        assert!(matches!(
            n.judge(&looped, true, &mut rnd),
            Judgement::Nak(_)
        ));
        assert!(n.looped_back());
    }

    #[test]
    fn rejects_unknown_and_bad_options() {
        let mut n = LcpNegotiator::new(LcpConfig::default());
        let opts = [
            RawOption {
                kind: 13,
                data: &[6],
            }, // callback
            RawOption {
                kind: 1,
                data: &[5],
            }, // bad MRU length
            RawOption {
                kind: 2,
                data: &[0, 0, 0, 0],
            },
        ];
        assert_eq!(
            n.judge(&opts, true, &mut rnd),
            Judgement::Reject(vec![13, 3, 6, 1, 3, 5])
        );
        let small = [RawOption {
            kind: 1,
            data: &[0, 10],
        }];
        assert_eq!(
            n.judge(&small, true, &mut rnd),
            Judgement::Nak(vec![1, 4, 0, 128])
        );
        assert_eq!(
            n.judge(&small, false, &mut rnd),
            Judgement::Reject(vec![1, 4, 0, 10])
        );
    }

    #[test]
    fn protocol_reject_truncates() {
        let d = protocol_reject_data(0x80fd, &[1; 2000], 1500);
        // 4 header octets + 2 protocol octets + data must fit in the MRU.
        assert_eq!(d.len(), 1500 - 4);
        assert_eq!(parse_protocol_reject(&d), Some(0x80fd));
    }
}
