//! The HTTP API (feature `serve`, axum): monitoring, dead letters and reads, behind bearer
//! tokens. [`Api::router`] gives a [`axum::Router`] to mount in an application; [`serve`] runs
//! it on a listener until a shutdown future completes; `evlog serve DIR` runs it over a store.
//!
//! | endpoint | role | what |
//! |---|---|---|
//! | `GET /api/events/health` | none | ok / degraded / failing with reasons (503 when failing) |
//! | `GET /api/events/metrics` | read | OpenMetrics text; JSON with `Accept: application/json` |
//! | `GET /api/events/dead-letter` | read | parked events, paged, `handler=`, `type=` |
//! | `POST /api/events/dead-letter/{id}/redrive` | operate | redrive one (`id` = `HANDLER:POSITION`) |
//! | `POST /api/events/dead-letter/redrive` | operate | redrive all (`handler=` to limit) |
//! | `DELETE /api/events/dead-letter/{id}` | operate | discard one |
//! | `GET /api/streams/{id}` | read | a stream's events, `from=` (version), `limit=` |
//! | `GET /api/events` | read | every stream's events, `from=` (position), `type=`, `limit=` |
//! | `GET /api/events/stream` | read | server-sent events following new events, `from=`, `type=` |
//! | `GET /api/openapi.json` | read | the OpenAPI 3 document of all this |
//!
//! Errors are JSON `{"error": "...", "status": N}`: 400 for a bad query value (naming it), 401
//! for a missing or unknown token, 403 for a token without the role, 404, 409.

mod auth;
pub mod config;
mod dead_letters;
mod error;
mod monitoring;
mod openapi;
mod params;
mod read;
mod server;

pub use auth::{ApiToken, Auth, Role};
pub use config::{ServeConfig, ServeConfigError};
pub use error::ApiError;
pub use openapi::openapi_document;
pub use server::{Api, serve};
