//! sans-IO PPP (RFC 1661/1662/1334/1994/2759/1332/1877), both roles.
#![forbid(unsafe_code)]

pub mod auth;
