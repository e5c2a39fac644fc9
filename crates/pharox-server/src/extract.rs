//! Extractors whose rejections are JSON [`ApiError`]s (never axum's plain text).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use pharox_wire::{Object, codes};
use serde::de::DeserializeOwned;
use serde_json::error::Category;

use crate::error::ApiError;

/// A JSON object body; a bad one answers 400 (not JSON), 413 (over the body
/// limit), 415 (no JSON content type) or 422 (wrong shape, including an
/// array or any other value where an object is expected), as an
/// [`ApiError`] that names the field by its path and never echoes a value
/// (it may be a password). Every body of the API is an object.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(not_json());
        }
        let bytes = read_body(req, state).await?;
        parse(&bytes).map(Self)
    }
}

/// Like [`Json`], for bodies whose fields are all optional: no body at all
/// (no `Content-Type`, nothing sent) is `T::default()`.
#[derive(Debug, Clone, Copy, Default)]
pub struct OptionalJson<T>(pub T);

impl<T, S> FromRequest<S> for OptionalJson<T>
where
    T: DeserializeOwned + Default,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json = is_json(req.headers());
        let bytes = read_body(req, state).await?;
        match (json, bytes.is_empty()) {
            (true, _) => parse(&bytes).map(Self),
            (false, true) => Ok(Self(T::default())),
            (false, false) => Err(not_json()),
        }
    }
}

/// Whatever body the client sent (any type, up to the body limit), read to
/// its end and dropped, for a route that takes no input. hyper answers as
/// soon as the handler is done and closes the connection if the body has not
/// all arrived by then; the client, told nothing, sends its next request on
/// a dead connection. pharox-sdk posts `{}` to release a lease.
#[derive(Debug, Clone, Copy, Default)]
pub struct IgnoredBody;

impl<S> FromRequest<S> for IgnoredBody
where
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        read_body(req, state).await?;
        Ok(Self)
    }
}

fn not_json() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        codes::UNSUPPORTED_MEDIA_TYPE,
        "expected a body with Content-Type: application/json",
    )
}

/// The body, or 413 over the limit (with or without `Content-Length`).
async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                codes::PAYLOAD_TOO_LARGE,
                "the body is over the size limit",
            )
        } else {
            ApiError::new(StatusCode::BAD_REQUEST, codes::INVALID_BODY, r.body_text())
        }
    })
}

/// One JSON object of type `T`, and nothing after it.
fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let Object(value) = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        body_error(e.into_inner(), path)
    })?;
    de.end().map_err(|e| body_error(e, String::new()))?;
    Ok(value)
}

/// `application/json` or `application/*+json`, with any parameters.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// The 400 or 422 for a body that did not deserialize at `path` (`.` or
/// empty for the whole body).
pub(crate) fn body_error(e: serde_json::Error, path: String) -> ApiError {
    match e.classify() {
        Category::Data => {
            let reason = without_value(&e.to_string());
            let field = (!path.is_empty() && path != ".").then_some(path);
            let message = match &field {
                Some(f) => format!("invalid body at `{f}`: {reason}"),
                None => format!("invalid body: {reason}"),
            };
            ApiError {
                field: field.map(Into::into),
                reason: Some(reason.into()),
                ..ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    codes::INVALID_BODY,
                    message,
                )
            }
        }
        Category::Syntax | Category::Eof | Category::Io => ApiError::new(
            StatusCode::BAD_REQUEST,
            codes::INVALID_JSON,
            format!(
                "the body is not valid JSON: {}",
                without_value(&e.to_string())
            ),
        ),
    }
}

/// serde's message without the offending value (`invalid type: string
/// "hunter2", expected u16` becomes `invalid type, expected u16`): the
/// value may be a secret sent in the wrong field.
fn without_value(message: &str) -> String {
    for kind in ["invalid type", "invalid value", "invalid length"] {
        if let Some(rest) = message.strip_prefix(kind)
            && let Some(at) = rest.find(", expected")
        {
            return format!("{kind}{}", &rest[at..]);
        }
    }
    message.to_owned()
}

/// An extractor wrapping axum's `$axum`, whose rejection becomes the
/// [`ApiError`] `$reject` makes of it.
macro_rules! json_rejecting {
    ($(#[$doc:meta])* $name:ident, $axum:ident, $reject:path) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default)]
        pub struct $name<T>(pub T);

        impl<T, S> FromRequestParts<S> for $name<T>
        where
            T: DeserializeOwned + Send,
            S: Send + Sync,
        {
            type Rejection = ApiError;

            async fn from_request_parts(
                parts: &mut Parts,
                state: &S,
            ) -> Result<Self, Self::Rejection> {
                match axum::extract::$axum::<T>::from_request_parts(parts, state).await {
                    Ok(axum::extract::$axum(value)) => Ok(Self(value)),
                    Err(rejection) => Err($reject(rejection)),
                }
            }
        }
    };
}

json_rejecting!(
    /// Path parameters; a path that does not decode answers 400 as an [`ApiError`].
    Path,
    Path,
    ApiError::from_path
);
json_rejecting!(
    /// A query string; one that does not decode answers 400 as an [`ApiError`].
    Query,
    Query,
    ApiError::from_query
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_messages_lose_the_value_but_keep_what_was_expected() {
        assert_eq!(
            without_value("invalid type: string \"hunter2\", expected u16"),
            "invalid type, expected u16"
        );
        assert_eq!(
            without_value("invalid value: integer `70000`, expected u16"),
            "invalid value, expected u16"
        );
        assert_eq!(
            without_value("missing field `host`"),
            "missing field `host`"
        );
    }
}
