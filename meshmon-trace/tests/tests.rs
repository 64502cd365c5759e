//! meshmon-trace's integration tests, one binary (as ripgrep's `tests/tests.rs`): each
//! module is one area.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod alloc;
mod captures;
mod codecs;
mod corpus;
mod receiver;
