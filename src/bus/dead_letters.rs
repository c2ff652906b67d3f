//! [`DeadLetters`]: a handler's parked events — list, count, redrive, discard — each change
//! recorded as an event of its dead-letter stream (who and when).

use crate::bus::EventBus;
use crate::bus::dead_letter::{
    DeadLetter, DeadLetterRecord, DeadLetterState, RedriveTarget, dead_letter_stream,
};
use crate::bus::error::BusError;
use crate::event::{Direction, ExpectedVersion};
use crate::store::Store;

/// The dead letters of one handler ([`EventBus::dead_letters`]).
///
/// A redrive is carried out by the handler's task while it runs on a bus (or when it next
/// starts): it delivers the stream's parked events again, oldest first, with the usual retries;
/// each one handled is recorded as redriven, and the first that fails again stays parked with
/// the rest of its stream behind it. The calls here block for a durable append.
#[derive(Clone, Debug)]
pub struct DeadLetters {
    bus: EventBus,
    handler: String,
    stream: String,
}

impl DeadLetters {
    pub(crate) fn new(bus: EventBus, handler: &str) -> Self {
        DeadLetters {
            bus,
            handler: handler.to_owned(),
            stream: dead_letter_stream(handler),
        }
    }

    /// The dead-letter stream (`$dlq-HANDLER`).
    pub fn stream(&self) -> &str {
        &self.stream
    }

    fn state(&self) -> Result<DeadLetterState, BusError> {
        let mut state = DeadLetterState::default();
        catch_up(self.bus.store(), &self.stream, &mut state)?;
        Ok(state)
    }

    /// The parked events, in position order.
    pub fn list(&self) -> Result<Vec<DeadLetter>, BusError> {
        Ok(self.state()?.letters.into_values().collect())
    }

    /// How many events are parked.
    pub fn count(&self) -> Result<usize, BusError> {
        Ok(self.state()?.letters.len())
    }

    /// Every record of the dead-letter stream, oldest first: what was parked, redriven and
    /// discarded, by whom and when.
    pub fn history(&self) -> Result<Vec<DeadLetterRecord>, BusError> {
        self.bus
            .store()
            .read_stream(&self.stream, 0, Direction::Forward, usize::MAX)
            .map(|e| DeadLetterRecord::from_event(&e?))
            .collect()
    }

    /// Asks for the parked event at `position` to be delivered again. It must be the first
    /// parked event of its stream ([`BusError::NotFirstInStream`] otherwise): a stream's events
    /// are handled in order.
    pub fn redrive(&self, position: u64, by: &str) -> Result<(), BusError> {
        let state = self.state()?;
        let letter = self.parked(&state, position)?;
        let first = state.first_of(&letter.stream).unwrap_or(position);
        if first != position {
            return Err(BusError::NotFirstInStream {
                position,
                stream: letter.stream.clone(),
                first,
            });
        }
        self.request(RedriveTarget::Position(position), by)
    }

    /// Asks for every parked event of `stream` to be delivered again, in order. Returns how
    /// many there are.
    pub fn redrive_stream(&self, stream: &str, by: &str) -> Result<usize, BusError> {
        let n = self.state()?.streams.get(stream).map_or(0, |s| s.len());
        if n > 0 {
            self.request(RedriveTarget::Stream(stream.to_owned()), by)?;
        }
        Ok(n)
    }

    /// Asks for every parked event to be delivered again, each stream's in order. Returns how
    /// many there are.
    pub fn redrive_all(&self, by: &str) -> Result<usize, BusError> {
        let n = self.count()?;
        if n > 0 {
            self.request(RedriveTarget::All, by)?;
        }
        Ok(n)
    }

    /// Drops the parked event at `position` for good: it is never delivered to this handler
    /// again. Once a stream has no parked event left, its new events flow again.
    pub fn discard(&self, position: u64, by: &str) -> Result<(), BusError> {
        self.parked(&self.state()?, position)?;
        self.record(DeadLetterRecord::Discarded {
            position,
            by: by.to_owned(),
            at_us: now_us(),
        })
    }

    fn parked<'a>(
        &self,
        state: &'a DeadLetterState,
        position: u64,
    ) -> Result<&'a DeadLetter, BusError> {
        state
            .letters
            .get(&position)
            .ok_or_else(|| BusError::NotParked {
                handler: self.handler.clone(),
                position,
            })
    }

    fn request(&self, target: RedriveTarget, by: &str) -> Result<(), BusError> {
        self.record(DeadLetterRecord::RedriveRequested {
            target,
            by: by.to_owned(),
            at_us: now_us(),
        })
    }

    fn record(&self, record: DeadLetterRecord) -> Result<(), BusError> {
        self.bus
            .store()
            .append(&self.stream, ExpectedVersion::Any, &[record.to_event()])?;
        self.bus.wake_handlers();
        Ok(())
    }
}

/// Folds the records of `stream` that `state` has not seen yet.
pub(crate) fn catch_up(
    store: &Store,
    stream: &str,
    state: &mut DeadLetterState,
) -> Result<(), BusError> {
    if store
        .stream_version(stream)
        .is_none_or(|v| v < state.next_version)
    {
        return Ok(());
    }
    for e in store.read_stream(stream, state.next_version, Direction::Forward, usize::MAX) {
        let e = e?;
        state.apply(DeadLetterRecord::from_event(&e)?);
        state.next_version = e.version + 1;
    }
    Ok(())
}

/// Microseconds since the Unix epoch.
pub(crate) fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}
