//! API keys: kept only as SHA-256 digests, compared in constant time, never logged.

use std::fmt;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

use crate::error::ApiError;

pub use pharox_wire::API_KEY_HEADER;

/// The accepted API keys. With none, every request is let in (the CLI then
/// refuses to listen on anything but loopback).
#[derive(Clone, Default)]
pub struct ApiKeys {
    digests: Arc<[[u8; 32]]>,
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKeys({} keys)", self.digests.len())
    }
}

fn digest(key: &[u8]) -> [u8; 32] {
    Sha256::digest(key).into()
}

impl ApiKeys {
    /// No keys: authentication is off.
    pub fn none() -> Self {
        Self::default()
    }

    /// These keys; blank ones (after trimming) are skipped.
    pub fn new<I, K>(keys: I) -> Self
    where
        I: IntoIterator<Item = K>,
        K: AsRef<str>,
    {
        let digests: Vec<[u8; 32]> = keys
            .into_iter()
            .filter_map(|k| {
                let k = k.as_ref().trim();
                (!k.is_empty()).then(|| digest(k.as_bytes()))
            })
            .collect();
        Self {
            digests: digests.into(),
        }
    }

    /// Keys from a comma-separated list, as in `PHAROX_API_KEYS`.
    pub fn from_list(list: &str) -> Self {
        Self::new(list.split(','))
    }

    /// Keys from a file's text: one per line; blank lines and lines starting
    /// with `#` are skipped.
    pub fn from_lines(text: &str) -> Self {
        Self::new(text.lines().filter(|l| !l.trim_start().starts_with('#')))
    }

    /// The union of two sets of keys.
    pub fn merged(&self, other: &ApiKeys) -> Self {
        let mut all = self.digests.to_vec();
        all.extend_from_slice(&other.digests);
        Self {
            digests: all.into(),
        }
    }

    /// Whether no key is configured (authentication off).
    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    /// How many keys are configured.
    pub fn len(&self) -> usize {
        self.digests.len()
    }

    /// Whether `key` is one of the keys. Compares its digest with every
    /// stored digest in constant time, without stopping at a match.
    pub fn accepts(&self, key: &[u8]) -> bool {
        let d = digest(key);
        let mut found = Choice::from(0);
        for stored in self.digests.iter() {
            found |= stored.ct_eq(&d);
        }
        found.into()
    }
}

/// Middleware: 401 without a key, 403 with a wrong one, when keys are set.
pub(crate) async fn require_key(State(keys): State<ApiKeys>, req: Request, next: Next) -> Response {
    if keys.is_empty() {
        return next.run(req).await;
    }
    match req.headers().get(API_KEY_HEADER) {
        None => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing X-API-Key header",
        )
        .into_response(),
        Some(k) if keys.accepts(k.as_bytes()) => next.run(req).await,
        Some(_) => ApiError::new(StatusCode::FORBIDDEN, "forbidden", "API key not accepted")
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_configured_keys() {
        let keys = ApiKeys::from_list(" alpha, ,beta ");
        assert_eq!(keys.len(), 2);
        assert!(keys.accepts(b"alpha"));
        assert!(keys.accepts(b"beta"));
        assert!(!keys.accepts(b"alph"));
        assert!(!keys.accepts(b" alpha"));
        assert!(!keys.accepts(b""));
        assert!(!ApiKeys::none().accepts(b"alpha"));
    }

    #[test]
    fn file_lines_skip_blanks_and_comments() {
        let keys = ApiKeys::from_lines("# admin keys\nk1\n\n  k2  \n#k3\n");
        assert_eq!(keys.len(), 2);
        assert!(keys.accepts(b"k2"));
        assert!(!keys.accepts(b"#k3"));
        assert_eq!(keys.merged(&ApiKeys::from_list("k4")).len(), 3);
    }

    #[test]
    fn debug_shows_no_key_material() {
        let keys = ApiKeys::from_list("super-secret");
        let text = format!("{keys:?}");
        assert_eq!(text, "ApiKeys(1 keys)");
    }
}
