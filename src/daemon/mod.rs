//! `tagwatch daemon` (SPEC §8): schedules image polls and repository reconciles on a keyed work queue,
//! serves webhooks, metrics, health and status on one HTTP server, keeps a state directory, reloads on
//! SIGHUP and drains on SIGTERM/SIGINT.
//!
//! Must not: reach into the reconcile flow (it calls `reconcile::Context` and acts on the returned
//! `Next`), trust a webhook payload (an event only names an image to re-check), or block its own loop.

pub mod scheduler;
pub mod webhook;
