//! The one integration-test binary: end-to-end runs against real services (registry, git remotes, sshd)
//! that the helpers in `support` start on free loopback ports and stop on drop.

mod corpus;
mod forge;
mod invariants;
mod reconcile;
mod registry;
mod rewrite;
mod rewrite_properties;
mod set;
mod support;

mod git;
mod resolve;
mod schema;
mod semver_oracle;
mod validate;
