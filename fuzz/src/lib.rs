//! The fuzz targets of evlog, as plain functions over bytes (see `targets`). The binaries in
//! `fuzz_targets/` hand libFuzzer's inputs to them; `tests/fuzz_regressions.rs` in the main
//! crate replays committed crash inputs through the same file.

pub mod targets;
