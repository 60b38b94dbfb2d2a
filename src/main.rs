//! The `tagwatch` binary: parse the command line, set up logging, run one subcommand, map the outcome to
//! an exit code. Errors are printed once here, with their chain of causes.

use std::process::ExitCode;

use clap::Parser;
use tagwatch::cli::{Cli, LogFormat};
use tagwatch::commands;

fn main() -> ExitCode {
    // libgit2's start-up (OpenSSL loads the CA bundle: 35–45 ms) runs beside the command line, the
    // config, the runtime and the first registry requests; the first `Store` waits for it.
    tagwatch::git::initializing(std::thread::spawn(set_libgit2_options));
    let cli = Cli::parse();
    init_tracing(&cli);
    match commands::dispatch(&cli) {
        Ok(code) => code,
        Err(error) => {
            commands::say_error(&cli, &format!("{error:#}"));
            ExitCode::from(commands::EXIT_FAILURE)
        }
    }
}

/// Initializes libgit2 and sets its options: libgit2 waits forever on a server that accepts and then
/// stalls, and keeps every pack file of an open repository open, unless told otherwise; the values and
/// why are in `tagwatch::git`. The one place the crate allows `unsafe` (see `[lints]` in Cargo.toml).
#[allow(unsafe_code)]
fn set_libgit2_options() {
    // SAFETY: these change libgit2's process-global settings, which is only sound while no other thread
    // uses libgit2. This runs on the thread `main` spawns first, before any other: the async runtime and
    // every `spawn_blocking` come later, and nothing in `tagwatch` calls libgit2 before it opens a
    // `Store`, which first joins this thread (`tagwatch::git::initialized`). So nothing can read the
    // settings concurrently.
    let (connect, server) = tagwatch::git::network_timeouts();
    let result = unsafe {
        git2::opts::set_server_connect_timeout_in_milliseconds(connect)
            .and_then(|()| git2::opts::set_server_timeout_in_milliseconds(server))
            .and_then(|()| git2::opts::set_mwindow_file_limit(tagwatch::git::MAX_OPEN_PACK_FILES))
    };
    // Only a negative value is refused, and the values are positive.
    result.expect("libgit2 accepts the network timeouts and the pack file limit");
}

/// `-v` and `-vv` raise tagwatch's own events; the HTTP and git stacks stay at `warn` (`TAGWATCH_LOG`,
/// an `EnvFilter` directive, overrides both). Colour only when stderr is a terminal.
fn init_tracing(cli: &Cli) {
    let default_level = match cli.verbose {
        0 => "warn",
        1 => "warn,tagwatch=info",
        _ => "warn,tagwatch=debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("TAGWATCH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
