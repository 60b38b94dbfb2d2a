//! The `tagwatch` binary: parse the command line, set up logging, run one subcommand, map the outcome to
//! an exit code. Errors are printed once here, with their chain of causes.

use std::process::ExitCode;

use clap::Parser;
use tagwatch::cli::{Cli, Command, LogFormat};
use tagwatch::commands;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Before any thread starts: a thread that allocates before the limit gets an arena of its own,
    // which every later thread then shares round-robin with the main one.
    if matches!(cli.command, Command::Daemon) {
        limit_malloc_arenas();
    }
    // libgit2's start-up (OpenSSL loads the CA bundle: 35–45 ms) runs beside the config, the runtime
    // and the first registry requests; the first `Store` waits for it.
    tagwatch::git::initializing(std::thread::spawn(set_libgit2_options));
    init_tracing(&cli);
    match commands::dispatch(&cli) {
        Ok(code) => code,
        Err(error) => {
            commands::say_error(&cli, &format!("{error:#}"));
            ExitCode::from(commands::EXIT_FAILURE)
        }
    }
}

/// Initializes libgit2 and sets its options (`tagwatch::git::set_process_options`: network timeouts,
/// open pack files, object cache, the TCP stream with `TCP_NODELAY`). One of the two places the binary
/// allows `unsafe` (see `[lints]` in Cargo.toml; the other is `limit_malloc_arenas`).
#[allow(unsafe_code)]
fn set_libgit2_options() {
    // SAFETY: this runs on the thread `main` spawns first, before any other: the async runtime and
    // every `spawn_blocking` come later, and nothing in `tagwatch` calls libgit2 before it opens a
    // `Store`, which first joins this thread (`tagwatch::git::initialized`). So nothing uses libgit2
    // while the settings change.
    let result = unsafe { tagwatch::git::set_process_options() };
    result.expect("libgit2 accepts the network timeouts, the pack file limit, the cache setting and the stream");
}

/// The daemon's memory: one glibc malloc arena, and free memory above 128 KiB at the heap's top given
/// back. By default glibc gives every thread that allocates its own arena (up to eight per core) and
/// keeps what each one freed: the daemon's `spawn_blocking` threads (git, scans, plans) each held the
/// peak of a re-read of a large repository for good, 14 MB more RSS after the first re-read of 1,000
/// files; with one arena the RSS stays flat (BENCHMARKS.md, "Idle daemon, 1,000 policies"). The
/// threads that allocate at once are few (the runtime's one thread and a handful of blocking
/// ones), so sharing the arena's lock costs nothing measurable. Other commands keep glibc's defaults.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn limit_malloc_arenas() {
    use std::ffi::c_int;
    // glibc's `<malloc.h>`, declared here rather than through the `libc` crate: two constants and one
    // function, where a direct `libc` dependency would change the features the dependency tree is
    // built with.
    const M_TRIM_THRESHOLD: c_int = -1;
    const M_ARENA_MAX: c_int = -8;
    unsafe extern "C" {
        fn mallopt(param: c_int, value: c_int) -> c_int;
    }
    // SAFETY: `mallopt` only changes the allocator's tunables, under glibc's own lock; it may be
    // called from any thread at any time, and a refused value (it returns 0) leaves the default.
    unsafe {
        mallopt(M_ARENA_MAX, 1);
        mallopt(M_TRIM_THRESHOLD, 128 * 1024);
    }
    // The trim threshold only gives back free memory at the heap's top. Free pages inside the heap
    // (what a repository re-read leaves between the long-lived cache entries) stay resident until
    // `malloc_trim` hands them back: ≈ 2.3 MB of the idle daemon's RSS after its start-up
    // reconcile. Once a minute, on a thread that does nothing else (sub-millisecond each time).
    let trimming = std::thread::Builder::new()
        .name("tagwatch-trim".to_string())
        .spawn(|| {
            unsafe extern "C" {
                fn malloc_trim(pad: usize) -> c_int;
            }
            loop {
                std::thread::sleep(std::time::Duration::from_secs(60));
                // SAFETY: `malloc_trim` takes the arena's lock like any allocation; it may run
                // beside the other threads' allocations at any time.
                unsafe {
                    malloc_trim(0);
                }
            }
        });
    // Without the thread the memory is only given back later (or not): nothing to stop for.
    drop(trimming);
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}

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
