//! sans-IO PPP (RFC 1661/1662/1334/1994/2759/1332/1877), both roles.
//!
//! Layers, bottom up: [`hdlc`] (RFC 1662 framing), [`wire`] (packet and
//! option parsing), [`fsm`] (the RFC 1661 option negotiation automaton),
//! [`lcp`] and [`ipcp`] (the per-protocol negotiators), [`auth`] (PAP,
//! CHAP-MD5, MS-CHAPv2) and [`link`], which ties them together behind a
//! quinn-proto-style API: bytes and time in, bytes, timers and events out.
//! The crate does no IO, reads no clock and draws no random numbers.
#![forbid(unsafe_code)]

pub mod auth;
pub mod fsm;
pub mod hdlc;
pub mod ipcp;
pub mod lcp;
pub mod link;
pub mod wire;

pub use link::{
    DownCause, Event, Link, LinkConfig, LinkError, LinkStats, Phase, RandomSource, Role,
};
