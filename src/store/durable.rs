//! Appends whose wait for durability is a future: the frame is written on the calling thread,
//! the fsync is led by the store's syncer thread (group commit with every other appender), and
//! the future is woken when the fsync that covers it ends. An async caller neither blocks its
//! thread for the fsync nor hands its work to another thread to do so.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::event::{AppendResult, EventData, ExpectedVersion};
use crate::store::writer::SyncState;
use crate::store::{Inner, Store};

/// The future of [`Store::append_async`]: resolves to the append's result once its events are
/// durable at the store's durability level, or to the error that stopped them from becoming
/// durable ([`Error::Poisoned`] after a failed fsync, [`Error::Closed`]).
///
/// The events are appended (and their version checked) when `append_async` returns, whether
/// or not this future is polled: dropping it does not undo the append, and the store makes it
/// durable all the same.
#[must_use = "the append is durable only when this future resolves"]
pub struct AppendDurable {
    inner: Arc<Inner>,
    /// The group-commit clock value to wait for (`None`: nothing to wait for).
    target: Option<u64>,
    result: Option<AppendResult>,
    /// Also woken when the events are durable (see [`AppendDurable::also_wake`]).
    also: Option<Waker>,
}

impl std::fmt::Debug for AppendDurable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppendDurable")
            .field("target", &self.target)
            .field("result", &self.result)
            .finish()
    }
}

impl AppendDurable {
    /// Wakes `waker` too, from the thread that ends the fsync, as soon as the events are
    /// durable (and visible to readers): a reader waiting for them need not wait for this
    /// future's task to be scheduled first.
    pub fn also_wake(mut self, waker: Waker) -> AppendDurable {
        self.also = Some(waker);
        self
    }

    /// True when the events are durable (the future would resolve at once).
    pub fn is_durable(&self) -> bool {
        self.target
            .is_none_or(|t| self.inner.synced.load(Ordering::Acquire) >= t)
    }
}

impl Future for AppendDurable {
    type Output = Result<AppendResult>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<AppendResult>> {
        let this = self.get_mut();
        let done = |this: &mut AppendDurable| {
            if let Some(w) = this.also.take() {
                w.wake();
            }
            Poll::Ready(Ok(this.result.take().expect("polled after it resolved")))
        };
        let Some(target) = this.target else {
            return done(this);
        };
        let inner = &this.inner;
        if inner.synced.load(Ordering::Acquire) >= target {
            return done(this);
        }
        if inner.poisoned.load(Ordering::Acquire) {
            return Poll::Ready(Err(Error::Poisoned));
        }
        let mut s = inner.sync.lock();
        let Some(st) = s.as_mut() else {
            return Poll::Ready(Err(Error::Closed));
        };
        if st.synced >= target {
            drop(s);
            return done(this);
        }
        // Again under the lock: a store poisoned since the check above has already woken
        // (and let go of) the wakers it held, and would never wake one pushed now.
        if inner.poisoned.load(Ordering::Acquire) {
            return Poll::Ready(Err(Error::Poisoned));
        }
        let registered = |st: &SyncState, w: &Waker| {
            st.wakers
                .iter()
                .any(|(t, have)| *t == target && have.will_wake(w))
        };
        if !registered(st, cx.waker()) {
            st.wakers.push((target, cx.waker().clone()));
        }
        if let Some(w) = this.also.take()
            && !registered(st, &w)
        {
            st.wakers.push((target, w));
        }
        Poll::Pending
    }
}

impl Store {
    /// [`Store::append`] for async callers: the events are appended (and their version checked)
    /// before this returns, and the future resolves once they are durable. With
    /// [`Durability::Always`](crate::Durability::Always) the fsync is led by the store's syncer
    /// thread, shared with every other appender that waits (group commit), and the future is
    /// woken when it ends: the caller's thread neither blocks nor hands its work over. With
    /// the other durability levels the future is ready at once.
    ///
    /// A re-sent append (see [`Store::append`]) waits, on the calling thread, until the
    /// original's events are visible.
    ///
    /// ```
    /// use evlog::{Durability, EventData, ExpectedVersion, StoreOptions};
    /// # let dir = tempfile::tempdir()?;
    /// let store = StoreOptions::new().durability(Durability::Always).open(dir.path())?;
    /// let pending = store.append_async("order-1", ExpectedVersion::NoStream,
    ///                                  &[EventData::new("OrderPlaced", b"{}".to_vec())])?;
    /// // Any executor drives it; here a tokio runtime's.
    /// let rt = tokio::runtime::Builder::new_current_thread().build()?;
    /// let r = rt.block_on(pending)?;
    /// assert_eq!(r.next_expected_version, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Errors: as for [`Store::append`], returned at once; the future's error when the events
    /// could not be made durable ([`Error::Poisoned`], [`Error::Closed`]).
    pub fn append_async(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: &[EventData],
    ) -> Result<AppendDurable> {
        let (result, target) = self.inner.append_nowait(stream, expected, events, None)?;
        if let Some(t) = target {
            request_sync(&self.inner, t)?;
        }
        Ok(AppendDurable {
            inner: self.inner.clone(),
            target,
            result: Some(result),
            also: None,
        })
    }
}

/// How long the syncer thread waits for work before it ends.
const SYNCER_IDLE: Duration = Duration::from_secs(1);

/// Asks the syncer thread to make clock value `target` durable, starting the thread if this
/// is the store's first asynchronous append.
fn request_sync(inner: &Arc<Inner>, target: u64) -> Result<()> {
    {
        let mut s = inner.sync.lock();
        let st = s.as_mut().ok_or(Error::Closed)?;
        if st.synced >= target {
            return Ok(());
        }
        st.async_target = st.async_target.max(target);
    }
    let mut g = inner.syncer.lock();
    match g.as_ref() {
        // A syncer that ended (it panicked: an idle one takes its handle away) is replaced.
        Some(h) if !h.is_finished() => h.thread().unpark(),
        _ => {
            if inner.closed.load(Ordering::Acquire) {
                return Err(Error::Closed);
            }
            *g = Some(spawn_syncer(Arc::downgrade(inner)));
        }
    }
    Ok(())
}

/// The syncer: whenever an asynchronous append asks for a clock value that is not durable, it
/// makes it durable as any appender does (leading an fsync, or waiting for the one under way
/// and leading the next), which wakes the futures it covers. It parks when there is nothing to
/// do, and ends when the store closes or after [`SYNCER_IDLE`] without work (the next
/// asynchronous append starts another).
fn spawn_syncer(weak: Weak<Inner>) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("evlog-sync".into())
        .spawn(move || {
            let mut idle_since = None;
            loop {
                let Some(inner) = weak.upgrade() else { return };
                if inner.closed.load(Ordering::Acquire) {
                    return;
                }
                match sync_wanted(&inner) {
                    Some(t) => {
                        idle_since = None;
                        if inner.wait_durable(t).is_err() {
                            // Poisoned or closed: the futures find out when woken.
                            inner.wake_all_waiters();
                            if let Some(st) = inner.sync.lock().as_mut() {
                                st.async_target = 0;
                            }
                        }
                    }
                    None => {
                        let since = *idle_since.get_or_insert_with(Instant::now);
                        if since.elapsed() >= SYNCER_IDLE {
                            // Under the syncer lock, so that an append asking for an fsync
                            // now either is seen here or finds no syncer and starts one.
                            let mut g = inner.syncer.lock();
                            if sync_wanted(&inner).is_none() {
                                *g = None;
                                return;
                            }
                            continue;
                        }
                        drop(inner);
                        std::thread::park_timeout(SYNCER_IDLE);
                    }
                }
            }
        })
        .expect("spawn the syncer thread")
}

/// The clock value an asynchronous append wants durable and that is not yet.
fn sync_wanted(inner: &Inner) -> Option<u64> {
    let s = inner.sync.lock();
    let st = s.as_ref()?;
    (st.async_target > st.synced).then_some(st.async_target)
}
