//! API keys: kept only as SHA-256 digests, compared in constant time, never
//! logged; each with a scope.
//!
//! A key entry is the key, optionally followed by whitespace and its scope:
//! `admin` (the default: every route), `lease` (only what a scraper needs:
//! read pools, acquire, read, renew and release leases), or
//! `lease:NAME` (the same, and only as consumer `NAME`: an acquire names
//! that consumer or none, and leases of other consumers are not found).

use std::fmt;
use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use pharox_core::{ConsumerName, DEFAULT_CONSUMER, Lease};
use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use crate::error::ApiError;

pub use pharox_wire::API_KEY_HEADER;

/// What a key may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every route.
    Admin,
    /// Reading pools and leasing: `GET` of pools, acquire, and reading,
    /// renewing and releasing leases.
    Lease {
        /// When set, only as this consumer.
        consumer: Option<ConsumerName>,
    },
}

impl Scope {
    fn parse(text: &str) -> Result<Self, String> {
        match text {
            "admin" => Ok(Self::Admin),
            "lease" => Ok(Self::Lease { consumer: None }),
            _ => match text.strip_prefix("lease:") {
                Some(name) if !name.is_empty() => Ok(Self::Lease {
                    consumer: Some(ConsumerName::from(name)),
                }),
                _ => Err(format!(
                    "unknown scope {text:?}: use admin, lease or lease:CONSUMER"
                )),
            },
        }
    }
}

/// Who a request comes from, as its key says; in the request's extensions
/// when keys are configured.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    /// The key's scope.
    pub scope: Scope,
}

impl Caller {
    /// The consumer the key is bound to, if any.
    pub fn bound_consumer(&self) -> Option<&ConsumerName> {
        match &self.scope {
            Scope::Lease { consumer } => consumer.as_ref(),
            Scope::Admin => None,
        }
    }
}

/// A key entry that does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyError {
    /// Which entry, counted from 1 (a line of a file, an item of a list).
    pub entry: usize,
    /// What is wrong (never the key).
    pub reason: String,
}

impl fmt::Display for ApiKeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "API key entry {}: {}", self.entry, self.reason)
    }
}

impl std::error::Error for ApiKeyError {}

/// The accepted API keys. With none, every request is let in (the CLI then
/// refuses to listen on anything but loopback).
#[derive(Clone, Default)]
pub struct ApiKeys {
    digests: Arc<[[u8; 32]]>,
    scopes: Arc<[Scope]>,
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

    /// Admin keys, each taken as it is (after trimming); blank ones are
    /// skipped.
    pub fn admin<I, K>(keys: I) -> Self
    where
        I: IntoIterator<Item = K>,
        K: AsRef<str>,
    {
        let mut out = Self::default();
        for k in keys {
            let k = k.as_ref().trim();
            if !k.is_empty() {
                out = out.merged(&Self::one(k, Scope::Admin));
            }
        }
        out
    }

    fn one(key: &str, scope: Scope) -> Self {
        Self {
            digests: vec![digest(key.as_bytes())].into(),
            scopes: vec![scope].into(),
        }
    }

    fn parse<'a>(entries: impl Iterator<Item = &'a str>) -> Result<Self, ApiKeyError> {
        let mut digests = Vec::new();
        let mut scopes = Vec::new();
        for (i, entry) in entries.enumerate() {
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            let mut parts = entry.split_whitespace();
            let key = parts.next().unwrap_or_default();
            let scope = match (parts.next(), parts.next()) {
                (None, _) => Scope::Admin,
                (Some(s), None) => Scope::parse(s).map_err(|reason| ApiKeyError {
                    entry: i + 1,
                    reason,
                })?,
                (Some(_), Some(_)) => {
                    return Err(ApiKeyError {
                        entry: i + 1,
                        reason: "expected KEY [SCOPE]: a key holds no whitespace".into(),
                    });
                }
            };
            digests.push(digest(key.as_bytes()));
            scopes.push(scope);
        }
        Ok(Self {
            digests: digests.into(),
            scopes: scopes.into(),
        })
    }

    /// Key entries from a comma-separated list, as in `PHAROX_API_KEYS`
    /// (`k1,k2 lease,k3 lease:worker-7`); blank entries are skipped.
    ///
    /// # Errors
    /// An entry with an unknown scope or more than two words.
    pub fn from_list(list: &str) -> Result<Self, ApiKeyError> {
        Self::parse(list.split(','))
    }

    /// Key entries from a file's text, one a line; blank lines and lines
    /// starting with `#` are skipped (entries count every line).
    ///
    /// # Errors
    /// As [`ApiKeys::from_list`], naming the line.
    pub fn from_lines(text: &str) -> Result<Self, ApiKeyError> {
        Self::parse(text.lines().map(|l| {
            if l.trim_start().starts_with('#') {
                ""
            } else {
                l
            }
        }))
    }

    /// The union of two sets of keys.
    pub fn merged(&self, other: &ApiKeys) -> Self {
        let mut digests = self.digests.to_vec();
        digests.extend_from_slice(&other.digests);
        let mut scopes = self.scopes.to_vec();
        scopes.extend_from_slice(&other.scopes);
        Self {
            digests: digests.into(),
            scopes: scopes.into(),
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

    /// Whether `key` is one of the keys.
    pub fn accepts(&self, key: &[u8]) -> bool {
        self.scope_of(key).is_some()
    }

    /// The scope of `key`, if it is one of the keys. Compares its digest
    /// with every stored digest in constant time, without stopping at a
    /// match (the last match wins).
    pub fn scope_of(&self, key: &[u8]) -> Option<&Scope> {
        let d = digest(key);
        let mut found = subtle::Choice::from(0);
        let mut index = 0u64;
        for (i, stored) in self.digests.iter().enumerate() {
            let hit = stored.ct_eq(&d);
            index = u64::conditional_select(&index, &(i as u64), hit);
            found |= hit;
        }
        bool::from(found).then(|| &self.scopes[index as usize])
    }
}

/// Routes a `lease` key may call, by method and route template: reading
/// pools, and what `ProxyManager` over `RemoteStorage` needs to lease
/// (register its consumer, acquire, read, renew and release its leases,
/// the pool's counters for callbacks, the capacity long poll). Not the
/// routes that show other consumers' leases or every proxy (`find`,
/// `snapshot`, the lease list), nor any that change pools or proxies.
pub(crate) const LEASE_ROUTES: &[(Method, &str)] = &[
    (Method::GET, "/v1/pools/"),
    (Method::GET, "/v1/pools"),
    (Method::GET, "/v1/pools/{pool}"),
    (Method::POST, "/v1/leases/"),
    (Method::POST, "/v1/leases"),
    (Method::GET, "/v1/leases/{lease}"),
    (Method::POST, "/v1/leases/{lease}/release"),
    (Method::POST, "/v1/leases/{lease}/renew"),
    (Method::POST, "/v1/consumers"),
    (Method::GET, "/v1/pools/{pool}/stats"),
    (Method::POST, "/v1/pools/{pool}/wait"),
    (Method::POST, "/v1/pools/{pool}/leases"),
    (Method::GET, "/v1/pools/{pool}/leases/{lease}"),
    (Method::POST, "/v1/pools/{pool}/leases/{lease}/release"),
    (Method::POST, "/v1/pools/{pool}/leases/{lease}/renew"),
];

/// Whether the caller may see `lease`: any key but one bound to another consumer.
pub(crate) fn visible(caller: Option<&Caller>, lease: &Lease) -> bool {
    caller
        .and_then(Caller::bound_consumer)
        .is_none_or(|c| *c == lease.consumer)
}

/// The consumer a request acts as: the one `named` (body field `field`),
/// `default` when none is named; for a key bound to a consumer, that
/// consumer, and 403 when another is named.
pub(crate) fn consumer_for(
    caller: Option<&Caller>,
    named: Option<&str>,
    field: &'static str,
) -> Result<ConsumerName, ApiError> {
    match (caller.and_then(Caller::bound_consumer), named) {
        (Some(bound), Some(named)) if bound.as_str() != named => Err(ApiError {
            field: Some(field.into()),
            reason: Some("this API key leases only as its own consumer".into()),
            ..ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "this API key may not lease as another consumer",
            )
        }),
        (Some(bound), _) => Ok(bound.clone()),
        (None, named) => Ok(ConsumerName::from(named.unwrap_or(DEFAULT_CONSUMER))),
    }
}

fn allowed(scope: &Scope, method: &Method, route: Option<&str>) -> bool {
    match (scope, route) {
        (Scope::Admin, _) => true,
        // No route: the answer is a 404 or 405 whoever asks.
        (Scope::Lease { .. }, None) => true,
        (Scope::Lease { .. }, Some(r)) => LEASE_ROUTES.iter().any(|(m, p)| m == method && *p == r),
    }
}

/// Middleware: 401 without a key, 403 with a wrong one or one whose scope
/// does not cover the route, when keys are set; otherwise the request goes
/// on with its [`Caller`].
pub(crate) async fn require_key(
    State(keys): State<ApiKeys>,
    mut req: Request,
    next: Next,
) -> Response {
    if keys.is_empty() {
        return next.run(req).await;
    }
    let Some(key) = req.headers().get(API_KEY_HEADER) else {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing X-API-Key header",
        )
        .into_response();
    };
    let Some(scope) = keys.scope_of(key.as_bytes()).cloned() else {
        return ApiError::new(StatusCode::FORBIDDEN, "forbidden", "API key not accepted")
            .into_response();
    };
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    if !allowed(&scope, req.method(), route) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this API key may only read pools and lease (scope lease)",
        )
        .into_response();
    }
    req.extensions_mut().insert(Caller { scope });
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_configured_keys() {
        let keys = ApiKeys::from_list(" alpha, ,beta ").unwrap();
        assert_eq!(keys.len(), 2);
        assert!(keys.accepts(b"alpha"));
        assert!(keys.accepts(b"beta"));
        assert!(!keys.accepts(b"alph"));
        assert!(!keys.accepts(b" alpha"));
        assert!(!keys.accepts(b""));
        assert!(!ApiKeys::none().accepts(b"alpha"));
        assert_eq!(keys.scope_of(b"beta"), Some(&Scope::Admin));
    }

    #[test]
    fn entries_carry_scopes_and_bad_ones_are_named_without_the_key() {
        let keys =
            ApiKeys::from_list("root,scraper lease, bound lease:worker-7 ,also admin").unwrap();
        assert_eq!(keys.len(), 4);
        assert_eq!(keys.scope_of(b"root"), Some(&Scope::Admin));
        assert_eq!(keys.scope_of(b"also"), Some(&Scope::Admin));
        assert_eq!(
            keys.scope_of(b"scraper"),
            Some(&Scope::Lease { consumer: None })
        );
        assert_eq!(
            keys.scope_of(b"bound"),
            Some(&Scope::Lease {
                consumer: Some(ConsumerName::from("worker-7"))
            })
        );
        assert_eq!(keys.scope_of(b"scraper lease"), None);
        for (bad, entry) in [
            ("ok,secret-key superuser", 2),
            ("secret-key lease:", 1),
            ("a,b,secret-key lease extra", 3),
        ] {
            let e = ApiKeys::from_list(bad).unwrap_err();
            assert_eq!(e.entry, entry, "{bad}");
            assert!(!e.to_string().contains("secret-key"), "{e}");
        }
        let e = ApiKeys::from_lines(
            "# keys
k1
k2 nope
",
        )
        .unwrap_err();
        assert_eq!(e.entry, 3);
    }

    #[test]
    fn lease_scope_covers_only_the_leasing_routes() {
        let lease = Scope::Lease { consumer: None };
        for (m, r) in [
            (Method::GET, "/v1/pools/"),
            (Method::GET, "/v1/pools/{pool}"),
            (Method::POST, "/v1/leases/"),
            (Method::GET, "/v1/leases/{lease}"),
            (Method::POST, "/v1/leases/{lease}/release"),
        ] {
            assert!(allowed(&lease, &m, Some(r)), "{m} {r}");
        }
        for (m, r) in [
            (Method::POST, "/v1/pools/"),
            (Method::DELETE, "/v1/pools/{pool}"),
            (Method::GET, "/v1/pools/{pool}/proxies/"),
            (Method::POST, "/v1/pools/{pool}/proxies/"),
            (Method::PATCH, "/v1/pools/{pool}/proxies/{proxy}"),
            (Method::GET, "/metrics"),
        ] {
            assert!(!allowed(&lease, &m, Some(r)), "{m} {r}");
            assert!(allowed(&Scope::Admin, &m, Some(r)), "{m} {r}");
        }
    }

    #[test]
    fn file_lines_skip_blanks_and_comments() {
        let keys = ApiKeys::from_lines("# admin keys\nk1\n\n  k2  \n#k3\n").unwrap();
        assert_eq!(keys.len(), 2);
        assert!(keys.accepts(b"k2"));
        assert!(!keys.accepts(b"#k3"));
        assert_eq!(keys.merged(&ApiKeys::admin(["k4"])).len(), 3);
    }

    #[test]
    fn debug_shows_no_key_material() {
        let keys = ApiKeys::from_list("super-secret").unwrap();
        let text = format!("{keys:?}");
        assert_eq!(text, "ApiKeys(1 keys)");
    }
}
