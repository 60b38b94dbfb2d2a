//! The one integration-test binary: end-to-end runs against real services (registry, git remotes, sshd)
//! that the helpers in `support` start on free loopback ports and stop on drop.

mod corpus;
mod daemon;
mod docs;
mod forge;
mod git;
mod hostile_registry;
mod invariants;
mod notify;
mod quickstart;
mod reconcile;
mod registry;
mod reliability;
mod resolve;
mod resolve_live;
mod rewrite;
mod rewrite_properties;
mod schema;
mod semver_oracle;
mod set;
mod ship;
mod soak;
mod support;
mod validate;
