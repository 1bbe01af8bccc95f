//! Loading a C module (`dlopen`) and running it in this process as a
//! [`SecurityModule`].
//!
//! A library is never unloaded: a module may leave threads behind, and
//! `dlclose` under them would crash the process.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString, c_void};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use securityhost::consts::*;
use securityhost::{BeginArgs, HPort, SecurityModule};

use crate::abi::{BeginFn, CompleteFn, EndFn, Hport};
use crate::host::{self, CBuf};

/// Why a module could not be loaded. Each names the file.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file does not exist or cannot be read.
    #[error("security module {path}: cannot read it: {source}")]
    Missing {
        /// The module file.
        path: PathBuf,
        /// What the file system said.
        source: std::io::Error,
    },
    /// `dlopen` refused it (not a shared object, wrong architecture, an
    /// undefined symbol, ...).
    #[error("security module {path}: cannot load it: {reason}")]
    Unloadable {
        /// The module file.
        path: PathBuf,
        /// `dlerror()`'s text.
        reason: String,
    },
    /// One of the two exports is missing.
    #[error("security module {path}: it does not export {symbol}")]
    MissingExport {
        /// The module file.
        path: PathBuf,
        /// `RasSecurityDialogBegin` or `RasSecurityDialogEnd`.
        symbol: &'static str,
    },
    /// The running executable does not export the host functions, so a
    /// module could not find them (our build's fault, not the module's).
    #[error(
        "this executable does not export {symbol} dynamically: link it with \
         -Wl,--export-dynamic-symbol=RasSecurityDialog* (or -rdynamic)"
    )]
    HostNotExported {
        /// The first host function not found.
        symbol: &'static str,
    },
}

/// A loaded module: its two exports.
#[derive(Debug)]
pub struct Library {
    path: PathBuf,
    begin: BeginFn,
    end: EndFn,
}

fn dlerror_text() -> String {
    // SAFETY: dlerror returns NULL or a NUL-terminated string valid until
    // the next dl* call on this thread; it is copied at once.
    let p = unsafe { libc::dlerror() };
    if p.is_null() {
        "unknown dlopen error".to_string()
    } else {
        // SAFETY: non-null NUL-terminated string from dlerror.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
}

fn dlsym(handle: *mut c_void, name: &CStr) -> *mut c_void {
    // SAFETY: `handle` is a live dlopen handle or RTLD_DEFAULT, `name` a
    // NUL-terminated string.
    unsafe { libc::dlsym(handle, name.as_ptr()) }
}

/// Checks that the running executable exports the four host functions, as
/// a module loaded into it will look for them.
pub fn check_host_exports() -> Result<(), LoadError> {
    for (name, addr) in host::host_symbols() {
        let c = CString::new(name).map_err(|_| LoadError::HostNotExported { symbol: name })?;
        let found = dlsym(libc::RTLD_DEFAULT, &c);
        if found.is_null() || found as usize != addr {
            return Err(LoadError::HostNotExported { symbol: name });
        }
    }
    Ok(())
}

impl Library {
    /// Loads the module at `path` with `dlopen(RTLD_NOW)` and finds its
    /// two exports.
    pub fn open(path: &Path) -> Result<Library, LoadError> {
        check_host_exports()?;
        std::fs::File::open(path).map_err(|source| LoadError::Missing {
            path: path.to_path_buf(),
            source,
        })?;
        // A name without a slash would be searched in the library path.
        let full = if path.as_os_str().as_bytes().contains(&b'/') {
            path.to_path_buf()
        } else {
            Path::new(".").join(path)
        };
        let cpath =
            CString::new(full.as_os_str().as_bytes()).map_err(|_| LoadError::Unloadable {
                path: path.to_path_buf(),
                reason: "the path contains a NUL byte".into(),
            })?;
        // SAFETY: dlopen with a NUL-terminated path; it runs the module's
        // constructors, which is what loading a module means.
        let handle = unsafe { libc::dlopen(cpath.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        if handle.is_null() {
            return Err(LoadError::Unloadable {
                path: path.to_path_buf(),
                reason: dlerror_text(),
            });
        }
        let begin = dlsym(handle, c"RasSecurityDialogBegin");
        if begin.is_null() {
            return Err(LoadError::MissingExport {
                path: path.to_path_buf(),
                symbol: "RasSecurityDialogBegin",
            });
        }
        let end = dlsym(handle, c"RasSecurityDialogEnd");
        if end.is_null() {
            return Err(LoadError::MissingExport {
                path: path.to_path_buf(),
                symbol: "RasSecurityDialogEnd",
            });
        }
        // The handle is deliberately leaked: modules are never unloaded.
        Ok(Library {
            path: path.to_path_buf(),
            // SAFETY: the module exports these names with the prototypes of
            // rasshost.h; a module that lies breaks its own ABI contract.
            begin: unsafe { std::mem::transmute::<*mut c_void, BeginFn>(begin) },
            // SAFETY: as above.
            end: unsafe { std::mem::transmute::<*mut c_void, EndFn>(end) },
        })
    }

    /// The module file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A C module run in this process. A crash in it crashes the process: the
/// server uses [`crate::WorkerModule`], which runs this in a worker.
#[derive(Debug)]
pub struct CModule {
    lib: Arc<Library>,
    name: String,
}

impl CModule {
    /// Loads the module at `path`.
    pub fn load(path: &Path) -> Result<CModule, LoadError> {
        let lib = Library::open(path)?;
        Ok(CModule::new(Arc::new(lib)))
    }

    /// Wraps an opened library.
    pub fn new(lib: Arc<Library>) -> CModule {
        let name = module_name(lib.path());
        CModule { lib, name }
    }
}

/// A short name for a module file: its stem (`tokencard` for
/// `/usr/lib/dialgate/tokencard.so`).
pub fn module_name(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

impl SecurityModule for CModule {
    fn name(&self) -> &str {
        &self.name
    }

    fn begin(&self, args: BeginArgs) -> u32 {
        let send_len = args.send_buffer_size.min(u32::MAX as usize);
        let recv_len = args.recv_buffer_size.min(u32::MAX as usize);
        let (Some(send), Some(recv)) = (CBuf::new(send_len), CBuf::new(recv_len)) else {
            tracing::error!(module = %self.name, "cannot allocate the Begin buffers");
            return ERROR_NOT_ENOUGH_MEMORY;
        };
        let entry = host::register(args.hport, args.host, send, recv);
        let (sp, sl, rp, rl) = host::buffers(&entry);
        let complete: CompleteFn = host::RasSecurityDialogComplete;
        // Host functions called from inside Begin belong to this handle.
        let inside = host::CurrentCall::enter(args.hport);
        // SAFETY: calls the module's Begin with its documented arguments:
        // live buffers of the stated sizes that stay allocated until End
        // returned (and quarantined for a while after), and the host's
        // Complete.
        let code = unsafe {
            (self.lib.begin)(
                args.hport.0 as usize as Hport,
                sp,
                sl as u32,
                rp,
                rl as u32,
                complete,
            )
        };
        drop(inside);
        if code != NO_ERROR {
            host::begin_failed(&entry);
        }
        code
    }

    fn end(&self, hport: HPort) -> u32 {
        let entry = host::entry(hport);
        if let Some(e) = &entry {
            host::end_starting(e);
        }
        let inside = host::CurrentCall::enter(hport);
        // SAFETY: calls the module's End with the handle of a transaction
        // it was given in Begin.
        let code = unsafe { (self.lib.end)(hport.0 as usize as Hport) };
        drop(inside);
        if let Some(e) = &entry {
            host::end_returned(e, code);
        }
        code
    }
}

/// `ERROR_NOT_ENOUGH_MEMORY` (Windows 8): the Begin buffers could not be
/// allocated.
pub const ERROR_NOT_ENOUGH_MEMORY: u32 = 8;
