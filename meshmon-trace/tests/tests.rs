//! meshmon-trace's integration tests, one binary (as ripgrep's `tests/tests.rs`): each
//! module is one area.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// Tests are an edge: they read the corpora and the environment.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod alloc;
mod captures;
mod codecs;
mod corpus;
mod oracle;
mod receiver;
