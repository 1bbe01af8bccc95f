//! The TOTP store (`modules::totp_module::parse_store`, the parser the
//! `totp` module runs when a dialog loads the store) on arbitrary text:
//! never panics; an error names the store; an accepted store lists valid,
//! distinct user names in order.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use modules::totp_module::parse_store;
use modules::userdb::validate_user_name;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("/fuzz/totp.toml");
    match parse_store(text, path) {
        Err(e) => assert!(e.to_string().contains("/fuzz/totp.toml"), "{e}"),
        Ok(users) => {
            assert!(
                users.windows(2).all(|w| w[0].0 < w[1].0),
                "not sorted and distinct"
            );
            for (name, _) in &users {
                assert!(validate_user_name(name).is_ok(), "{name:?}");
            }
        }
    }
});
