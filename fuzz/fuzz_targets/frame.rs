//! Fuzz target `frame`: see `evlog_fuzz::targets::frame`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| evlog_fuzz::targets::frame(data));
