//! Fuzz target `store`: see `evlog_fuzz::targets::store`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| evlog_fuzz::targets::store(data));
