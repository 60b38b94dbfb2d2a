//! Test harness: starts real services on free loopback ports and stops them on drop.

pub mod daemon;
pub mod fake_forge;
pub mod fake_kube;
pub mod fault_proxy;
pub mod git_http;
pub mod kube_schema;
pub mod ports;
pub mod proxy;
pub mod registry;
pub mod seed;
pub mod sshd;
pub mod token_issuer;
