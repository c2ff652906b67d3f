//! Fuzz target `checkpoint`: see `evlog_fuzz::targets::checkpoint`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| evlog_fuzz::targets::checkpoint(data));
