//! A chain of `users` then `totp` (taking the user from the first step),
//! configured in TOML and enrolled with `dialgate user totp`, end to end.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use support::*;

const T: Duration = Duration::from_secs(10);

#[test]
fn users_then_totp_for_the_same_user() {
    let s = Setup::new(
        r#"[[group]]
name = "two"
kind = "tcp"
listen = "127.0.0.1:0"

[group.module]
kind = "chain"
steps = [{ kind = "users", tries = 1 }, { kind = "totp", user_from_previous = true, tries = 1 }]

[group.handoff]
kind = "exec"
program = "/bin/sh"
args = ['-c', 'printf "granted %s\r\n" "$DIALGATE_USER"']
"#,
    );
    s.add_user("alice", "s3cret");
    let out = s.cmd(&["user", "totp", "alice"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains("otpauth://totp/"), "{text}");
    let secret = text
        .lines()
        .find_map(|l| l.strip_prefix("secret: "))
        .expect("the secret is printed")
        .trim()
        .to_string();
    let key = totp::base32_decode(&secret).unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let code = totp::Totp::new(key).code_at(now).unwrap();

    let srv = s.start();
    let mut c = Caller::connect(srv.addr("two"));
    assert!(c.expect("Username: ", T));
    c.send(b"alice\r");
    assert!(c.expect("Password: ", T));
    c.send(b"s3cret\r");
    assert!(
        c.expect("Code: ", T),
        "{}",
        String::from_utf8_lossy(&c.seen)
    );
    c.send(format!("{code}\r").as_bytes());
    assert!(
        c.expect("granted alice", T),
        "{}",
        String::from_utf8_lossy(&c.seen)
    );
    assert!(c.wait_closed(T));
    // The same code again: refused (replay), even with the right password.
    let mut c = Caller::connect(srv.addr("two"));
    assert!(c.expect("Username: ", T));
    c.send(b"alice\r");
    assert!(c.expect("Password: ", T));
    c.send(b"s3cret\r");
    assert!(c.expect("Code: ", T));
    c.send(format!("{code}\r").as_bytes());
    assert!(c.wait_closed(T));
    assert!(!String::from_utf8_lossy(&c.seen).contains("granted"));
    let ok = s.records(&["--outcome", "success"]);
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0]["module"], "chain(users,totp)");
    assert_eq!(s.records(&["--outcome", "failure"]).len(), 1);
}
