//! One shared HTTP client, the paths of the API, and the answers it gives.

use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use pharox_core::{Error, Result};
use pharox_wire::API_KEY_HEADER;
use reqwest::header::HeaderValue;
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::classify::{self, Subject};

/// Everything but RFC 3986's unreserved characters is escaped in a path
/// segment: `/`, `?`, `#`, `%`, `\` and spaces included.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// An id as one path segment. `.` and `..` cannot be one: URL parsers
/// resolve them as dot segments whatever their escaping (`%2E` too), so a
/// call on a proxy named `..` would reach its pool instead. They are
/// refused with `InvalidInput` on `field`.
pub(crate) fn segment(field: &'static str, id: &str) -> Result<String> {
    if id == "." || id == ".." {
        return Err(Error::invalid(
            field,
            "`.` and `..` cannot be named in a URL path, so a pharox server cannot be asked about them",
        ));
    }
    Ok(utf8_percent_encode(id, SEGMENT).to_string())
}

/// The query that asks for proxy passwords in answers (the Rust model has them).
pub(crate) const WITH_CREDENTIALS: &str = "?credentials=include";

/// The HTTP side of a `RemoteStorage`.
pub(crate) struct Transport {
    pub(crate) http: reqwest::Client,
    /// The base URL without a trailing slash.
    pub(crate) base: String,
    /// Sent as `X-API-Key`, marked sensitive (never in `Debug`).
    pub(crate) api_key: Option<HeaderValue>,
    /// Each call's budget, from sending to the end of the answer.
    pub(crate) timeout: Duration,
}

/// A read answer, once its body is in.
pub(crate) struct Answer {
    op: &'static str,
    pub(crate) status: StatusCode,
    bytes: Vec<u8>,
}

impl Transport {
    /// Sends `body` (JSON) to `path` and waits for the status, within
    /// `timeout` (the configured one if `None`).
    pub(crate) async fn send<B: Serialize + ?Sized>(
        &self,
        op: &'static str,
        method: Method,
        path: &str,
        body: Option<&B>,
        timeout: Option<Duration>,
    ) -> Result<Answer> {
        let timeout = timeout.unwrap_or(self.timeout);
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .timeout(timeout);
        if let Some(key) = &self.api_key {
            request = request.header(API_KEY_HEADER, key.clone());
        }
        if let Some(body) = body {
            let json = serde_json::to_vec(body)
                .map_err(|e| Error::invalid("body", format!("cannot be encoded as JSON: {e}")))?;
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(json);
        }
        let lost = |e| classify::transport(op, timeout, e);
        let response = request.send().await.map_err(lost)?;
        let status = response.status();
        // The request's timeout covers reading the body too.
        let bytes = response.bytes().await.map_err(lost)?.into();
        Ok(Answer { op, status, bytes })
    }
}

impl Answer {
    /// Whether the status is 2xx.
    pub(crate) fn ok(&self) -> bool {
        self.status.is_success()
    }

    /// Whether this is the error `status` with `code`.
    pub(crate) fn is(&self, status: StatusCode, code: &str) -> bool {
        self.status == status
            && serde_json::from_slice::<pharox_wire::ErrorBody>(&self.bytes)
                .is_ok_and(|b| b.error.code == code)
    }

    /// The body as `T`, for a 2xx; the error it stands for otherwise.
    pub(crate) fn decode<T: DeserializeOwned>(self, about: Subject<'_>) -> Result<T> {
        if !self.ok() {
            return Err(self.error(about));
        }
        serde_json::from_slice(&self.bytes)
            .map_err(|e| classify::undecodable(self.op, self.status, &e))
    }

    /// `None` when this is the error `status` with `code` (the trait's
    /// "not there" answer), else as [`Answer::decode`].
    pub(crate) fn decode_unless<T: DeserializeOwned>(
        self,
        status: StatusCode,
        code: &str,
        about: Subject<'_>,
    ) -> Result<Option<T>> {
        if self.is(status, code) {
            return Ok(None);
        }
        self.decode(about).map(Some)
    }

    /// Whether the call did something: `true` for a 2xx, `false` for the
    /// error `404` with `code`, the error it stands for otherwise.
    pub(crate) fn done_unless_not_found(self, code: &str, about: Subject<'_>) -> Result<bool> {
        if self.is(StatusCode::NOT_FOUND, code) {
            return Ok(false);
        }
        self.done(about).map(|()| true)
    }

    /// Nothing, for a 2xx; the error it stands for otherwise.
    pub(crate) fn done(self, about: Subject<'_>) -> Result<()> {
        if self.ok() {
            Ok(())
        } else {
            Err(self.error(about))
        }
    }

    /// The error a non-2xx answer stands for.
    pub(crate) fn error(self, about: Subject<'_>) -> Error {
        classify::answer(self.op, self.status, &self.bytes, about)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_escape_everything_but_unreserved_characters() {
        for (id, want) in [
            ("latam-1.a_b~", "latam-1.a_b~"),
            ("a/b", "a%2Fb"),
            ("a b", "a%20b"),
            ("a%7D", "a%257D"),
            ("?#", "%3F%23"),
            ("a\\b", "a%5Cb"),
            ("{a}:b", "%7Ba%7D%3Ab"),
            ("ü", "%C3%BC"),
            ("...", "..."),
        ] {
            assert_eq!(segment("pool", id).unwrap(), want, "{id}");
        }
        for dots in [".", ".."] {
            assert!(matches!(
                segment("proxy.id", dots),
                Err(Error::InvalidInput {
                    field: "proxy.id",
                    ..
                })
            ));
        }
    }

    #[test]
    fn a_dot_segment_would_really_change_the_path() {
        // Why `.` and `..` are refused: the URL parser resolves them.
        let url = reqwest::Url::parse("http://h/v1/pools/p/proxies/%2E%2E").unwrap();
        assert_eq!(url.path(), "/v1/pools/p/");
        let kept = reqwest::Url::parse("http://h/v1/pools/p/proxies/...").unwrap();
        assert_eq!(kept.path(), "/v1/pools/p/proxies/...");
    }
}
