//! `dialgate`: the dial-in remote access server.

use dialgate::{config, dial, logcmd, serve, usercmd};

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A dial-in remote access server: a security dialog before PPP.
#[derive(Parser, Debug)]
#[command(name = "dialgate", version, about)]
struct Cli {
    /// The configuration file (TOML). Without it, the embedded defaults.
    #[arg(short, long, global = true, env = "DIALGATE_CONFIG")]
    config: Option<PathBuf>,
    /// Where the users file, secrets and event log live (created if missing).
    #[arg(long, global = true, env = "DIALGATE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Answer callers on every configured port until SIGTERM or SIGINT.
    Serve,
    /// Check the configuration and the modules it names, then exit.
    CheckConfig,
    /// Show the event log.
    Log(logcmd::LogArgs),
    /// Manage the users of the `users` module.
    User {
        #[command(subcommand)]
        command: usercmd::UserCommand,
    },
    /// Call a dialgate server (or any dial-in server): the dialog in the terminal or from a script, then PPP with a tun.
    Dial(dial::DialArgs),
    /// Internal: the process that runs a C module, started by `serve`.
    #[command(hide = true)]
    ModuleWorker {
        /// The module's shared object.
        #[arg(long)]
        module: PathBuf,
        /// The socket to the server.
        #[arg(long)]
        fd: i32,
    },
}

/// The data directory: `--data-dir`, else `/var/lib/dialgate` for root,
/// else `$XDG_DATA_HOME/dialgate` or `~/.local/share/dialgate`.
fn default_data_dir() -> PathBuf {
    if nix::unistd::Uid::effective().is_root() {
        return PathBuf::from("/var/lib/dialgate");
    }
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|x| !x.is_empty()) {
        return Path::new(&x).join("dialgate");
    }
    match std::env::var_os("HOME") {
        Some(h) => Path::new(&h).join(".local/share/dialgate"),
        None => PathBuf::from("dialgate-data"),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::ModuleWorker { module, fd } = &cli.command {
        // Nothing else of the server runs here: no runtime, no ports. The
        // worker logs plain lines to its stderr (`worker::run` installs
        // that), which the server reads into its own log.
        return match cmodule::worker::run(module, *fd) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("dialgate module-worker: {e}");
                ExitCode::from(1)
            }
        };
    }
    if let Command::Dial(args) = cli.command {
        // The caller's side needs no configuration file.
        return dial::main(args);
    }
    let data_dir = cli.data_dir.clone().unwrap_or_else(default_data_dir);
    let cfg = match config::load(cli.config.as_deref(), &data_dir) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("dialgate: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Command::Serve => serve::main(cfg),
        Command::CheckConfig => serve::check_config(&cfg),
        Command::Log(args) => logcmd::main(&cfg, args),
        Command::User { command } => usercmd::main(&cfg, command),
        Command::Dial(args) => dial::main(args),
        Command::ModuleWorker { .. } => ExitCode::from(2),
    }
}
