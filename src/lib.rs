//! tagwatch watches container registries and moves image references forward in a GitOps config
//! repository, changing only the bytes of the tag.
//!
//! Data flows one way: registries → policies → plan → edits → write-back.
//!
//! | module | owns | must not |
//! | --- | --- | --- |
//! | [`reference`] | image reference grammar and normalization | do I/O |
//! | [`source`] | the `TagSource` seam between policies and registries; offline tag lists | rank tags |
//! | [`manifest`] | finding image references in YAML files and rewriting their tag/digest bytes, byte-exactly | re-serialize YAML, regex-edit YAML, do I/O outside `manifest::files` |
//! | [`registry`] | the OCI distribution client: auth, TLS, retries, pagination, digests | rank tags |
//! | [`secret`] | redacting secret type, URL masking | format a secret |
//! | [`environment`] | the process environment, read once | be read anywhere else |
//! | [`cli`] | the command-line surface (SPEC §2) | hold behaviour |
//! | [`commands`] | one file per subcommand, wiring modules together | contain domain logic |

pub mod cli;
pub mod commands;
pub mod environment;
pub mod manifest;
pub mod reference;
pub mod registry;
pub mod secret;
pub mod source;
