//! IPCP option negotiation (RFC 1332, RFC 1877): IP-Address, primary and
//! secondary DNS and NBNS. IP-Compression-Protocol (VJ) and the deprecated
//! IP-Addresses option are always rejected.

use std::net::Ipv4Addr;

use crate::fsm::{JudgeBuilder, Judgement, Negotiator, Rand};
use crate::wire::{IpcpOption, RawOption, ipcp_opt, push_option};

/// What we negotiate in IPCP. One struct for both roles: a server sets
/// `local`, `peer` and the name servers it hands out; a client leaves
/// `local` and `peer` empty and sets `request_dns` / `request_nbns`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpcpConfig {
    /// Our own address. `None`: ask the peer to assign one (0.0.0.0).
    pub local: Option<Ipv4Addr>,
    /// The address we assign to the peer (by Nak). `None`: accept the
    /// address the peer asks for (any non-zero one).
    pub peer: Option<Ipv4Addr>,
    /// Primary and secondary DNS we give the peer when it asks (RFC 1877).
    pub dns: [Option<Ipv4Addr>; 2],
    /// Primary and secondary NBNS we give the peer when it asks.
    pub nbns: [Option<Ipv4Addr>; 2],
    /// Ask the peer for primary and secondary DNS addresses.
    pub request_dns: bool,
    /// Ask the peer for primary and secondary NBNS addresses.
    pub request_nbns: bool,
}

/// The result of IPCP once Opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpcpResult {
    /// Our address.
    pub local: Ipv4Addr,
    /// The peer's address (0.0.0.0 if the peer never said).
    pub peer: Ipv4Addr,
    /// DNS servers the peer gave us (client role), or we gave it (server).
    pub dns: [Option<Ipv4Addr>; 2],
    /// NBNS servers, likewise.
    pub nbns: [Option<Ipv4Addr>; 2],
}

const DNS_KINDS: [u8; 2] = [ipcp_opt::PRIMARY_DNS, ipcp_opt::SECONDARY_DNS];
const NBNS_KINDS: [u8; 2] = [ipcp_opt::PRIMARY_NBNS, ipcp_opt::SECONDARY_NBNS];

/// The IPCP [`Negotiator`].
#[derive(Debug, Clone)]
pub struct IpcpNegotiator {
    config: IpcpConfig,
    req_addr: Option<Ipv4Addr>,
    req_dns: [Option<Ipv4Addr>; 2],
    req_nbns: [Option<Ipv4Addr>; 2],
    /// We already hinted the peer's address once (RFC 1332 §3.3 Nak hint).
    hinted: bool,
    peer_addr: Ipv4Addr,
    peer_dns: [Option<Ipv4Addr>; 2],
    peer_nbns: [Option<Ipv4Addr>; 2],
    acked: Option<IpcpResult>,
}

impl IpcpNegotiator {
    /// A negotiator for `config`.
    pub fn new(config: IpcpConfig) -> Self {
        let mut n = IpcpNegotiator {
            config,
            req_addr: None,
            req_dns: [None; 2],
            req_nbns: [None; 2],
            hinted: false,
            peer_addr: Ipv4Addr::UNSPECIFIED,
            peer_dns: [None; 2],
            peer_nbns: [None; 2],
            acked: None,
        };
        n.reset_requests();
        n
    }

    fn reset_requests(&mut self) {
        self.req_addr = Some(self.config.local.unwrap_or(Ipv4Addr::UNSPECIFIED));
        let ask = |yes: bool| {
            if yes {
                [Some(Ipv4Addr::UNSPECIFIED); 2]
            } else {
                [None; 2]
            }
        };
        self.req_dns = ask(self.config.request_dns);
        self.req_nbns = ask(self.config.request_nbns);
        self.hinted = false;
    }

    /// The configuration.
    pub fn config(&self) -> &IpcpConfig {
        &self.config
    }

    /// The negotiated addresses (valid once IPCP is Opened).
    pub fn result(&self) -> IpcpResult {
        let ours = self.acked.unwrap_or(IpcpResult {
            local: Ipv4Addr::UNSPECIFIED,
            peer: Ipv4Addr::UNSPECIFIED,
            dns: [None; 2],
            nbns: [None; 2],
        });
        let server_side = self.config.peer.is_some();
        IpcpResult {
            local: ours.local,
            peer: self.peer_addr,
            dns: if server_side { self.peer_dns } else { ours.dns },
            nbns: if server_side {
                self.peer_nbns
            } else {
                ours.nbns
            },
        }
    }

    fn judge_server_addr(
        j: &mut JudgeBuilder,
        raw: &RawOption<'_>,
        asked: Ipv4Addr,
        offer: Option<Ipv4Addr>,
    ) -> Option<Ipv4Addr> {
        match offer {
            Some(v) if v == asked => Some(v),
            Some(v) => {
                j.nak(raw, &v.octets());
                None
            }
            None => {
                j.reject(raw);
                None
            }
        }
    }
}

impl Negotiator for IpcpNegotiator {
    fn request(&mut self, _rand: Rand<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        if let Some(a) = self.req_addr {
            push_option(&mut out, ipcp_opt::IP_ADDRESS, &a.octets());
        }
        for (i, kind) in DNS_KINDS.iter().enumerate() {
            if let Some(a) = self.req_dns[i] {
                push_option(&mut out, *kind, &a.octets());
            }
        }
        for (i, kind) in NBNS_KINDS.iter().enumerate() {
            if let Some(a) = self.req_nbns[i] {
                push_option(&mut out, *kind, &a.octets());
            }
        }
        out
    }

    fn judge(
        &mut self,
        options: &[RawOption<'_>],
        nak_allowed: bool,
        _rand: Rand<'_>,
    ) -> Judgement {
        let mut j = JudgeBuilder::new();
        let mut peer_addr = None;
        let mut dns = [None; 2];
        let mut nbns = [None; 2];
        for raw in options {
            let Ok(opt) = IpcpOption::parse(*raw) else {
                j.reject(raw);
                continue;
            };
            match opt {
                IpcpOption::IpAddress(a) => match self.config.peer {
                    Some(assigned) if a != assigned => j.nak(raw, &assigned.octets()),
                    Some(assigned) => peer_addr = Some(assigned),
                    None if a.is_unspecified() => j.reject(raw),
                    None => peer_addr = Some(a),
                },
                IpcpOption::PrimaryDns(a) => {
                    dns[0] = Self::judge_server_addr(&mut j, raw, a, self.config.dns[0]);
                }
                IpcpOption::SecondaryDns(a) => {
                    dns[1] = Self::judge_server_addr(&mut j, raw, a, self.config.dns[1]);
                }
                IpcpOption::PrimaryNbns(a) => {
                    nbns[0] = Self::judge_server_addr(&mut j, raw, a, self.config.nbns[0]);
                }
                IpcpOption::SecondaryNbns(a) => {
                    nbns[1] = Self::judge_server_addr(&mut j, raw, a, self.config.nbns[1]);
                }
                IpcpOption::IpCompression(_) | IpcpOption::Unknown(_) => j.reject(raw),
            }
        }
        // The peer did not ask for an address but we have one for it: hint
        // it once with a Nak, as pppd does.
        if let Some(assigned) = self.config.peer
            && peer_addr.is_none()
            && !options.iter().any(|o| o.kind == ipcp_opt::IP_ADDRESS)
            && !self.hinted
        {
            self.hinted = true;
            j.hint(ipcp_opt::IP_ADDRESS, &assigned.octets());
        }
        let verdict = j.finish(nak_allowed);
        if verdict == Judgement::Ack {
            self.peer_addr = peer_addr
                .or(self.config.peer)
                .unwrap_or(Ipv4Addr::UNSPECIFIED);
            self.peer_dns = dns;
            self.peer_nbns = nbns;
        }
        verdict
    }

    fn acked(&mut self, options: &[RawOption<'_>]) {
        let mut r = IpcpResult {
            local: self.config.local.unwrap_or(Ipv4Addr::UNSPECIFIED),
            peer: Ipv4Addr::UNSPECIFIED,
            dns: [None; 2],
            nbns: [None; 2],
        };
        for raw in options {
            match IpcpOption::parse(*raw) {
                Ok(IpcpOption::IpAddress(a)) => r.local = a,
                Ok(IpcpOption::PrimaryDns(a)) => r.dns[0] = Some(a),
                Ok(IpcpOption::SecondaryDns(a)) => r.dns[1] = Some(a),
                Ok(IpcpOption::PrimaryNbns(a)) => r.nbns[0] = Some(a),
                Ok(IpcpOption::SecondaryNbns(a)) => r.nbns[1] = Some(a),
                _ => {}
            }
        }
        self.acked = Some(r);
    }

    fn nakked(&mut self, options: &[RawOption<'_>], _rand: Rand<'_>) -> Result<(), String> {
        for raw in options {
            let Ok(opt) = IpcpOption::parse(*raw) else {
                continue;
            };
            match opt {
                // A configured local address is not up for discussion.
                IpcpOption::IpAddress(a) if self.config.local.is_none() && !a.is_unspecified() => {
                    self.req_addr = Some(a);
                }
                IpcpOption::PrimaryDns(a) if self.req_dns[0].is_some() => self.req_dns[0] = Some(a),
                IpcpOption::SecondaryDns(a) if self.req_dns[1].is_some() => {
                    self.req_dns[1] = Some(a);
                }
                IpcpOption::PrimaryNbns(a) if self.req_nbns[0].is_some() => {
                    self.req_nbns[0] = Some(a);
                }
                IpcpOption::SecondaryNbns(a) if self.req_nbns[1].is_some() => {
                    self.req_nbns[1] = Some(a);
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn rejected(&mut self, options: &[RawOption<'_>]) -> Result<(), String> {
        for raw in options {
            match raw.kind {
                ipcp_opt::IP_ADDRESS => {
                    if self.config.local.is_none() {
                        return Err("peer refused to assign us an IP address".to_string());
                    }
                    self.req_addr = None;
                }
                ipcp_opt::PRIMARY_DNS => self.req_dns[0] = None,
                ipcp_opt::SECONDARY_DNS => self.req_dns[1] = None,
                ipcp_opt::PRIMARY_NBNS => self.req_nbns[0] = None,
                ipcp_opt::SECONDARY_NBNS => self.req_nbns[1] = None,
                _ => {}
            }
        }
        Ok(())
    }

    fn reset(&mut self) {
        self.acked = None;
        self.peer_addr = Ipv4Addr::UNSPECIFIED;
        self.peer_dns = [None; 2];
        self.peer_nbns = [None; 2];
        let addr = self.req_addr;
        let (dns, nbns) = (self.req_dns, self.req_nbns);
        self.reset_requests();
        // Keep what the peer taught us (an assigned address) across a
        // renegotiation.
        if self.config.local.is_none() {
            self.req_addr = addr;
            self.req_dns = dns;
            self.req_nbns = nbns;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::parse_options;

    fn rnd(b: &mut [u8]) {
        b.fill(1);
    }

    fn server() -> IpcpNegotiator {
        IpcpNegotiator::new(IpcpConfig {
            local: Some(Ipv4Addr::new(192, 0, 2, 1)),
            peer: Some(Ipv4Addr::new(192, 0, 2, 2)),
            dns: [Some(Ipv4Addr::new(192, 0, 2, 53)), None],
            ..IpcpConfig::default()
        })
    }

    #[test]
    fn server_naks_client_request_like_capture_06() {
        // Capture 06 frame 012: <compress VJ 0f 01> <addr 0.0.0.0>
        // <ms-dns1 0.0.0.0> <ms-dns2 0.0.0.0>
        let data = hex::decode("0206002d0f01030600000000810600000000830600000000").unwrap();
        let opts = parse_options(&data).unwrap();
        let mut s = server();
        // VJ is rejected first; ms-dns2 is rejected since we have only one.
        assert_eq!(
            s.judge(&opts, true, &mut rnd),
            Judgement::Reject(hex::decode("0206002d0f01830600000000").unwrap())
        );
        let data = hex::decode("030600000000810600000000").unwrap();
        let opts = parse_options(&data).unwrap();
        assert_eq!(
            s.judge(&opts, true, &mut rnd),
            Judgement::Nak(hex::decode("0306c00002028106c0000235").unwrap())
        );
        let data = hex::decode("0306c00002028106c0000235").unwrap();
        let opts = parse_options(&data).unwrap();
        assert_eq!(s.judge(&opts, true, &mut rnd), Judgement::Ack);
        assert_eq!(s.result().peer, Ipv4Addr::new(192, 0, 2, 2));
    }

    #[test]
    fn client_takes_nak() {
        let mut c = IpcpNegotiator::new(IpcpConfig {
            request_dns: true,
            ..IpcpConfig::default()
        });
        let req = c.request(&mut rnd);
        assert_eq!(hex::encode(&req), "030600000000810600000000830600000000");
        let nak = hex::decode("0306c00002028106c0000235").unwrap();
        c.nakked(&parse_options(&nak).unwrap(), &mut rnd).unwrap();
        let rej = hex::decode("830600000000").unwrap();
        c.rejected(&parse_options(&rej).unwrap()).unwrap();
        let req = c.request(&mut rnd);
        assert_eq!(hex::encode(&req), "0306c00002028106c0000235");
        c.acked(&parse_options(&req).unwrap());
        let r = c.result();
        assert_eq!(r.local, Ipv4Addr::new(192, 0, 2, 2));
        assert_eq!(r.dns, [Some(Ipv4Addr::new(192, 0, 2, 53)), None]);
        // Server refuses an address: fatal for a client.
        let rej = hex::decode("0306c0000202").unwrap();
        assert!(c.rejected(&parse_options(&rej).unwrap()).is_err());
    }

    #[test]
    fn hint_once_when_address_missing() {
        let mut s = server();
        assert_eq!(
            s.judge(&[], true, &mut rnd),
            Judgement::Nak(hex::decode("0306c0000202").unwrap())
        );
        assert_eq!(s.judge(&[], true, &mut rnd), Judgement::Ack);
    }
}
