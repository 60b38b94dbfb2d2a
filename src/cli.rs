//! The command-line surface (README.md "Using it", a contract): argument types only, no behaviour.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// The config file read when `--config` is not given.
pub const DEFAULT_CONFIG_FILE: &str = "tagwatch.yaml";

/// `tagwatch --version`: the crate version and the commit it was built from (`build.rs`), e.g.
/// `tagwatch 0.1.0 (commit 4f3bde7…)`; `unknown` in debug builds and when a release build had
/// neither `.git` nor `TAGWATCH_COMMIT`.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("TAGWATCH_COMMIT"),
    ")"
);

#[derive(Debug, Parser)]
#[command(
    name = "tagwatch",
    version = VERSION,
    about = "Moves image references forward in GitOps repositories"
)]
pub struct Cli {
    /// Config file (default: ./tagwatch.yaml; a missing default file means an empty config).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// More detail: rejected candidates and their reasons, debug logs (-vv).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load the config and every policy; print each problem as FILE:LINE:COL: message.
    Validate,
    /// Evaluate one policy against its registry, or offline against a tag list.
    Resolve {
        /// A policy name from the config, or a path to a policy file.
        policy: String,
        /// Read candidate tags from FILE (one per line) instead of the registry.
        #[arg(long, value_name = "FILE")]
        tags_file: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
    /// Write the JSON Schemas of tagwatch.yaml and of policy documents (for editors).
    Schema {
        /// Directory to write tagwatch.schema.json and policy.schema.json into.
        #[arg(long, value_name = "DIR", default_value = "schema")]
        dir: PathBuf,
    },
    /// Fetch repositories and registries and print every bump; change nothing.
    Plan {
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
        /// Evaluate windows, soak times and minAge as of this instant (RFC 3339) instead of now.
        #[arg(long, value_name = "TIME", value_parser = parse_instant)]
        at: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// One full reconcile: plan, rewrite, commit, push or open/update pull requests.
    Run {
        /// Run one cycle and exit (the only mode; `tagwatch daemon` runs forever).
        #[arg(long, required = true)]
        once: bool,
    },
    /// Undo the latest bump of IMAGE: a commit or a pull request that restores every target it bumped.
    Rollback {
        /// The image, as policies name it (`ghcr.io/acme/api`).
        image: String,
        /// Only in this repository (default: every repository with a bump of IMAGE).
        #[arg(long, value_name = "NAME")]
        repository: Option<String>,
        /// Restore this version (`tag` or `tag@digest`) instead of the one before the bump.
        #[arg(long, value_name = "REF")]
        to: Option<String>,
    },
    /// Run forever: schedules, webhooks, metrics, health; stops cleanly on SIGTERM/SIGINT.
    Daemon,
    /// What a running daemon knows (or, without one, the state it kept).
    Status {
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
    /// Rewrite every reference to IMAGE under PATHs to REF, byte-exactly.
    Set {
        /// IMAGE=REF, e.g. nginx=1.27.1 or ghcr.io/acme/api=ghcr.io/acme/api:2.0@sha256:…
        assignment: String,
        /// Files or directories (default: .).
        paths: Vec<PathBuf>,
        /// Print a unified diff instead of writing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// An RFC 3339 instant (`2026-11-26T09:00:00Z`, `2026-11-26T10:00:00+01:00`).
fn parse_instant(text: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|instant| instant.with_timezone(&chrono::Utc))
        .map_err(|error| format!("not an RFC 3339 time ({error}); e.g. 2026-11-26T09:00:00Z"))
}
