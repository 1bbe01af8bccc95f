//! The dialgate server as a library: the `dialgate` binary is a thin
//! command-line front over these modules, and the integration tests start
//! the server in-process through [`serve::Server`] when they need to plug in
//! something a separate process cannot share (the fake modem control lines).

pub mod call;
pub mod callback;
pub mod config;
pub mod dial;
pub mod handoff;
pub mod logcmd;
mod logging;
pub mod modemline;
pub mod network;
pub mod pool;
pub mod serve;
pub mod session;
pub mod usercmd;
