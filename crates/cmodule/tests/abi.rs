//! `include/rasshost.h` and the Rust mirror (`cmodule::abi`) agree: a C
//! program compiled from the header prints every size, offset and constant,
//! and each must equal the Rust value.

use std::collections::BTreeMap;
use std::process::Command;

#[test]
fn header_and_rust_agree_on_every_size_offset_and_constant() {
    let dir = tempfile::tempdir().unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut c = String::from(
        "#include <stdio.h>\n#include <stddef.h>\n#include \"rasshost.h\"\nint main(void) {\n",
    );
    let layout = cmodule::abi::layout();
    let consts = cmodule::abi::constants();
    for (name, _) in &layout {
        let expr = if let Some(rest) = name.strip_prefix("offsetof(") {
            let (ty, field) = rest.trim_end_matches(')').split_once(',').unwrap();
            format!("offsetof({ty}, {field})")
        } else {
            name.to_string()
        };
        c.push_str(&format!(
            "  printf(\"%s %llu\\n\", \"{name}\", (unsigned long long)({expr}));\n"
        ));
    }
    for (name, _) in &consts {
        c.push_str(&format!(
            "  printf(\"%s %llu\\n\", \"{name}\", (unsigned long long)({name}));\n"
        ));
    }
    c.push_str("  return 0;\n}\n");
    let src = dir.path().join("layout.c");
    std::fs::write(&src, c).unwrap();
    let exe = dir.path().join("layout");
    let st = Command::new("cc")
        .arg("-Wall")
        .arg("-Werror")
        .arg("-I")
        .arg(root.join("include"))
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .status()
        .unwrap();
    assert!(st.success(), "the header does not compile");
    let out = Command::new(&exe).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let from_c: BTreeMap<String, u64> = text
        .lines()
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect();
    let from_rust: BTreeMap<String, u64> = layout
        .iter()
        .chain(consts.iter())
        .map(|(k, v)| (k.to_string(), *v))
        .collect();
    assert_eq!(from_c, from_rust);
    if cfg!(target_arch = "x86_64") {
        assert_eq!(from_c["sizeof(SECURITY_MESSAGE)"], 296);
        assert_eq!(from_c["sizeof(RAS_SECURITY_INFO)"], 140);
    }
}

#[test]
fn the_header_declares_the_six_functions_with_their_c_types() {
    // A module and a host written against the header must compile cleanly
    // with the prototypes as declared (this is the module's view).
    let dir = tempfile::tempdir().unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let src = dir.path().join("uses.c");
    std::fs::write(
        &src,
        r#"#include "rasshost.h"
DWORD (*b)(HPORT, PBYTE, DWORD, PBYTE, DWORD, VOID (*)(SECURITY_MESSAGE *)) = RasSecurityDialogBegin;
DWORD (*e)(HPORT) = RasSecurityDialogEnd;
DWORD (*s)(HPORT, PBYTE, WORD) = RasSecurityDialogSend;
DWORD (*r)(HPORT, PBYTE, PWORD, DWORD, int) = RasSecurityDialogReceive;
DWORD (*g)(HPORT, RAS_SECURITY_INFO *) = RasSecurityDialogGetInfo;
VOID (*c)(SECURITY_MESSAGE *) = RasSecurityDialogComplete;
DWORD RasSecurityDialogBegin(HPORT h, PBYTE a, DWORD an, PBYTE z, DWORD zn,
                             VOID (*done)(SECURITY_MESSAGE *))
{ (void)h; (void)a; (void)an; (void)z; (void)zn; (void)done; return NO_ERROR; }
DWORD RasSecurityDialogEnd(HPORT h) { (void)h; return NO_ERROR; }
"#,
    )
    .unwrap();
    let st = Command::new("cc")
        .args(["-Wall", "-Wextra", "-Werror", "-std=c99", "-c", "-I"])
        .arg(root.join("include"))
        .arg(&src)
        .arg("-o")
        .arg(dir.path().join("uses.o"))
        .status()
        .unwrap();
    assert!(st.success());
}
