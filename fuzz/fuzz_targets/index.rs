//! Fuzz target `index`: see `evlog_fuzz::targets::index`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| evlog_fuzz::targets::index(data));
