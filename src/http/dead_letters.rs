//! The dead-letter endpoints: list (paged, filtered), redrive one or all, discard one. A dead
//! letter's id is `HANDLER:POSITION`.

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::bus::{BusError, DeadLetter, DeadLetters};
use crate::http::auth::Role;
use crate::http::error::{ApiError, blocking};
use crate::http::params::path_id;
use crate::http::server::Api;

type Q = Result<Query<Vec<(String, String)>>, QueryRejection>;

/// The id of a dead letter.
fn id_of(l: &DeadLetter) -> String {
    format!("{}:{}", l.handler, l.position)
}

/// `HANDLER:POSITION`.
fn parse_id(id: &str) -> Result<(String, u64), ApiError> {
    let bad = || {
        ApiError::bad_request(format!(
            "dead-letter id {id:?} is not valid: expected HANDLER:POSITION, e.g. mailer:42"
        ))
    };
    let (handler, position) = id.rsplit_once(':').ok_or_else(bad)?;
    if handler.is_empty() || handler.starts_with('$') {
        return Err(bad());
    }
    let position = crate::http::params::digits(position)
        .and_then(|p| p.parse::<u64>().ok())
        .filter(|p| *p <= crate::http::params::MAX_QUERY_NUMBER)
        .ok_or_else(bad)?;
    Ok((handler.to_owned(), position))
}

/// `GET /api/events/dead-letter?handler=&type=&offset=&limit=`.
pub(crate) async fn list(
    State(api): State<Api>,
    headers: HeaderMap,
    q: Q,
) -> Result<Response, ApiError> {
    let (_, p) = api.authorized(&headers, Role::Read, q)?;
    let handler = p.text("handler")?;
    let event_type = p.text("type")?;
    let offset = p.u64("offset", 0)?;
    let limit = p.limit()?;
    let monitor = api.inner.monitor.clone();
    let all = blocking(move || {
        let mut all = Vec::new();
        for h in monitor.dead_letter_handlers() {
            if handler.as_ref().is_some_and(|want| *want != h) {
                continue;
            }
            for l in monitor.bus().dead_letters(&h).list()? {
                if event_type.as_ref().is_none_or(|t| *t == l.event_type) {
                    all.push(l);
                }
            }
        }
        Ok(all)
    })
    .await?;
    let total = all.len() as u64;
    let items: Vec<_> = all
        .into_iter()
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take(limit)
        .map(|l| {
            let mut v = serde_json::to_value(&l).expect("plain struct");
            v["id"] = json!(id_of(&l));
            v
        })
        .collect();
    let next = offset.saturating_add(items.len() as u64);
    let next_offset = (next < total).then_some(next);
    Ok(Json(json!({
        "items": items,
        "total": total,
        "offset": offset,
        "limit": limit,
        "next_offset": next_offset,
    }))
    .into_response())
}

/// Runs `act` (redrive or discard) on the dead letter `{id}` as the caller (operate role), on
/// a blocking thread. Returns the answer's fields for it.
async fn on_letter(
    api: &Api,
    headers: &HeaderMap,
    id: Result<Path<String>, PathRejection>,
    act: fn(&DeadLetters, u64, &str) -> Result<(), BusError>,
) -> Result<serde_json::Value, ApiError> {
    let by = api.inner.auth.require(headers, Role::Operate)?;
    let id = path_id(id)?;
    let (handler, position) = parse_id(&id)?;
    let letters = api.inner.monitor.bus().dead_letters(&handler);
    blocking(move || Ok(act(&letters, position, &by)?)).await?;
    Ok(json!({ "id": id, "handler": handler, "position": position }))
}

/// `POST /api/events/dead-letter/{id}/redrive`: 202, the redrive is carried out by the
/// handler's task.
pub(crate) async fn redrive_one(
    State(api): State<Api>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let mut body = on_letter(&api, &headers, id, DeadLetters::redrive).await?;
    body["requested"] = json!(1);
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

/// `POST /api/events/dead-letter/redrive?handler=`: 202 with how many are asked for.
pub(crate) async fn redrive_all(
    State(api): State<Api>,
    headers: HeaderMap,
    q: Q,
) -> Result<Response, ApiError> {
    let (by, p) = api.authorized(&headers, Role::Operate, q)?;
    let handler = p.text("handler")?;
    let monitor = api.inner.monitor.clone();
    let requested = blocking(move || {
        let mut n = 0;
        for h in monitor.dead_letter_handlers() {
            if handler.as_ref().is_none_or(|want| *want == h) {
                n += monitor.bus().dead_letters(&h).redrive_all(&by)?;
            }
        }
        Ok(n)
    })
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "requested": requested })),
    )
        .into_response())
}

/// `DELETE /api/events/dead-letter/{id}`: the parked event is dropped for good.
pub(crate) async fn discard(
    State(api): State<Api>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let mut body = on_letter(&api, &headers, id, DeadLetters::discard).await?;
    body["discarded"] = json!(true);
    Ok(Json(body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_handler_colon_position() {
        assert_eq!(parse_id("mailer:42").unwrap(), ("mailer".into(), 42));
        assert_eq!(parse_id("a:b:7").unwrap(), ("a:b".into(), 7));
        for bad in ["mailer", ":4", "mailer:", "mailer:-1", "mailer:x", "$dlq:1"] {
            assert_eq!(
                parse_id(bad).unwrap_err().status,
                StatusCode::BAD_REQUEST,
                "{bad}"
            );
        }
    }
}
