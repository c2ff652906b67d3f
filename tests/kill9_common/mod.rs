//! The parent/child protocol of the kill -9 tests of the bus and of subscriptions (and the
//! child's panic hook, which `kill9.rs` uses too).
//!
//! The child is the test binary itself, run on a store directory. It prints its reports on
//! stdout as whole lines starting `@@` (a line shorter than `PIPE_BUF` is written to the pipe
//! at once, so a kill never leaves half a report), and `@@R` once it is handling events. The
//! parent kills it with SIGKILL at a random moment after that line (a few children at a random
//! moment after their start instead, so that kills land while a child opens the store and
//! resumes too), and counts a kill only if SIGKILL ended a child that had printed `@@R`. A child
//! that ends any other way (an exit of its own, a panic, another signal) fails the test, its
//! stderr shown: it was not what the test meant to kill.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The report (after `@@`) a child prints once it is handling events.
pub const READY: &str = "R";

/// SIGKILL's number (9 on every Unix; written out to avoid a libc dependency).
const SIGKILL: i32 = 9;

/// How long a child may take to print `@@R`.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The number of kills a run must reach (`kills_env`, or `default`) and a seed from the clock.
pub fn kills_and_seed(kills_env: &str, default: u64) -> (u64, u64) {
    let kills = std::env::var(kills_env)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{kills_env} is a number"))
        })
        .unwrap_or(default);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    (kills, seed)
}

/// The most rounds (children) a run may take to reach `kills` kills: a run that gets there has
/// failed to kill its children while they handle events.
pub fn round_cap(kills: u64) -> u64 {
    kills * 3 / 2 + 50
}

/// Fails the test if a run took `round_cap(target)` rounds without reaching `target` kills.
pub fn assert_under_cap(round: u64, kills: u64, target: u64, seed: u64) {
    assert!(
        round < round_cap(target),
        "seed {seed}: {round} rounds ran but only {kills} of the {target} children meant to be \
         killed were killed by SIGKILL while handling events; giving up"
    );
}

/// This test binary run as the child of the kill -9 test `test_name`, on the store in `dir`
/// (passed in `dir_env`).
pub fn kill9_child(test_name: &str, dir_env: &str, dir: &Path) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([test_name, "--exact", "--nocapture", "--test-threads", "1"])
        .env(dir_env, dir);
    cmd
}

/// When the parent kills a child.
#[derive(Debug, Clone, Copy)]
pub enum Kill {
    /// This long after the child printed `@@R`.
    AfterReady(Duration),
    /// This long after the child was started, whether or not it printed `@@R`.
    AfterStart(Duration),
    /// Never: the child must end by itself, with exit code 0.
    Never,
}

/// A child's reports as they come, and its stderr once it ends.
pub struct Reports {
    /// The text after `@@` of each whole report line.
    pub rx: mpsc::Receiver<String>,
    /// Ends when the child's stdout closes.
    pub reader: std::thread::JoinHandle<()>,
    /// Everything the child wrote on stderr.
    pub err_reader: std::thread::JoinHandle<String>,
}

/// Reads the reports of `child` (spawned with stdout and stderr piped) on two threads: each
/// whole line's text after `@@` (libtest may print before it on the same line), and stderr.
pub fn read_reports(child: &mut std::process::Child) -> Reports {
    let stdout = child.stdout.take().expect("stdout piped");
    let mut stderr = child.stderr.take().expect("stderr piped");
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        let mut line = String::new();
        loop {
            line.clear();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                // Reports start at "@@" (libtest may print before them on the same line).
                Ok(_) if line.ends_with('\n') => {
                    if let Some(at) = line.find("@@")
                        && tx.send(line[at + 2..].trim_end().to_owned()).is_err()
                    {
                        return;
                    }
                }
                // A line without its newline was cut by the kill: not a report.
                Ok(_) => return,
            }
        }
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    Reports {
        rx,
        reader,
        err_reader,
    }
}

/// What the parent learned from one child.
pub struct ChildRun {
    /// The text after `@@` of each report line, in order (`@@R` included).
    pub lines: Vec<String>,
    /// SIGKILL ended the child after it printed `@@R`.
    pub killed_running: bool,
}

/// Runs `cmd` (its stdio is set here), kills it as `kill` says, and checks how it ended: by the
/// parent's SIGKILL, or, for [`Kill::Never`], with exit code 0. Anything else fails the test,
/// with `what` (the round, the seed), the exit status and the child's stderr in the message.
pub fn run_child(mut cmd: Command, kill: Kill, what: &str) -> ChildRun {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn the child");
    let started = Instant::now();
    let Reports {
        rx,
        reader,
        err_reader,
    } = read_reports(&mut child);
    let mut lines = Vec::new();
    let mut never_ready = false;
    match kill {
        Kill::Never => {}
        Kill::AfterStart(after) => {
            std::thread::sleep(after.saturating_sub(started.elapsed()));
            let _ = child.kill();
        }
        Kill::AfterReady(after) => {
            // Until `@@R`, or until the child's stdout closes (it ended: the check below fails).
            loop {
                match rx.recv_timeout(READY_TIMEOUT) {
                    Ok(l) => {
                        let ready = l == READY;
                        lines.push(l);
                        if ready {
                            std::thread::sleep(after);
                            break;
                        }
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        never_ready = true;
                        break;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            }
            let _ = child.kill();
        }
    }
    let status = child.wait().expect("wait for the child");
    reader.join().expect("the stdout reader");
    lines.extend(rx.try_iter());
    let stderr = err_reader.join().expect("the stderr reader");
    assert!(
        !never_ready,
        "{what}: the child did not print @@R within {READY_TIMEOUT:?}; its stderr:\n{stderr}"
    );
    let killed = status.signal() == Some(SIGKILL);
    match kill {
        Kill::Never => assert!(
            status.success(),
            "{what}: the last child failed ({status}); its stderr:\n{stderr}"
        ),
        Kill::AfterStart(_) | Kill::AfterReady(_) => assert!(
            killed,
            "{what}: the child ended by itself ({status}) instead of by the parent's SIGKILL; \
             its stderr:\n{stderr}"
        ),
    }
    let killed_running = killed && lines.iter().any(|l| l == READY);
    ChildRun {
        lines,
        killed_running,
    }
}

/// In a child: a panic whose message `expected` accepts is silent (a handler's planned panic,
/// which the code under test catches); any other is printed (message and place only: the
/// default hook's backtrace can take long enough for the kill to come first) and aborts the
/// child, so the parent sees SIGABRT instead of SIGKILL and fails, even if the panic was on a
/// thread whose end nothing would notice before the kill.
pub fn abort_on_unexpected_panic(expected: fn(&str) -> bool) {
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str));
        if msg.is_some_and(expected) {
            return;
        }
        let thread = std::thread::current();
        eprintln!(
            "child: thread {:?} panicked at {}: {}",
            thread.name().unwrap_or("?"),
            info.location()
                .map_or_else(|| "?".to_owned(), |l| l.to_string()),
            msg.unwrap_or("(a payload that is not a string)")
        );
        std::process::abort();
    }));
}
