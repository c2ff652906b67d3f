//! Fuzz target `segment`: see `evlog_fuzz::targets::segment`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| evlog_fuzz::targets::segment(data));
