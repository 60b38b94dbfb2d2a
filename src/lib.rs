//! tagwatch watches container registries and moves image references forward in a GitOps config
//! repository, changing only the bytes of the tag.
//!
//! Data flows one way: registries → policies → plan → edits → write-back.
//!
//! | module | owns | must not |
//! | --- | --- | --- |
//! | [`config`] | `tagwatch.yaml` and policy documents: file formats, JSON Schema, validation with `FILE:LINE:COL` diagnostics | read secrets or touch the network |
//! | [`policy`] | tag policies: node-semver ranges, filter/extract, ranking, windows, resolve over a `TagSource` | do I/O other than through `TagSource` |
//! | [`reference`](mod@reference) | image reference grammar and normalization | do I/O |
//! | [`source`] | the `TagSource` seam between policies and registries; offline tag lists | rank tags |
//! | [`registry`] | the OCI distribution client: auth, TLS, retries, pagination, digests | rank tags |
//! | [`manifest`] | finding image references in YAML files and rewriting their tag/digest bytes, byte-exactly | re-serialize YAML, regex-edit YAML, do I/O outside `manifest::files` |
//! | [`git`] | cache clones, fetch, commit, signing, push, history access (on `git2`) | decide what to change, force-push the target branch |
//! | [`forge`] | pull requests on GitHub, GitLab, Gitea, Forgejo: REST calls (open, update, close, reviews, checks, merge with an expected head, comments), rate limits, PR title/body/markers | touch git or decide what to bump or when to merge |
//! | [`notify`] | posting events (bumps, pull requests, holds, failures) to Slack-compatible or JSON webhooks: per-target queues, retries, one message per failure streak | block its caller, log a webhook URL, decide what happened |
//! | [`reconcile`] | the controller: a long-lived `Context` (tag cache, clones, forge clients, image index); per repository gather → pure `decide` (match, never downgrade, holds, rollbacks, windows, fail closed) → apply (commits, push retries, pull requests) | parse YAML, talk HTTP, drive libgit2, sleep between cycles, or render errors |
//! | [`error`] | the one failure classification (transient / rate-limited / permanent) every adapter maps onto | render messages or retry |
//! | [`fault`] | test-only fault points (debug builds): stop or pause the process at a named step of a write-back | do anything in a release build |
//! | [`backoff`] | the one retry schedule: exponential, jittered, capped, `Retry-After` clamped | sleep |
//! | [`secret`] | redacting secret type, URL masking | format a secret |
//! | [`environment`] | the process environment, read once | be read anywhere else |
//! | [`cli`] | the command-line surface (README.md "Using it") | hold behaviour |
//! | [`commands`] | one file per subcommand, wiring modules together | contain domain logic |

pub mod backoff;
pub mod cli;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod environment;
pub mod error;
pub mod fault;
pub mod forge;
pub mod git;
pub mod manifest;
pub mod notify;
pub mod policy;
pub mod reconcile;
pub mod reference;
pub mod registry;
pub mod secret;
pub mod source;
