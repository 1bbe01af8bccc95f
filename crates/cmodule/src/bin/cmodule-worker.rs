//! A stand-alone module worker, for tests and benchmarks:
//! `cmodule-worker --module PATH --fd N` (what `dialgate module-worker`
//! does in the product).

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut module: Option<PathBuf> = None;
    let mut fd: Option<i32> = None;
    let mut args = std::env::args_os().skip(1);
    while let Some(a) = args.next() {
        match a.to_str() {
            Some("--module") => module = args.next().map(PathBuf::from),
            Some("--fd") => fd = args.next().and_then(|v| v.to_str()?.parse().ok()),
            _ => {
                eprintln!("cmodule-worker: unexpected argument {a:?}");
                return ExitCode::from(2);
            }
        }
    }
    let (Some(module), Some(fd)) = (module, fd) else {
        eprintln!("usage: cmodule-worker --module PATH --fd N");
        return ExitCode::from(2);
    };
    match cmodule::worker::run(&module, fd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cmodule-worker: {e}");
            ExitCode::from(1)
        }
    }
}
