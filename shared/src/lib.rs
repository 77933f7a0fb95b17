//! Seatline's shared core: what the HTTP API and the workers must agree on.
//!
//! # Layout
//! - [`config`]: typed settings read from the environment, shared by both binaries.
//! - [`db`]: the workspace migrator and the connection pool.
//! - [`kafka`]: topic names, topic creation, producer and consumer settings, message headers.
//! - [`metrics`]: the Prometheus recorder.
//! - [`messages`]: request messages (API → workers) and event payloads (outbox → consumers).
//! - [`domain`]: seat references, statuses and rejection reasons.
//! - [`events`]: the CloudEvents encoding of events on the event topics.
//! - [`group_commit`]: concurrent callers' writes gathered into one transaction.
//! - [`catalog`]: creating and reading concerts, dates and seats (admin API and `seed` share it).
//! - [`points`]: balances and the append-only point ledger.
//! - [`queue`]: the waiting queue's store: issuing tokens, positions, admission.
//! - [`telemetry`]: logging setup.
//! - [`shutdown`]: the SIGTERM / ctrl-c future both binaries stop on.

pub mod catalog;
pub mod config;
pub mod db;
pub mod domain;
pub mod events;
pub mod group_commit;
pub mod kafka;
pub mod messages;
pub mod metrics;
pub mod points;
pub mod queue;
pub mod shutdown;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;

pub use db::MIGRATOR;
