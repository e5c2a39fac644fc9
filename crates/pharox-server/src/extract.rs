//! Extractors whose rejections are JSON [`ApiError`]s (never axum's plain text).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;
use serde_json::error::Category;

use crate::error::ApiError;

/// A JSON body; a bad one answers 400 (not JSON), 413 (over the body
/// limit), 415 (no JSON content type) or 422 (wrong shape), as an
/// [`ApiError`] that names the field by its path and never echoes a value
/// (it may be a password).
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
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "expected a body with Content-Type: application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(bytes_rejection)?;
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            body_error(e.into_inner(), path)
        })?;
        de.end().map_err(|e| body_error(e, String::new()))?;
        Ok(Self(value))
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
        Bytes::from_request(req, state)
            .await
            .map_err(bytes_rejection)?;
        Ok(Self)
    }
}

fn bytes_rejection(r: axum::extract::rejection::BytesRejection) -> ApiError {
    if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the body is over the size limit",
        )
    } else {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", r.body_text())
    }
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

fn body_error(e: serde_json::Error, path: String) -> ApiError {
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
                ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body", message)
            }
        }
        Category::Syntax | Category::Eof | Category::Io => ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
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

/// Path parameters; a path that does not decode answers 400 as an [`ApiError`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            Err(rejection) => Err(ApiError::from_path(rejection)),
        }
    }
}

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
