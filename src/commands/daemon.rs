//! `tagwatch daemon` (README.md "Using it", docs/daemon.md): load the config, start the daemon, and turn signals into its
//! controls — SIGHUP reloads `tagwatch.yaml` and the policies (an invalid one is reported with
//! `FILE:LINE:COL` and the old config stays), the first SIGTERM/SIGINT drains (exit 0 within
//! `daemon.shutdownGrace`), a second one exits at once.

use std::process::ExitCode;

use anyhow::Context as _;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::cli::Cli;
use crate::commands::EXIT_FAILURE;
use crate::commands::report::load_for_repositories;
use crate::config::Config;
use crate::environment::Environment;

pub fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    let environment = Environment::from_process();
    let config = match load_for_repositories(cli, "daemon", &environment) {
        Ok(config) => config,
        Err(code) => return Ok(code),
    };
    // The policies' ranges are parsed; the ≈ 3 MB of patterns that parsed them are not kept.
    crate::policy::semver::release_range_patterns();
    // One thread for the loop, the polls and the reconciles' async steps (their git, scan and plan
    // work runs on the blocking pool, the HTTP server on a thread of its own): threads waking each
    // other for every poll cost more than the polls (BENCHMARKS.md, "Idle daemon, 1,000 policies").
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let config_path = cli.config.clone();
    runtime.block_on(async move {
        let stop = CancellationToken::new();
        let (reloads, reload_inbox) = mpsc::unbounded_channel::<Config>();
        let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
        let mut interrupt = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
        let mut hangup = signal(SignalKind::hangup()).context("listening for SIGHUP")?;
        let signals = {
            let stop = stop.clone();
            let environment = environment.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = terminate.recv() => {}
                        _ = interrupt.recv() => {}
                        _ = hangup.recv() => {
                            let loaded = Config::load(config_path.as_deref(), &environment);
                            crate::policy::semver::release_range_patterns();
                            match loaded {
                                Ok(config) => {
                                    tracing::info!("SIGHUP: config loaded; reloading");
                                    let _ = reloads.send(config);
                                }
                                Err(diagnostics) => {
                                    for diagnostic in &diagnostics.0 {
                                        tracing::error!(problem = %diagnostic, "SIGHUP: the new config is invalid; the old one stays in force");
                                    }
                                }
                            }
                            continue;
                        }
                    }
                    if stop.is_cancelled() {
                        tracing::warn!("second signal: exiting at once");
                        std::process::exit(i32::from(EXIT_FAILURE));
                    }
                    tracing::info!("signal: stopping (a second signal exits at once)");
                    stop.cancel();
                }
            })
        };
        let result = crate::daemon::run(config, environment, stop, reload_inbox).await;
        signals.abort();
        result.map_err(anyhow::Error::from)
    })?;
    Ok(ExitCode::SUCCESS)
}
