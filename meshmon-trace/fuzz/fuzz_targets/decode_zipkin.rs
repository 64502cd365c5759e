//! Fuzzes the zipkin decoder with the shared property in `common.rs`.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use meshmon_trace::decode::Format;

fuzz_target!(|data: &[u8]| common::check(Format::Zipkin, data));
