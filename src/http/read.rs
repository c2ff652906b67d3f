//! Reads: `GET /api/streams/{id}`, `GET /api/events` (paged), and `GET /api/events/stream`
//! (server-sent events following new events). Events are the JSON objects of `evlog export`
//! (`crate::export::event_to_json_line`).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream};
use serde_json::json;
use serde_json::value::RawValue;
use tokio::sync::watch;

use crate::event::{Direction, ReadFilter, RecordedEvent};
use crate::export::event_to_json_line;
use crate::http::auth::Role;
use crate::http::error::{ApiError, blocking};
use crate::http::params::{MAX_QUERY_NUMBER, Params, path_id};
use crate::http::server::Api;
use crate::store::Store;

type Q = Result<Query<Vec<(String, String)>>, QueryRejection>;

/// Events one read of the event stream takes from the log.
const FOLLOW_BATCH_EVENTS: usize = 256;
/// How long the event stream waits for a new event before it looks at the shutdown signal.
const FOLLOW_WAIT: Duration = Duration::from_millis(250);

fn to_json(e: &RecordedEvent) -> Box<RawValue> {
    RawValue::from_string(event_to_json_line(e)).expect("export writes valid JSON")
}

/// `GET /api/streams/{id}?from=&limit=`: the stream's events from version `from`; 404 when
/// it has none.
pub(crate) async fn stream(
    State(api): State<Api>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    q: Q,
) -> Result<Response, ApiError> {
    let (_, p) = api.authorized(&headers, Role::Read, q)?;
    let id = path_id(id)?;
    let from = p.u64("from", 0)?;
    let limit = p.limit()?;
    let store = api.inner.monitor.store().clone();
    let (last, events) = blocking(move || {
        let none = || ApiError::not_found(format!("stream {id:?} has no events"));
        let last = store.stream_version(&id).ok_or_else(none)?;
        let events: Vec<_> = store
            .read_stream(&id, from, Direction::Forward, limit)
            .collect::<Result<_, _>>()?;
        // A deleted stream (or one whose events retention hid) has none to show.
        if events.is_empty()
            && store
                .read_stream(&id, 0, Direction::Forward, 1)
                .next()
                .is_none()
        {
            return Err(none());
        }
        Ok((last, events))
    })
    .await?;
    let next_from = events
        .last()
        .map(|e| e.version + 1)
        .filter(|next| *next <= last);
    let items: Vec<_> = events.iter().map(to_json).collect();
    Ok(
        Json(json!({ "events": items, "last_version": last, "next_from": next_from }))
            .into_response(),
    )
}

/// The filter of `type=` (comma-separated types).
fn type_filter(p: &Params) -> Result<ReadFilter, ApiError> {
    Ok(match p.text("type")? {
        None => ReadFilter::all(),
        Some(t) => ReadFilter::all().event_types(t.split(',').map(str::to_owned)),
    })
}

/// Reads up to `limit` events from position `from` that pass `filter` (system streams only
/// when `system`). Returns them and the position the next page starts at: `None` when every
/// event up to the head was looked at.
fn read_page(
    store: &Store,
    from: u64,
    filter: ReadFilter,
    system: bool,
    limit: usize,
) -> Result<(Vec<RecordedEvent>, Option<u64>), ApiError> {
    let mut events = Vec::new();
    for e in store.read_all(from, Direction::Forward, filter) {
        let e = e?;
        if !system && e.stream.starts_with('$') {
            continue;
        }
        let next = e.position + 1;
        events.push(e);
        if events.len() == limit {
            return Ok((events, Some(next)));
        }
    }
    Ok((events, None))
}

/// `GET /api/events?from=&type=&limit=&system=`: events of every stream from position `from`.
pub(crate) async fn events(
    State(api): State<Api>,
    headers: HeaderMap,
    q: Q,
) -> Result<Response, ApiError> {
    let (_, p) = api.authorized(&headers, Role::Read, q)?;
    let from = p.u64("from", 0)?;
    let limit = p.limit()?;
    let system = p.bool("system", false)?;
    let filter = type_filter(&p)?;
    let store = api.inner.monitor.store().clone();
    let (events, next_from) =
        blocking(move || read_page(&store, from, filter, system, limit)).await?;
    let items: Vec<_> = events.iter().map(to_json).collect();
    Ok(Json(json!({ "events": items, "next_from": next_from })).into_response())
}

struct Follow {
    store: Arc<Store>,
    filter: ReadFilter,
    system: bool,
    next: u64,
    buffered: VecDeque<RecordedEvent>,
    stop: watch::Receiver<bool>,
}

/// `GET /api/events/stream?from=&type=&system=`: server-sent events, one per event from
/// position `from`, or after the `Last-Event-ID` header's position when that is later (a
/// client reconnecting sends both), else from the next one appended; then each new one as it
/// is appended. Each
/// has `id` = its position, `event` = its type, `data` = its JSON. Ends when the server shuts
/// down.
pub(crate) async fn follow(
    State(api): State<Api>,
    headers: HeaderMap,
    q: Q,
) -> Result<Response, ApiError> {
    let (_, p) = api.authorized(&headers, Role::Read, q)?;
    let store = api.inner.monitor.store().clone();
    let head_next = store.head_position().map_or(0, |p| p + 1);
    // A reconnecting EventSource sends the id (position) of the last event it got.
    let resume = match headers.get("last-event-id") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .filter(|p| *p < MAX_QUERY_NUMBER)
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "header Last-Event-ID is not valid: expected the position of an event",
                    )
                })?
                + 1,
        ),
    };
    // A client reconnecting sends its URL again, `from` in it, and the last id it got: it
    // goes on after that id, never back.
    let from = match p.get("from") {
        Some(_) => Some(p.u64("from", 0)?),
        None => None,
    };
    let next = match (from, resume) {
        (Some(f), Some(r)) => f.max(r),
        (Some(f), None) => f,
        (None, Some(r)) => r,
        (None, None) => head_next,
    };
    let state = Follow {
        next,
        filter: type_filter(&p)?,
        system: p.bool("system", false)?,
        store,
        buffered: VecDeque::new(),
        stop: api.inner.stop.subscribe(),
    };
    Ok(Sse::new(follow_stream(state))
        .keep_alive(KeepAlive::default())
        .into_response())
}

fn follow_stream(state: Follow) -> impl Stream<Item = Result<Event, Infallible>> {
    stream::unfold(state, |mut s| async move {
        loop {
            if let Some(e) = s.buffered.pop_front() {
                let mut event = Event::default()
                    .id(e.position.to_string())
                    .data(event_to_json_line(&e));
                // An SSE field cannot hold a line break: such a type is only in the data.
                if !e.event_type.contains(['\r', '\n']) {
                    event = event.event(&*e.event_type);
                }
                return Some((Ok(event), s));
            }
            if *s.stop.borrow() {
                return None;
            }
            let (store, filter, from, system) =
                (s.store.clone(), s.filter.clone(), s.next, s.system);
            let page = tokio::task::spawn_blocking(move || {
                // Every event before the head seen now is looked at by this read.
                let head_next = store.head_position().map_or(0, |p| p + 1);
                let (events, next) = read_page(&store, from, filter, system, FOLLOW_BATCH_EVENTS)?;
                let after_last = events.last().map_or(0, |e| e.position + 1);
                let next = next.unwrap_or(head_next.max(from).max(after_last));
                if events.is_empty() {
                    // Nothing yet: wait for the head to move (or a short while).
                    store.wait_for_head_after(next.checked_sub(1), FOLLOW_WAIT);
                }
                Ok::<_, ApiError>((events, next))
            })
            .await;
            match page {
                Ok(Ok((events, next))) => {
                    s.next = next;
                    s.buffered.extend(events);
                }
                // The store failed or the runtime is going away: end the stream.
                _ => return None,
            }
        }
    })
}
