//! The JSON bodies of the pharox HTTP API (`pharox serve`), in one place for
//! both sides: `pharox-server` reads requests and writes answers with them,
//! `pharox-client`'s `RemoteStorage` writes requests and reads answers.
//! `docs/http-api.md` describes every route.
//!
//! - [`sdk`]: the routes pharox-sdk 0.2.0 (PyPI) calls, in the shapes it
//!   sends and parses.
//! - [`storage`]: the routes that mirror the `Storage` trait, so a client
//!   can implement all of it; they reuse the SDK's pool, proxy input and
//!   filter shapes.
//! - [`error`]: the error body and its stable codes.
//!
//! Times are ISO-8601 with six fraction digits and a `+00:00` offset
//! ([`iso`]); ids are strings, UUIDs where the SDK parses UUIDs.
#![forbid(unsafe_code)]

pub mod error;
mod ids;
pub mod int;
mod object;
pub mod sdk;
pub mod storage;
mod time;

pub use error::{ErrorBody, ErrorDetail, codes};
pub use ids::proxy_uuid;
pub use object::{Object, object, option_object, option_vec_object};
pub use sdk::*;
pub use storage::*;
pub use time::{iso, iso_opt, iso_time};

/// The header a client sends its API key in (as pharox-sdk does).
pub const API_KEY_HEADER: &str = "x-api-key";
