//! `dialgate user`: add, remove and list the users of the `users` module.

use std::io::BufRead;
use std::process::ExitCode;

use clap::Subcommand;
use zeroize::Zeroizing;

use crate::config::Config;

/// The `user` subcommands.
#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Add a user, or set a user's password (asked twice, not echoed).
    Add {
        /// The user name callers type.
        name: String,
        /// Also keep the cleartext secret CHAP-MD5 needs (in the secrets file,
        /// readable only by the server). Off by default.
        #[arg(long)]
        allow_chap_md5: bool,
        /// Read the password from the first line of standard input instead
        /// of the terminal (for scripts).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Remove a user.
    Remove {
        /// The user name.
        name: String,
    },
    /// List the users.
    List,
    /// Enrol a user for the `totp` module: prints the otpauth:// URI and a QR
    /// code to scan with an authenticator app.
    Totp {
        /// The user name.
        name: String,
        /// Also require a PIN typed before the code (token-card style); asked
        /// twice, not echoed.
        #[arg(long)]
        pin: bool,
        /// The issuer shown by authenticator apps.
        #[arg(long, default_value = "dialgate")]
        issuer: String,
        /// Remove the user's TOTP secret instead.
        #[arg(long)]
        remove: bool,
    },
}

/// Asks for a secret on the terminal with echo off. Echo is turned off
/// *before* the prompt is shown, so nothing typed right after the prompt
/// appears, and it is restored on every path.
fn prompt_secret(prompt: &str) -> std::io::Result<String> {
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    use std::io::{BufRead, Write};
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")?;
    let saved = tcgetattr(&tty).map_err(std::io::Error::from)?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    quiet.local_flags.insert(LocalFlags::ECHONL);
    tcsetattr(&tty, SetArg::TCSAFLUSH, &quiet).map_err(std::io::Error::from)?;
    struct Restore<'a>(&'a std::fs::File, nix::sys::termios::Termios);
    impl Drop for Restore<'_> {
        fn drop(&mut self) {
            let _ = tcsetattr(self.0, SetArg::TCSANOW, &self.1);
        }
    }
    let _restore = Restore(&tty, saved);
    let mut w = &tty;
    w.write_all(prompt.as_bytes())?;
    w.flush()?;
    let mut line = Zeroizing::new(String::new());
    std::io::BufReader::new(&tty).read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

fn read_password(from_stdin: bool) -> Result<Zeroizing<String>, String> {
    if from_stdin {
        let mut line = Zeroizing::new(String::new());
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
        let pw = Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_string());
        return Ok(pw);
    }
    let first =
        Zeroizing::new(prompt_secret("Password: ").map_err(|e| {
            format!("cannot read the password: {e} (use --password-stdin in scripts)")
        })?);
    let second = Zeroizing::new(
        prompt_secret("Again: ").map_err(|e| format!("cannot read the password: {e}"))?,
    );
    if *first != *second {
        return Err("the two passwords differ; nothing changed".into());
    }
    Ok(first)
}

/// Runs a `user` subcommand.
pub fn main(cfg: &Config, cmd: UserCommand) -> ExitCode {
    match run(cfg, cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dialgate user: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(cfg: &Config, cmd: UserCommand) -> Result<(), String> {
    std::fs::create_dir_all(&cfg.data_dir).map_err(|e| {
        format!(
            "cannot create the data directory {}: {e}",
            cfg.data_dir.display()
        )
    })?;
    match cmd {
        UserCommand::Add {
            name,
            allow_chap_md5,
            password_stdin,
        } => {
            let pw = read_password(password_stdin)?;
            if pw.is_empty() {
                return Err("an empty password is not allowed; nothing changed".into());
            }
            let opts = modules::userdb::AddOptions {
                allow_chap_md5,
                ..Default::default()
            };
            let what =
                modules::userdb::add_user(&cfg.users_file, &cfg.secrets_file, &name, &pw, &opts)
                    .map_err(|e| e.to_string())?;
            let what = match what {
                modules::userdb::AddOutcome::Created => "added",
                modules::userdb::AddOutcome::Updated => "updated",
            };
            println!(
                "user {name} {what} in {} (PPP secrets in {})",
                cfg.users_file.display(),
                cfg.secrets_file.display()
            );
            Ok(())
        }
        UserCommand::Remove { name } => {
            let found = modules::userdb::remove_user(&cfg.users_file, &cfg.secrets_file, &name)
                .map_err(|e| e.to_string())?;
            if !found {
                return Err(format!("no user {name}"));
            }
            println!("user {name} removed");
            Ok(())
        }
        UserCommand::Totp {
            name,
            pin,
            issuer,
            remove,
        } => {
            let store = cfg.data_dir.join("totp.toml");
            if remove {
                let found = modules::totp_module::remove_totp_user(&store, &name)
                    .map_err(|e| e.to_string())?;
                if !found {
                    return Err(format!("no TOTP secret for {name}"));
                }
                println!("TOTP secret of {name} removed");
                return Ok(());
            }
            let pin = if pin {
                let first = Zeroizing::new(
                    prompt_secret("PIN: ").map_err(|e| format!("cannot read the PIN: {e}"))?,
                );
                let again = Zeroizing::new(
                    prompt_secret("Again: ").map_err(|e| format!("cannot read the PIN: {e}"))?,
                );
                if *first != *again {
                    return Err("the two PINs differ; nothing changed".into());
                }
                Some(first)
            } else {
                None
            };
            let opts = modules::totp_module::EnrollOptions {
                issuer: &issuer,
                pin: pin.as_deref().map(String::as_str),
                ..Default::default()
            };
            let e = modules::totp_module::enroll(&store, &name, opts).map_err(|e| e.to_string())?;
            println!("TOTP secret for {name} saved in {}", store.display());
            println!("secret: {}", e.secret_base32.as_str());
            println!("uri:    {}", e.uri.as_str());
            match modules::totp_module::qr_terminal(&e.uri) {
                Ok(qr) => println!("{qr}"),
                Err(err) => eprintln!("(no QR code: {err})"),
            }
            Ok(())
        }
        UserCommand::List => {
            for u in modules::userdb::list_users(&cfg.users_file).map_err(|e| e.to_string())? {
                let mut line = u.name.clone();
                if let Some(d) = &u.domain {
                    line.push_str(&format!(" domain={d}"));
                }
                if u.disabled {
                    line.push_str(" (disabled)");
                }
                println!("{line}");
            }
            Ok(())
        }
    }
}
