//! Fuzz target `snapshot`: see `evlog_fuzz::targets::snapshot`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| evlog_fuzz::targets::snapshot(data));
