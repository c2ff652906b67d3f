//! Fuzz target `record`: see `evlog_fuzz::targets::record`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| evlog_fuzz::targets::record(data));
