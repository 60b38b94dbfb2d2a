//! Test harness: starts real services on free loopback ports and stops them on drop.

pub mod proxy;
pub mod registry;
pub mod seed;
pub mod token_issuer;
