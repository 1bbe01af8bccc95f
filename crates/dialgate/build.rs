//! `dialgate module-worker` loads C security modules: the four host
//! functions of `rasshost.h` must be in the binary's dynamic symbol table so
//! a module's undefined references resolve at `dlopen(RTLD_NOW)`. Export
//! exactly those names (GNU ld >= 2.35 and lld know the flag).
fn main() {
    for sym in [
        "RasSecurityDialogSend",
        "RasSecurityDialogReceive",
        "RasSecurityDialogGetInfo",
        "RasSecurityDialogComplete",
    ] {
        println!("cargo:rustc-link-arg-bins=-Wl,--export-dynamic-symbol={sym}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
