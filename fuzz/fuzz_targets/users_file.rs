//! The users file and the PPP secrets file (`modules::userdb`) on arbitrary
//! text, through the loaders the server and `dialgate user list` use: never
//! a panic, an error names the file. The two readers of the users file
//! agree: when `UsersDb` accepts it, `list_users` lists every user, each
//! with a valid name, argon2 parameters within the limits, and the same
//! domain and disabled flag `UsersDb` has; the dummy hash that unknown
//! users are checked against stays within the limits too (a bad file must
//! not make every login allocate gigabytes). No password is checked here
//! (argon2 is far too slow for fuzzing). The secrets loader never panics
//! and its errors name the file.
//!
//! The text is written to a mode-0600 file in a directory of this process
//! under the system's temporary directory.
#![no_main]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use modules::userdb::{
    MAX_M_COST_KIB, MAX_P_COST, MAX_T_COST, SecretsDb, UsersDb, list_users, validate_user_name,
};

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("dialgate-fuzz-users-{}", std::process::id()));
        fs::create_dir_all(&d).expect("temporary directory");
        d
    })
}

fn write(name: &str, data: &[u8]) -> PathBuf {
    let p = dir().join(name);
    fs::write(&p, data).expect("write");
    fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).expect("chmod");
    p
}

fuzz_target!(|data: &[u8]| {
    let users = write("users.toml", data);
    let db = UsersDb::load(&users);
    let listed = list_users(&users);
    if let Err(e) = &db {
        assert!(e.to_string().contains("users.toml"), "{e}");
    }
    if let Ok(db) = &db {
        let listed = listed.expect("UsersDb accepted what list_users refuses");
        assert_eq!(listed.len(), db.len());
        for u in &listed {
            assert!(validate_user_name(&u.name).is_ok(), "{:?}", u.name);
            let r = db.get(&u.name).expect("a listed user is in the db");
            assert_eq!(r.params(), u.params);
            assert_eq!(r.domain, u.domain);
            assert_eq!(r.disabled, u.disabled);
            assert!(u.params.m_cost_kib <= MAX_M_COST_KIB);
            assert!(u.params.t_cost <= MAX_T_COST && u.params.p_cost <= MAX_P_COST);
        }
        let d = db.dummy_params();
        assert!(d.m_cost_kib <= MAX_M_COST_KIB && d.t_cost <= MAX_T_COST && d.p_cost <= MAX_P_COST);
    }
    let secrets = write("ppp-secrets.toml", data);
    if let Err(e) = SecretsDb::load(&secrets) {
        assert!(e.to_string().contains("ppp-secrets.toml"), "{e}");
    }
});
