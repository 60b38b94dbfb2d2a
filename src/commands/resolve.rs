//! `tagwatch resolve POLICY [--tags-file FILE] [--output json]`: evaluate one policy against its
//! registry, or offline against a tag list, and print the chosen `tag` or `tag@digest`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use chrono::Utc;

use crate::cli::{Cli, OutputFormat};
use crate::config::{self, Config};
use crate::environment::Environment;
use crate::policy::{self, Policy, Rejection, Resolution, ResolveError};
use crate::registry::RegistryClient;
use crate::source::TagList;

use super::{EXIT_FAILURE, EXIT_USAGE};

pub fn run(
    cli: &Cli,
    policy_argument: &str,
    tags_file: Option<&Path>,
    output: OutputFormat,
) -> anyhow::Result<ExitCode> {
    let environment = Environment::from_process();
    let config = match Config::load(cli.config.as_deref(), &environment) {
        Ok(config) => config,
        Err(diagnostics) => {
            eprintln!("{diagnostics}");
            return Ok(ExitCode::from(EXIT_USAGE));
        }
    };
    let policy = match find(&config, policy_argument) {
        Ok(policy) => policy,
        Err(message) => {
            eprintln!("error: {message}");
            return Ok(ExitCode::from(EXIT_USAGE));
        }
    };
    let _span = tracing::info_span!("policy", policy = %policy.name, image = %policy.image.name())
        .entered();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let outcome = match tags_file {
        Some(file) => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading the tag list {}", file.display()))?;
            let source = TagList::parse(&text);
            // A tag list has no creation times or digests: rank offline, say what was left out.
            let mut offline = policy.clone();
            if !offline.min_age.is_zero() {
                eprintln!(
                    "warning: minAge is not checked against a tag list (it needs the registry)"
                );
                offline.min_age = std::time::Duration::ZERO;
            }
            if offline.digest {
                eprintln!(
                    "warning: the digest is not resolved from a tag list (it needs the registry)"
                );
                offline.digest = false;
            }
            runtime.block_on(policy::resolve(&offline, &source, Utc::now()))
        }
        None => {
            let client = RegistryClient::new(config.registries.clone(), &environment)
                .context("setting up the registry client")?;
            runtime.block_on(policy::resolve(&policy, &client, Utc::now()))
        }
    };
    match outcome {
        Ok(resolution) => {
            if cli.verbose > 0 {
                print_rejected(&resolution.rejected);
            }
            print_resolution(&policy, &resolution, output)?;
            Ok(ExitCode::SUCCESS)
        }
        Err(ResolveError::NoCandidate {
            policy: name,
            summary,
            rejected,
        }) => {
            if cli.verbose > 0 {
                print_rejected(&rejected);
            }
            eprintln!("error: no tag qualifies for policy {name}: {summary}");
            if cli.verbose == 0 {
                eprintln!("hint: run with --verbose to see every rejected tag and why");
            }
            Ok(ExitCode::from(EXIT_FAILURE))
        }
        Err(error) => Err(error.into()),
    }
}

/// A policy name from the config, or a path to a policy file holding exactly one policy.
fn find(config: &Config, argument: &str) -> Result<Policy, String> {
    let path = Path::new(argument);
    if path.is_file() {
        let policies = config::load_policies(&[PathBuf::from(path)]).map_err(|d| d.to_string())?;
        return match policies.as_slice() {
            [policy] => Ok(policy.clone()),
            [] => Err(format!("{argument} holds no policy")),
            many => Err(format!(
                "{argument} holds {} policies ({}); name one of them (with --config pointing at a config that lists the file)",
                many.len(),
                names(many)
            )),
        };
    }
    match config.policy(argument) {
        Some(policy) => Ok(policy.clone()),
        None if config.policies.is_empty() => Err(format!(
            "unknown policy {argument:?}: the config defines no policies (give a policy name from the config's policy paths, or a path to a policy file)"
        )),
        None => Err(format!(
            "unknown policy {argument:?}; known policies: {}",
            names(&config.policies)
        )),
    }
}

fn names(policies: &[Policy]) -> String {
    let mut names: Vec<&str> = policies.iter().map(|p| p.name.as_str()).collect();
    names.sort_unstable();
    names.join(", ")
}

fn print_rejected(rejected: &[Rejection]) {
    let mut stderr = std::io::stderr().lock();
    for rejection in rejected {
        // Rejection's Display escapes the tag: a registry cannot inject text into the terminal.
        let _ = writeln!(stderr, "rejected {rejection}");
    }
}

fn print_resolution(
    policy: &Policy,
    resolution: &Resolution,
    output: OutputFormat,
) -> anyhow::Result<()> {
    // Both values were checked against the tag and digest grammars by `policy::resolve`.
    let chosen = match &resolution.digest {
        Some(digest) => format!("{}@{digest}", resolution.tag),
        None => resolution.tag.clone(),
    };
    let mut stdout = std::io::stdout().lock();
    match output {
        OutputFormat::Text => writeln!(stdout, "{chosen}")?,
        OutputFormat::Json => {
            let image = policy.image.name();
            let object = serde_json::json!({
                "policy": policy.name,
                "image": image,
                "tag": resolution.tag,
                "digest": resolution.digest,
                "ref": format!("{image}:{chosen}"),
            });
            writeln!(stdout, "{object}")?;
        }
    }
    Ok(())
}
