//! The users and secrets files: `add_user`, `remove_user`, `list_users`.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use modules::userdb::MAX_PASSWORD_LEN;
use modules::{
    AddOptions, AddOutcome, Argon2Params, SecretsDb, UserFileError, UsersDb, add_user, list_users,
    remove_user,
};

const CHEAP: Argon2Params = Argon2Params {
    m_cost_kib: 64,
    t_cost: 1,
    p_cost: 1,
};

struct Files {
    _dir: tempfile::TempDir,
    users: PathBuf,
    secrets: PathBuf,
}

fn files() -> Files {
    let dir = tempfile::tempdir().unwrap();
    Files {
        users: dir.path().join("users.toml"),
        secrets: dir.path().join("secrets.toml"),
        _dir: dir,
    }
}

fn opts(chap: bool) -> AddOptions {
    AddOptions {
        allow_chap_md5: chap,
        argon2: CHEAP,
        domain: None,
    }
}

fn mode(p: &PathBuf) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn add_creates_both_files_with_the_nt_hash_of_rfc2759() {
    let f = files();
    let r = add_user(&f.users, &f.secrets, "User", "clientPass", &opts(false)).unwrap();
    assert_eq!(r, AddOutcome::Created);
    assert_eq!(mode(&f.secrets), 0o600);
    assert_eq!(mode(&f.users), 0o600);
    let text = std::fs::read_to_string(&f.secrets).unwrap();
    // RFC 2759 section 9.2: NtPasswordHash("clientPass").
    assert!(
        text.contains("nt_hash = \"44ebba8d5312b8d611474411f56989ae\""),
        "{text}"
    );
    assert!(
        !text.contains("clientPass"),
        "no cleartext without CHAP-MD5"
    );
    let s = SecretsDb::load(&f.secrets).unwrap();
    let u = s.get("User").unwrap();
    assert_eq!(hex::encode(*u.nt_hash), "44ebba8d5312b8d611474411f56989ae");
    assert!(u.chap_secret.is_none());

    let users = std::fs::read_to_string(&f.users).unwrap();
    assert!(users.contains("[users.User]"), "{users}");
    assert!(
        users.contains("hash = \"$argon2id$v=19$m=64,t=1,p=1$"),
        "{users}"
    );
    assert!(!users.contains("clientPass"));
    let db = UsersDb::load(&f.users).unwrap();
    assert_eq!(
        db.check(b"User", b"clientPass").0,
        modules::userdb::Check::Granted
    );
}

#[test]
fn chap_md5_keeps_the_cleartext_only_when_allowed() {
    let f = files();
    add_user(&f.users, &f.secrets, "bob", "pw1", &opts(true)).unwrap();
    let s = SecretsDb::load(&f.secrets).unwrap();
    assert_eq!(
        s.get("bob")
            .unwrap()
            .chap_secret
            .as_deref()
            .map(String::as_str),
        Some("pw1")
    );
    // Updating without CHAP-MD5 drops the cleartext.
    let r = add_user(&f.users, &f.secrets, "bob", "pw2", &opts(false)).unwrap();
    assert_eq!(r, AddOutcome::Updated);
    let s = SecretsDb::load(&f.secrets).unwrap();
    assert!(s.get("bob").unwrap().chap_secret.is_none());
    assert_eq!(
        *s.get("bob").unwrap().nt_hash,
        modules::nt_password_hash("pw2")
    );
    assert_eq!(mode(&f.secrets), 0o600);
}

#[test]
fn update_keeps_other_users_domain_and_disabled_flag() {
    let f = files();
    add_user(
        &f.users,
        &f.secrets,
        "alice",
        "a",
        &AddOptions {
            domain: Some("LAB".into()),
            ..opts(false)
        },
    )
    .unwrap();
    add_user(&f.users, &f.secrets, "bob", "b", &opts(false)).unwrap();
    assert!(modules::set_disabled(&f.users, "alice", true).unwrap());
    add_user(&f.users, &f.secrets, "alice", "a2", &opts(false)).unwrap();
    let list = list_users(&f.users).unwrap();
    let names: Vec<&str> = list.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["alice", "bob"]);
    assert_eq!(list[0].domain.as_deref(), Some("LAB"));
    assert!(list[0].disabled);
    assert!(!list[1].disabled);
    assert_eq!(list[1].params, CHEAP);
    assert!(!modules::set_disabled(&f.users, "nobody", true).unwrap());
}

#[test]
fn users_file_mode_is_kept_on_rewrite() {
    let f = files();
    add_user(&f.users, &f.secrets, "a", "a", &opts(false)).unwrap();
    std::fs::set_permissions(&f.users, std::fs::Permissions::from_mode(0o640)).unwrap();
    add_user(&f.users, &f.secrets, "b", "b", &opts(false)).unwrap();
    assert_eq!(mode(&f.users), 0o640);
    assert_eq!(mode(&f.secrets), 0o600);
}

#[test]
fn remove_takes_the_user_out_of_both_files() {
    let f = files();
    add_user(&f.users, &f.secrets, "a", "a", &opts(true)).unwrap();
    add_user(&f.users, &f.secrets, "b", "b", &opts(true)).unwrap();
    assert!(remove_user(&f.users, &f.secrets, "a").unwrap());
    assert!(!remove_user(&f.users, &f.secrets, "a").unwrap());
    assert_eq!(list_users(&f.users).unwrap().len(), 1);
    let s = SecretsDb::load(&f.secrets).unwrap();
    assert!(s.get("a").is_none());
    assert!(s.get("b").is_some());
}

#[test]
fn bad_names_and_passwords_are_refused_and_nothing_is_written() {
    let f = files();
    for name in ["", "a b", "a:b", "a\nb", "a\u{1b}", &"n".repeat(257)] {
        let e = add_user(&f.users, &f.secrets, name, "pw", &opts(false)).unwrap_err();
        assert!(matches!(e, UserFileError::BadName { .. }), "{name:?}: {e}");
    }
    for pw in ["", "a\rb", &"p".repeat(MAX_PASSWORD_LEN + 1)] {
        let e = add_user(&f.users, &f.secrets, "ok", pw, &opts(false)).unwrap_err();
        assert!(matches!(e, UserFileError::BadPassword(_)), "{e}");
    }
    let e = add_user(
        &f.users,
        &f.secrets,
        "ok",
        "pw",
        &AddOptions {
            domain: Some("x".repeat(16)),
            ..opts(false)
        },
    )
    .unwrap_err();
    assert!(matches!(e, UserFileError::BadDomain(_)));
    assert!(!f.users.exists());
    assert!(!f.secrets.exists());
    // The longest name fits the verdict's UserName.
    add_user(&f.users, &f.secrets, &"n".repeat(256), "pw", &opts(false)).unwrap();
}

#[test]
fn a_garbled_users_file_is_not_clobbered() {
    let f = files();
    std::fs::write(&f.users, "this is [not toml").unwrap();
    let e = add_user(&f.users, &f.secrets, "a", "a", &opts(false)).unwrap_err();
    assert!(matches!(e, UserFileError::Syntax { .. }), "{e}");
    assert!(e.to_string().contains("users.toml"), "{e}");
    assert_eq!(
        std::fs::read_to_string(&f.users).unwrap(),
        "this is [not toml"
    );
    assert!(list_users(&f.users).is_err());
}

#[test]
fn secrets_readable_by_others_are_refused() {
    let f = files();
    add_user(&f.users, &f.secrets, "a", "a", &opts(false)).unwrap();
    std::fs::set_permissions(&f.secrets, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = SecretsDb::load(&f.secrets).unwrap_err();
    assert!(
        matches!(e, UserFileError::InsecureMode { mode: 0o644, .. }),
        "{e}"
    );
    // The next add puts it back to 0600.
    add_user(&f.users, &f.secrets, "b", "b", &opts(false)).unwrap();
    assert_eq!(mode(&f.secrets), 0o600);
    assert_eq!(SecretsDb::load(&f.secrets).unwrap().len(), 2);
}

#[test]
fn no_temporary_files_are_left_behind() {
    let f = files();
    for i in 0..5 {
        add_user(
            &f.users,
            &f.secrets,
            &format!("u{i}"),
            "pw",
            &opts(i % 2 == 0),
        )
        .unwrap();
    }
    let dir = f.users.parent().unwrap();
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["secrets.toml", "users.toml", "users.toml.lock"]);
}

#[test]
fn concurrent_adds_lose_no_user() {
    let f = files();
    std::thread::scope(|s| {
        for i in 0..8 {
            let (u, sec) = (&f.users, &f.secrets);
            s.spawn(move || {
                add_user(u, sec, &format!("user{i}"), "pw", &opts(false)).unwrap();
            });
        }
    });
    assert_eq!(list_users(&f.users).unwrap().len(), 8);
    assert_eq!(SecretsDb::load(&f.secrets).unwrap().len(), 8);
}

#[test]
fn missing_files_list_empty_and_default_params_are_the_recommended_ones() {
    let f = files();
    assert!(list_users(&f.users).unwrap().is_empty());
    let d = Argon2Params::default();
    assert_eq!((d.m_cost_kib, d.t_cost, d.p_cost), (19 * 1024, 2, 1));
}
