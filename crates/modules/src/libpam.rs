//! Linux-PAM, loaded at run time from `libpam.so.0`.
//!
//! The server must build and start on a Debian that has no development
//! packages: linking `-lpam` needs `libpam0g-dev` (the `libpam.so` symlink),
//! while `libpam.so.0` itself comes with `libpam0g`, which every Debian has
//! (`login` and `passwd` depend on it). So nothing links PAM; the library is
//! opened with `dlopen` the first time a PAM module is built, and a machine
//! without it gets a clear configuration error instead of a failed build.
//!
//! The surface is the small part of the PAM application API the `pam`
//! module uses: `pam_start` / `pam_end`, `pam_authenticate`,
//! `pam_acct_mgmt`, `pam_set_item` / `pam_get_item` (`PAM_TTY`,
//! `PAM_USER_PROMPT`, `PAM_USER`) and `pam_strerror`, with a conversation
//! handler trait. The numbers are Linux-PAM's (`security/_pam_types.h`).
//!
//! Conversation answers are copied into `malloc`ed memory, which PAM owns
//! and frees; our copy of each answer is zeroed as soon as it is handed
//! over, and answers already made are zeroed before they are freed when a
//! later message of the same call fails.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::sync::OnceLock;

use zeroize::Zeroize;

/// The file name `dlopen` is given: the run-time name, not the `-dev`
/// symlink.
pub(crate) const LIBRARY: &str = "libpam.so.0";

/// At most this many messages in one conversation call (Linux-PAM's
/// `PAM_MAX_NUM_MSG`); a call with more is refused with `PAM_CONV_ERR`.
const MAX_NUM_MSG: c_int = 32;

/// A PAM result code (`PAM_*` return values).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ErrorCode(c_int);

#[allow(dead_code)] // the full set, so logs and matches name every code
impl ErrorCode {
    pub(crate) const SUCCESS: ErrorCode = ErrorCode(0);
    pub(crate) const OPEN_ERR: ErrorCode = ErrorCode(1);
    pub(crate) const SYMBOL_ERR: ErrorCode = ErrorCode(2);
    pub(crate) const SERVICE_ERR: ErrorCode = ErrorCode(3);
    pub(crate) const SYSTEM_ERR: ErrorCode = ErrorCode(4);
    pub(crate) const BUF_ERR: ErrorCode = ErrorCode(5);
    pub(crate) const PERM_DENIED: ErrorCode = ErrorCode(6);
    pub(crate) const AUTH_ERR: ErrorCode = ErrorCode(7);
    pub(crate) const CRED_INSUFFICIENT: ErrorCode = ErrorCode(8);
    pub(crate) const AUTHINFO_UNAVAIL: ErrorCode = ErrorCode(9);
    pub(crate) const USER_UNKNOWN: ErrorCode = ErrorCode(10);
    pub(crate) const MAXTRIES: ErrorCode = ErrorCode(11);
    pub(crate) const NEW_AUTHTOK_REQD: ErrorCode = ErrorCode(12);
    pub(crate) const ACCT_EXPIRED: ErrorCode = ErrorCode(13);
    pub(crate) const CONV_ERR: ErrorCode = ErrorCode(19);
    pub(crate) const ABORT: ErrorCode = ErrorCode(26);
    pub(crate) const AUTHTOK_EXPIRED: ErrorCode = ErrorCode(27);
    pub(crate) const MODULE_UNKNOWN: ErrorCode = ErrorCode(28);

    /// The number itself.
    pub(crate) fn repr(self) -> c_int {
        self.0
    }
}

/// Flags for `pam_authenticate` and `pam_acct_mgmt`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Flag(c_int);

impl Flag {
    /// `PAM_DISALLOW_NULL_AUTHTOK`: an empty password never passes.
    pub(crate) const DISALLOW_NULL_AUTHTOK: Flag = Flag(0x0001);
}

/// A failed PAM call: its code and PAM's own text for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Error {
    code: ErrorCode,
    text: String,
}

impl Error {
    /// The PAM result code.
    pub(crate) fn code(&self) -> ErrorCode {
        self.code
    }

    fn new(api: Option<&Api>, code: ErrorCode) -> Error {
        let text = api
            .and_then(|api| {
                // SAFETY: Linux-PAM's pam_strerror ignores its handle and
                // returns a pointer to a static string (or NULL).
                let p = unsafe { (api.strerror)(std::ptr::null_mut(), code.0) };
                // SAFETY: non-NULL, it is a NUL-terminated static string.
                (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
            })
            .unwrap_or_else(|| format!("PAM error {}", code.0));
        Error { code, text }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (PAM code {})", self.text, self.code.0)
    }
}

impl std::error::Error for Error {}

/// What the application answers to PAM's conversation messages.
pub(crate) trait ConversationHandler {
    /// `PAM_PROMPT_ECHO_ON`: a prompt whose answer is shown.
    fn prompt_echo_on(&mut self, prompt: &CStr) -> Result<CString, ErrorCode>;
    /// `PAM_PROMPT_ECHO_OFF`: a prompt whose answer is hidden (a password).
    fn prompt_echo_off(&mut self, prompt: &CStr) -> Result<CString, ErrorCode>;
    /// `PAM_TEXT_INFO`.
    fn text_info(&mut self, msg: &CStr);
    /// `PAM_ERROR_MSG`.
    fn error_msg(&mut self, msg: &CStr);
    /// `PAM_RADIO_TYPE` (Linux-PAM): a yes/no question.
    fn radio_prompt(&mut self, prompt: &CStr) -> Result<bool, ErrorCode>;
}

// Linux-PAM's structures (security/_pam_types.h).
#[repr(C)]
struct PamMessage {
    msg_style: c_int,
    msg: *const c_char,
}

#[repr(C)]
struct PamResponse {
    resp: *mut c_char,
    resp_retcode: c_int,
}

type ConvFn = unsafe extern "C" fn(
    c_int,
    *mut *const PamMessage,
    *mut *mut PamResponse,
    *mut c_void,
) -> c_int;

#[repr(C)]
struct PamConv {
    conv: Option<ConvFn>,
    appdata_ptr: *mut c_void,
}

const PAM_PROMPT_ECHO_OFF: c_int = 1;
const PAM_PROMPT_ECHO_ON: c_int = 2;
const PAM_ERROR_MSG: c_int = 3;
const PAM_TEXT_INFO: c_int = 4;
const PAM_RADIO_TYPE: c_int = 5;

const PAM_USER: c_int = 2;
const PAM_TTY: c_int = 3;
const PAM_USER_PROMPT: c_int = 9;

type StartFn =
    unsafe extern "C" fn(*const c_char, *const c_char, *const PamConv, *mut *mut c_void) -> c_int;
type EndFn = unsafe extern "C" fn(*mut c_void, c_int) -> c_int;
type FlagsFn = unsafe extern "C" fn(*mut c_void, c_int) -> c_int;
type SetItemFn = unsafe extern "C" fn(*mut c_void, c_int, *const c_void) -> c_int;
type GetItemFn = unsafe extern "C" fn(*const c_void, c_int, *mut *const c_void) -> c_int;
type StrerrorFn = unsafe extern "C" fn(*mut c_void, c_int) -> *const c_char;

/// The library's entry points, resolved once.
struct Api {
    start: StartFn,
    end: EndFn,
    authenticate: FlagsFn,
    acct_mgmt: FlagsFn,
    set_item: SetItemFn,
    get_item: GetItemFn,
    strerror: StrerrorFn,
    /// Kept open for the life of the process (the pointers above are into it).
    _lib: libloading::Library,
}

fn load() -> Result<Api, String> {
    // SAFETY: libpam's initialisers are the C library's ordinary ones; it
    // is opened once per process and never closed.
    let lib = unsafe { libloading::Library::new(LIBRARY) }
        .map_err(|e| format!("cannot load {LIBRARY} (Debian package libpam0g): {e}"))?;
    macro_rules! sym {
        ($name:literal, $ty:ty) => {{
            // SAFETY: the symbol has this C signature in every Linux-PAM
            // since 0.99 (security/pam_appl.h).
            let s: libloading::Symbol<'_, $ty> = unsafe { lib.get($name) }.map_err(|e| {
                format!(
                    "{LIBRARY} has no {}: {e}",
                    String::from_utf8_lossy(&$name[..$name.len() - 1])
                )
            })?;
            *s
        }};
    }
    Ok(Api {
        start: sym!(b"pam_start\0", StartFn),
        end: sym!(b"pam_end\0", EndFn),
        authenticate: sym!(b"pam_authenticate\0", FlagsFn),
        acct_mgmt: sym!(b"pam_acct_mgmt\0", FlagsFn),
        set_item: sym!(b"pam_set_item\0", SetItemFn),
        get_item: sym!(b"pam_get_item\0", GetItemFn),
        strerror: sym!(b"pam_strerror\0", StrerrorFn),
        _lib: lib,
    })
}

fn api() -> Result<&'static Api, &'static str> {
    static API: OnceLock<Result<Api, String>> = OnceLock::new();
    API.get_or_init(load).as_ref().map_err(String::as_str)
}

/// Checks that PAM can be loaded (for a module's construction, so a
/// missing library is a start-up error, not a failure at the first caller).
pub(crate) fn available() -> Result<(), String> {
    api().map(|_| ()).map_err(str::to_string)
}

/// One PAM transaction (`pam_start` .. `pam_end`) with its conversation.
/// Not `Send`: a PAM handle stays on the thread that made it.
pub(crate) struct Context<C: ConversationHandler> {
    api: &'static Api,
    handle: *mut c_void,
    /// The result passed to `pam_end`: the last call's.
    last: c_int,
    /// Boxed so its address (PAM's `appdata_ptr`) never moves.
    conv: Box<C>,
    /// Boxed for the same reason (Linux-PAM copies it, others may not).
    _pam_conv: Box<PamConv>,
}

impl<C: ConversationHandler> Context<C> {
    /// `pam_start(service, user, conv)`.
    pub(crate) fn new(service: &str, user: Option<&str>, conv: C) -> Result<Context<C>, Error> {
        let api = api().map_err(|_| Error {
            code: ErrorCode::OPEN_ERR,
            text: format!("cannot load {LIBRARY}"),
        })?;
        let bad = || Error::new(Some(api), ErrorCode::BUF_ERR);
        let service = CString::new(service).map_err(|_| bad())?;
        let user = user.map(CString::new).transpose().map_err(|_| bad())?;
        let mut conv = Box::new(conv);
        let pam_conv = Box::new(PamConv {
            conv: Some(converse::<C>),
            appdata_ptr: (&mut *conv as *mut C).cast(),
        });
        let mut handle: *mut c_void = std::ptr::null_mut();
        // SAFETY: the strings are NUL-terminated and outlive the call; the
        // conversation struct and its appdata are boxed and live as long as
        // the handle (dropped after pam_end).
        let rc = unsafe {
            (api.start)(
                service.as_ptr(),
                user.as_ref().map_or(std::ptr::null(), |u| u.as_ptr()),
                &*pam_conv,
                &mut handle,
            )
        };
        if rc != 0 || handle.is_null() {
            let code = if rc == 0 {
                ErrorCode::SYSTEM_ERR
            } else {
                ErrorCode(rc)
            };
            return Err(Error::new(Some(api), code));
        }
        Ok(Context {
            api,
            handle,
            last: 0,
            conv,
            _pam_conv: pam_conv,
        })
    }

    fn check(&mut self, rc: c_int) -> Result<(), Error> {
        self.last = rc;
        if rc == 0 {
            Ok(())
        } else {
            Err(Error::new(Some(self.api), ErrorCode(rc)))
        }
    }

    fn set_string(&mut self, item: c_int, value: Option<&str>) -> Result<(), Error> {
        let value = value
            .map(CString::new)
            .transpose()
            .map_err(|_| Error::new(Some(self.api), ErrorCode::BUF_ERR))?;
        // SAFETY: a live handle; PAM copies string items.
        let rc = unsafe {
            (self.api.set_item)(
                self.handle,
                item,
                value
                    .as_ref()
                    .map_or(std::ptr::null(), |v| v.as_ptr().cast()),
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(Error::new(Some(self.api), ErrorCode(rc)))
        }
    }

    /// Sets `PAM_TTY`.
    pub(crate) fn set_tty(&mut self, tty: Option<&str>) -> Result<(), Error> {
        self.set_string(PAM_TTY, tty)
    }

    /// Sets `PAM_USER_PROMPT` (the prompt of `pam_get_user`).
    pub(crate) fn set_user_prompt(&mut self, prompt: Option<&str>) -> Result<(), Error> {
        self.set_string(PAM_USER_PROMPT, prompt)
    }

    /// `pam_authenticate`.
    pub(crate) fn authenticate(&mut self, flags: Flag) -> Result<(), Error> {
        // SAFETY: a live handle; the conversation it calls back into is
        // ours and valid for the handle's life.
        let rc = unsafe { (self.api.authenticate)(self.handle, flags.0) };
        self.check(rc)
    }

    /// `pam_acct_mgmt`.
    pub(crate) fn acct_mgmt(&mut self, flags: Flag) -> Result<(), Error> {
        // SAFETY: as for authenticate.
        let rc = unsafe { (self.api.acct_mgmt)(self.handle, flags.0) };
        self.check(rc)
    }

    /// `PAM_USER` as PAM holds it now (a module may have mapped the name);
    /// an empty string when unset. Not UTF-8: an error.
    pub(crate) fn user(&self) -> Result<String, Error> {
        let mut item: *const c_void = std::ptr::null();
        // SAFETY: a live handle; PAM returns a pointer it owns, valid until
        // the item changes or pam_end.
        let rc = unsafe { (self.api.get_item)(self.handle, PAM_USER, &mut item) };
        if rc != 0 {
            return Err(Error::new(Some(self.api), ErrorCode(rc)));
        }
        if item.is_null() {
            return Ok(String::new());
        }
        // SAFETY: PAM_USER is a NUL-terminated string.
        let s = unsafe { CStr::from_ptr(item.cast()) };
        s.to_str()
            .map(str::to_string)
            .map_err(|_| Error::new(Some(self.api), ErrorCode::BUF_ERR))
    }

    /// The conversation handler (between PAM calls).
    pub(crate) fn conversation_mut(&mut self) -> &mut C {
        &mut self.conv
    }
}

impl<C: ConversationHandler> Drop for Context<C> {
    fn drop(&mut self) {
        // SAFETY: the handle is live and ended exactly once, here.
        unsafe { (self.api.end)(self.handle, self.last) };
    }
}

/// Copies `s` with its NUL into `malloc`ed memory (PAM frees responses
/// with `free`). NULL when out of memory.
fn malloc_copy(s: &CStr) -> *mut c_char {
    let bytes = s.to_bytes_with_nul();
    // SAFETY: a fresh allocation of exactly the copied length.
    unsafe {
        let p = libc::malloc(bytes.len()).cast::<u8>();
        if !p.is_null() {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len());
        }
        p.cast()
    }
}

/// Zeroes and frees `n` responses made so far, and the array.
///
/// # Safety
/// `resp` is a `calloc`ed array of at least `n` responses whose `resp`
/// fields are NULL or `malloc`ed NUL-terminated strings.
unsafe fn free_responses(resp: *mut PamResponse, n: usize) {
    for i in 0..n {
        // SAFETY: i < n, inside the array.
        let r = unsafe { &mut *resp.add(i) };
        if !r.resp.is_null() {
            // SAFETY: a malloc'ed NUL-terminated string of ours.
            unsafe {
                let len = libc::strlen(r.resp);
                std::ptr::write_bytes(r.resp, 0, len);
                libc::free(r.resp.cast());
            }
            r.resp = std::ptr::null_mut();
        }
    }
    // SAFETY: the calloc'ed array.
    unsafe { libc::free(resp.cast()) };
}

/// The conversation function PAM calls: each message to the handler, the
/// answers into a `calloc`ed response array PAM takes over. Never unwinds
/// into C: a panic in the handler is `PAM_CONV_ERR`.
unsafe extern "C" fn converse<C: ConversationHandler>(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata: *mut c_void,
) -> c_int {
    if resp.is_null() {
        return ErrorCode::CONV_ERR.0;
    }
    // SAFETY: resp is PAM's out-pointer.
    unsafe { *resp = std::ptr::null_mut() };
    if !(1..=MAX_NUM_MSG).contains(&num_msg) || msg.is_null() || appdata.is_null() {
        return ErrorCode::CONV_ERR.0;
    }
    let n = num_msg as usize;
    // SAFETY: calloc of n zeroed responses (NULL strings).
    let out = unsafe { libc::calloc(n, std::mem::size_of::<PamResponse>()) }.cast::<PamResponse>();
    if out.is_null() {
        return ErrorCode::BUF_ERR.0;
    }
    // SAFETY: appdata is the boxed handler of the Context whose PAM call is
    // running on this thread; nothing else borrows it during the call.
    let handler = unsafe { &mut *appdata.cast::<C>() };
    let answered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        for i in 0..n {
            // Linux-PAM passes an array of n pointers to messages.
            // SAFETY: i < n.
            let m = unsafe { *msg.add(i) };
            if m.is_null() {
                return Err(ErrorCode::CONV_ERR);
            }
            // SAFETY: a message PAM made for this call.
            let m = unsafe { &*m };
            let text = if m.msg.is_null() {
                c""
            } else {
                // SAFETY: PAM's NUL-terminated message text.
                unsafe { CStr::from_ptr(m.msg) }
            };
            let answer = match m.msg_style {
                PAM_PROMPT_ECHO_ON => Some(handler.prompt_echo_on(text)?),
                PAM_PROMPT_ECHO_OFF => Some(handler.prompt_echo_off(text)?),
                PAM_RADIO_TYPE => {
                    let yes = handler.radio_prompt(text)?;
                    Some(CString::from(if yes { c"yes" } else { c"no" }))
                }
                PAM_TEXT_INFO => {
                    handler.text_info(text);
                    None
                }
                PAM_ERROR_MSG => {
                    handler.error_msg(text);
                    None
                }
                // Binary prompts and anything else: not a text dialog.
                _ => return Err(ErrorCode::CONV_ERR),
            };
            if let Some(answer) = answer {
                let p = malloc_copy(&answer);
                let mut bytes = answer.into_bytes_with_nul();
                bytes.zeroize();
                if p.is_null() {
                    return Err(ErrorCode::BUF_ERR);
                }
                // SAFETY: i < n, inside our array.
                unsafe { (*out.add(i)).resp = p };
            }
        }
        Ok(())
    }));
    match answered {
        Ok(Ok(())) => {
            // SAFETY: PAM's out-pointer; PAM frees the array and strings.
            unsafe { *resp = out };
            ErrorCode::SUCCESS.0
        }
        Ok(Err(code)) => {
            // SAFETY: our array of n responses.
            unsafe { free_responses(out, n) };
            code.0
        }
        Err(_) => {
            // SAFETY: as above.
            unsafe { free_responses(out, n) };
            ErrorCode::CONV_ERR.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_library_loads_at_run_time() {
        available().expect("libpam.so.0 is on every Debian (libpam0g)");
    }

    #[test]
    fn strerror_names_codes() {
        let e = Error::new(api().ok(), ErrorCode::AUTH_ERR);
        assert_eq!(e.code(), ErrorCode::AUTH_ERR);
        assert!(e.to_string().contains("PAM code 7"), "{e}");
        assert!(
            e.to_string().to_lowercase().contains("authentication"),
            "{e}"
        );
    }
}
