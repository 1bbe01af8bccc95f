//! C security modules for dialgate: the `rasshost.h` ABI (`include/rasshost.h`
//! and its Rust mirror [`abi`]), the host functions a module calls
//! ([`host`]), the loader ([`CModule`], [`Library`]), and the worker process
//! that isolates module code from the server ([`WorkerModule`] on the
//! server's side, [`worker::run`] in the worker).
//!
//! An executable that loads modules (the worker) must export the four host
//! functions dynamically: see `build.rs` and [`check_host_exports`].

pub mod abi;
pub mod host;
pub mod loader;

pub use loader::{CModule, Library, LoadError, check_host_exports, module_name};
pub mod protocol;
pub mod supervisor;
pub mod worker;

pub use supervisor::{
    DeathCallback, StartError, WORKER_GONE, WorkerCommand, WorkerModule, WorkerOptions,
};
