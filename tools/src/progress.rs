//! Progress bars on stderr, shown only when stderr is a terminal: piped or redirected output
//! stays quiet.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// What a bar counts.
#[derive(Clone, Copy)]
pub enum Unit {
    /// Events, lines, items.
    Items,
    /// Bytes.
    Bytes,
}

/// A bar of `len` units (a spinner when `len` is unknown) labelled `what`; hidden unless
/// stderr is a terminal.
pub fn bar(len: Option<u64>, what: &str, unit: Unit) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let (pb, template) = match (len, unit) {
        (Some(n), Unit::Items) => (
            ProgressBar::new(n),
            "{msg} [{bar:40}] {human_pos}/{human_len} ({per_sec}, {eta} left)",
        ),
        (Some(n), Unit::Bytes) => (
            ProgressBar::new(n),
            "{msg} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left)",
        ),
        (None, Unit::Items) => (
            ProgressBar::new_spinner(),
            "{spinner} {msg} {human_pos} ({per_sec}, {elapsed})",
        ),
        (None, Unit::Bytes) => (
            ProgressBar::new_spinner(),
            "{spinner} {msg} {bytes} ({bytes_per_sec}, {elapsed})",
        ),
    };
    pb.set_draw_target(ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(template) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(what.to_string());
    if len.is_none() {
        pb.enable_steady_tick(Duration::from_millis(120));
    }
    pb
}

/// A spinner with elapsed time for work that reports no progress.
pub fn spinner(what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new_spinner();
    pb.set_draw_target(ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
        pb.set_style(style);
    }
    pb.set_message(what.to_string());
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}
