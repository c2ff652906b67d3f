//! Fuzz target `settings`: see `evlog_fuzz::targets::settings`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| evlog_fuzz::targets::settings(data));
