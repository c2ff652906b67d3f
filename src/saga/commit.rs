//! The committers: two threads per manager that append the saga transitions its drivers ask
//! for, as many as are waiting in one [`Store::append_multi`] (one frame, one fsync), each
//! still checked against its own expected version. A transition whose stream moved on is
//! refused alone ([`SagaError::Lost`]); the others of its batch are appended.
//!
//! So 64 sagas advancing at once cost about one durable append per round of their steps, not
//! 64, and no tokio worker waits for an fsync.
//!
//! The two threads take turns: one gathers transitions while the other's append waits for its
//! fsync, then appends them (its frame joins the next fsync of the store's group commit). The
//! sagas fall into two groups whose steps run while the other group's records are made
//! durable, as plain appenders' writes overlap the fsync under way; with one thread, every
//! saga would wait for the same fsync and the processors would idle through it. A saga has at
//! most one transition asked at a time (its driver waits for the answer), so the two threads
//! never append two transitions of one saga at once; two managers driving one saga already
//! race the same way, and the expected versions decide.

use std::collections::HashSet;
use std::hash::BuildHasherDefault;
use std::sync::mpsc;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::error::Error;
use crate::event::{AppendResult, EventData, ExpectedVersion};
use crate::index::fasthash::FastHasher;
use crate::saga::error::SagaError;
use crate::store::Store;

/// Committer threads per manager (see the module's documentation).
const COMMITTERS: usize = 2;
/// Most transitions in one append.
const MAX_BATCH_TRANSITIONS: usize = 256;
/// Most payload bytes in one append (a single larger transition goes alone).
const MAX_BATCH_PAYLOAD_BYTES: usize = 8 << 20;
/// Longest wait for more transitions before an append (see `run`): a bound on the latency the
/// gathering adds when a slow fsync made the last append long.
const MAX_GATHER: Duration = Duration::from_millis(2);

/// A set of stream ids, with the store's fast hasher.
type StreamSet<'a> = HashSet<&'a str, BuildHasherDefault<FastHasher>>;

/// Where a transition's answer goes, and the answer.
type Reply = (
    oneshot::Sender<Result<AppendResult, Error>>,
    Result<AppendResult, Error>,
);

struct Request {
    stream: String,
    expected: ExpectedVersion,
    events: Vec<EventData>,
    reply: oneshot::Sender<Result<AppendResult, Error>>,
}

/// Appends saga transitions through the committer threads. A clone sends to the same threads,
/// which end when every clone is dropped.
#[derive(Clone)]
pub(crate) struct Committer {
    tx: mpsc::Sender<Request>,
}

impl Committer {
    /// Starts the committer threads of `store`. They do not keep the store open: once the
    /// application, the manager and the sagas' tasks have dropped it, what is still asked gets
    /// [`Error::Closed`].
    pub fn start(store: &Arc<Store>) -> Committer {
        let (tx, rx) = mpsc::channel();
        spawn_threads(store, rx);
        Committer { tx }
    }

    /// Appends `events` to `stream` if it is at `expected`, and returns once they are durable.
    /// A wrong expected version is [`SagaError::Lost`]: another manager moved the saga on.
    pub async fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<EventData>,
    ) -> Result<AppendResult, SagaError> {
        let (reply, rx) = oneshot::channel();
        let request = Request {
            stream: stream.to_owned(),
            expected,
            events,
            reply,
        };
        self.tx.send(request).map_err(|_| SagaError::ShutDown)?;
        match rx.await.map_err(|_| SagaError::ShutDown)? {
            Ok(r) => Ok(r),
            Err(Error::WrongExpectedVersion { .. }) => Err(SagaError::Lost {
                stream: stream.to_owned(),
                expected: match expected {
                    ExpectedVersion::Exact(v) => Some(v),
                    _ => None,
                },
            }),
            Err(e) => Err(e.into()),
        }
    }
}

/// Starts the committer threads, which take the transitions from `rx`.
fn spawn_threads(store: &Arc<Store>, rx: mpsc::Receiver<Request>) {
    let rx = Arc::new(Mutex::new(rx));
    for _ in 0..COMMITTERS {
        let (store, rx) = (Arc::downgrade(store), rx.clone());
        std::thread::Builder::new()
            .name("evlog-saga-commit".into())
            .spawn(move || run(&store, &rx))
            .expect("spawn a saga committer thread");
    }
}

/// One committer thread: in turn with the others, gathers the transitions waiting (holding
/// the receiver), then appends them and answers.
fn run(store: &Weak<Store>, rx: &Mutex<mpsc::Receiver<Request>>) {
    let mut deferred: Vec<Request> = Vec::new();
    // This thread's last append's size and time: the gathering of its next one is sized on
    // them.
    let (mut last_batch, mut last_commit) = (1usize, Duration::ZERO);
    loop {
        let mut batch = std::mem::take(&mut deferred);
        // With transitions deferred, gather only if the other thread is not gathering (it may
        // be waiting for a first transition): they are not kept waiting for new ones.
        let rx = if batch.is_empty() {
            Some(rx.lock())
        } else {
            rx.try_lock()
        };
        if let Some(rx) = rx {
            if batch.is_empty() {
                match rx.recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => return,
                }
            }
            gather(&rx, &mut batch, last_batch, last_commit);
        }
        // (The receiver is released: the other thread gathers while this one appends.)
        // A stream appears once per append: a second transition of one stream (two starts of
        // one id) waits for this thread's next round.
        let (now, later) = split_repeated(batch);
        deferred = later;
        last_batch = now.len();
        let started = Instant::now();
        let replies = match store.upgrade() {
            Some(store) => commit(&store, now),
            None => now
                .into_iter()
                .map(|r| (r.reply, Err(Error::Closed)))
                .collect(),
        };
        last_commit = started.elapsed();
        send(replies);
    }
}

/// Adds to `batch` the transitions waiting, and waits for more while it is smaller than the
/// last append of this thread (`last_batch`), at most half that append's time.
fn gather(
    rx: &mpsc::Receiver<Request>,
    batch: &mut Vec<Request>,
    last_batch: usize,
    last_commit: Duration,
) {
    // Group commit: the sagas this thread's last append served are about to ask again (their
    // next step is running); wait for them, at most half an append, so that this append
    // serves them too. A lone saga never waits.
    let deadline = Instant::now() + (last_commit / 2).min(MAX_GATHER);
    let mut bytes: usize = batch.iter().map(payload_bytes).sum();
    while batch.len() < MAX_BATCH_TRANSITIONS && bytes < MAX_BATCH_PAYLOAD_BYTES {
        let r = match rx.try_recv() {
            Ok(r) => r,
            Err(mpsc::TryRecvError::Disconnected) => break,
            Err(mpsc::TryRecvError::Empty) => {
                if batch.len() >= last_batch || Instant::now() >= deadline {
                    break;
                }
                // Yield rather than sleep (as the store's group-commit leader does): the
                // drivers this waits for need the processor, and a sleeping committer would
                // have to be woken by each of them (a system call on their side, a switch on
                // this one).
                std::thread::yield_now();
                continue;
            }
        };
        bytes += payload_bytes(&r);
        batch.push(r);
    }
}

/// Splits `batch` into the first transition of each stream, and the others (in order).
fn split_repeated(batch: Vec<Request>) -> (Vec<Request>, Vec<Request>) {
    let first: Vec<bool> = {
        let mut streams = StreamSet::default();
        streams.reserve(batch.len());
        batch.iter().map(|r| streams.insert(&r.stream)).collect()
    };
    if first.iter().all(|f| *f) {
        return (batch, Vec::new());
    }
    let mut first = first.into_iter();
    batch
        .into_iter()
        .partition(|_| first.next().expect("one flag per transition"))
}

fn payload_bytes(r: &Request) -> usize {
    r.events.iter().map(|e| e.payload.len()).sum()
}

/// Appends `batch` in one `append_multi`, leaving out (and refusing) each transition whose
/// stream moved on; any other error is the answer of each transition appended alone. Returns
/// the answers, to [`send`].
fn commit(store: &Store, mut batch: Vec<Request>) -> Vec<Reply> {
    let mut replies = Vec::with_capacity(batch.len());
    while !batch.is_empty() {
        let parts: Vec<(&str, ExpectedVersion, &[EventData])> = batch
            .iter()
            .map(|r| (r.stream.as_str(), r.expected, &r.events[..]))
            .collect();
        match store.append_multi(&parts) {
            Ok(results) => {
                replies.extend(
                    batch
                        .into_iter()
                        .map(|r| r.reply)
                        .zip(results.into_iter().map(Ok)),
                );
                break;
            }
            Err(Error::WrongExpectedVersion { stream, .. }) if batch.len() > 1 => {
                let i = batch
                    .iter()
                    .position(|r| r.stream == stream)
                    .expect("the error names a stream of the batch");
                let r = batch.swap_remove(i);
                let result = store.append(&r.stream, r.expected, &r.events);
                replies.push((r.reply, result));
            }
            Err(_) => {
                for r in batch {
                    let result = store.append(&r.stream, r.expected, &r.events);
                    replies.push((r.reply, result));
                }
                break;
            }
        }
    }
    replies
}

/// Answers the transitions (the committer holds no reference to the store by then: a saga
/// that ends on this answer leaves it to be closed).
fn send(replies: Vec<Reply>) {
    for (reply, result) in replies {
        let _ = reply.send(result);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(
        stream: &str,
        expected: ExpectedVersion,
    ) -> (Request, oneshot::Receiver<Result<AppendResult, Error>>) {
        let (reply, rx) = oneshot::channel();
        let events = vec![EventData::new("SagaCompleted", b"{}".to_vec())];
        let r = Request {
            stream: stream.to_owned(),
            expected,
            events,
            reply,
        };
        (r, rx)
    }

    #[test]
    fn two_transitions_of_one_stream_gathered_together_are_appended_one_after_the_other() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        // Both are waiting when the threads start: the first gathers them together and must
        // append the second after the first, while the other thread waits for a transition
        // that never comes (the sender stays alive).
        let (tx, rx) = mpsc::channel();
        let (a, ra) = request("s", ExpectedVersion::NoStream);
        let (b, rb) = request("s", ExpectedVersion::NoStream);
        tx.send(a).unwrap();
        tx.send(b).unwrap();
        spawn_threads(&store, rx);
        let (done, answers) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = done.send((ra.blocking_recv().unwrap(), rb.blocking_recv().unwrap()));
        });
        let (ra, rb) = answers
            .recv_timeout(Duration::from_secs(30))
            .expect("both transitions answered");
        assert_eq!(ra.unwrap().first_position, 0);
        assert!(
            matches!(rb, Err(Error::WrongExpectedVersion { .. })),
            "{rb:?}"
        );
        assert_eq!(store.stream_version("s"), Some(0));
        drop(tx);
    }

    #[test]
    fn a_stale_transition_is_refused_alone_and_the_rest_of_its_batch_is_appended() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .append(
                "b",
                ExpectedVersion::NoStream,
                &[EventData::new("X", Vec::new())],
            )
            .unwrap();
        let (a, ra) = request("a", ExpectedVersion::NoStream);
        let (b, rb) = request("b", ExpectedVersion::NoStream);
        let (c, rc) = request("c", ExpectedVersion::NoStream);
        send(commit(&store, vec![a, b, c]));
        let (ra, rb, rc) = (
            ra.blocking_recv().unwrap(),
            rb.blocking_recv().unwrap(),
            rc.blocking_recv().unwrap(),
        );
        assert!(
            matches!(rb, Err(Error::WrongExpectedVersion { .. })),
            "{rb:?}"
        );
        let (ra, rc) = (ra.unwrap(), rc.unwrap());
        // a and c went in one append: consecutive positions after b's event.
        assert_eq!(
            (
                ra.first_position.min(rc.first_position),
                ra.first_position.max(rc.first_position)
            ),
            (1, 2)
        );
        assert_eq!(store.stream_version("b"), Some(0));

        // Another error (here an empty stream id) is each transition's own answer.
        let (d, rd) = request("d", ExpectedVersion::NoStream);
        let (e, re) = request("", ExpectedVersion::Any);
        send(commit(&store, vec![d, e]));
        assert!(rd.blocking_recv().unwrap().is_ok());
        assert!(matches!(
            re.blocking_recv().unwrap(),
            Err(Error::InvalidArgument(_))
        ));
    }
}
