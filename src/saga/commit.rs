//! The committer: one thread per manager that appends the saga transitions its drivers ask for,
//! as many as are waiting in one [`Store::append_multi`] (one frame, one fsync), each still
//! checked against its own expected version. A transition whose stream moved on is refused
//! alone ([`SagaError::Lost`]); the others of its batch are appended.
//!
//! So 64 sagas advancing at once cost about one durable append per round of their steps, not
//! 64, and no tokio worker waits for an fsync.

use std::collections::HashSet;
use std::sync::mpsc;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::error::Error;
use crate::event::{AppendResult, EventData, ExpectedVersion};
use crate::saga::error::SagaError;
use crate::store::Store;

/// Most transitions in one append.
const MAX_BATCH_TRANSITIONS: usize = 256;
/// Most payload bytes in one append (a single larger transition goes alone).
const MAX_BATCH_PAYLOAD_BYTES: usize = 8 << 20;
/// Longest wait for more transitions before an append (see `run`): a bound on the latency the
/// gathering adds when a slow fsync made the last append long.
const MAX_GATHER: Duration = Duration::from_millis(2);

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

/// Appends saga transitions through the committer thread. A clone sends to the same thread,
/// which ends when every clone is dropped.
#[derive(Clone)]
pub(crate) struct Committer {
    tx: mpsc::Sender<Request>,
}

impl Committer {
    /// Starts the committer thread of `store`. The thread does not keep the store open: once
    /// the application, the manager and the sagas' tasks have dropped it, what is still asked
    /// gets [`Error::Closed`].
    pub fn start(store: &Arc<Store>) -> Committer {
        let (tx, rx) = mpsc::channel();
        let store = Arc::downgrade(store);
        std::thread::Builder::new()
            .name("evlog-saga-commit".into())
            .spawn(move || run(&store, &rx))
            .expect("spawn the saga committer thread");
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

fn run(store: &Weak<Store>, rx: &mpsc::Receiver<Request>) {
    let mut deferred: Vec<Request> = Vec::new();
    // The last append's size and time: the gathering of the next one is sized on them.
    let (mut last_batch, mut last_commit) = (1usize, Duration::ZERO);
    loop {
        let mut batch = std::mem::take(&mut deferred);
        if batch.is_empty() {
            match rx.recv() {
                Ok(r) => batch.push(r),
                Err(_) => return,
            }
        }
        // Group commit: the sagas the last append served are about to ask again (their next
        // step is running); wait for them, at most half an append, so that this append
        // serves them too. A lone saga never waits.
        let deadline = Instant::now() + (last_commit / 2).min(MAX_GATHER);
        let mut bytes: usize = batch.iter().map(payload_bytes).sum();
        while batch.len() < MAX_BATCH_TRANSITIONS && bytes < MAX_BATCH_PAYLOAD_BYTES {
            let next = match rx.try_recv() {
                Ok(r) => Some(r),
                Err(mpsc::TryRecvError::Disconnected) => None,
                Err(mpsc::TryRecvError::Empty) => {
                    let now = Instant::now();
                    if batch.len() >= last_batch || now >= deadline {
                        None
                    } else {
                        rx.recv_timeout(deadline - now).ok()
                    }
                }
            };
            let Some(r) = next else { break };
            bytes += payload_bytes(&r);
            batch.push(r);
        }
        // A stream appears once per append: a second transition of one stream (two starts of
        // one id) waits for the next round.
        let mut streams = HashSet::new();
        let (now, later): (Vec<Request>, Vec<Request>) = batch
            .into_iter()
            .partition(|r| streams.insert(r.stream.clone()));
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
