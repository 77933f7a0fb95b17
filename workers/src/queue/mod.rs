//! The waiting queue's background side.

pub mod admitter;
