//! The host functions (`RasSecurityDialogSend`, `...Receive`, `...GetInfo`,
//! `...Complete`) must be in the dynamic symbol table of any executable that
//! loads C modules, so that a module's undefined references resolve against
//! it at `dlopen(RTLD_NOW)`. Export exactly those four names (GNU ld >= 2.35
//! and lld know `--export-dynamic-symbol`); a binary of another crate that
//! loads modules (dialgate's worker) needs the same lines in its own build
//! script, with `rustc-link-arg-bins`.
fn main() {
    for sym in [
        "RasSecurityDialogSend",
        "RasSecurityDialogReceive",
        "RasSecurityDialogGetInfo",
        "RasSecurityDialogComplete",
    ] {
        let arg = format!("-Wl,--export-dynamic-symbol={sym}");
        println!("cargo:rustc-link-arg-bins={arg}");
        println!("cargo:rustc-link-arg-tests={arg}");
        println!("cargo:rustc-link-arg-examples={arg}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
