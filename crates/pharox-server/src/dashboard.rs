//! The dashboard: one static page at `/`, its script and its stylesheet,
//! embedded in the binary (no build step, nothing from a CDN).
//!
//! The page carries no data and needs no key. Its script reads the `/v1`
//! JSON routes (pools, their stats, snapshots and stats history) with the
//! API key the user types, kept in the tab's `sessionStorage` and sent as
//! `X-API-Key`, never in a URL. The only thing the server writes into the
//! page is whether keys are configured, so the script asks for one before
//! its first request instead of collecting a 401.

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The page; `{{AUTH}}` becomes `required` or `off`.
const INDEX: &str = include_str!("../assets/dashboard/index.html");
const SCRIPT: &str = include_str!("../assets/dashboard/dashboard.js");
const STYLE: &str = include_str!("../assets/dashboard/dashboard.css");

/// The policy of the three answers: scripts and styles only from the
/// server's own files (no inline script or style), requests only to the
/// server itself, no frames, forms or plugins.
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; \
     script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// `GET /` (the page), `GET /dashboard.js` and `GET /dashboard.css`, public.
/// `auth_required`: whether the server has API keys.
pub(crate) fn router<S: Clone + Send + Sync + 'static>(auth_required: bool) -> Router<S> {
    let auth = if auth_required { "required" } else { "off" };
    let page = Bytes::from(INDEX.replace("{{AUTH}}", auth));
    Router::new()
        .route(
            "/",
            get(move || {
                let page = page.clone();
                async move { asset("text/html; charset=utf-8", page) }
            }),
        )
        .route(
            "/dashboard.js",
            get(|| async { asset("text/javascript; charset=utf-8", Bytes::from_static(SCRIPT.as_bytes())) }),
        )
        .route(
            "/dashboard.css",
            get(|| async { asset("text/css; charset=utf-8", Bytes::from_static(STYLE.as_bytes())) }),
        )
}

/// A 200 with `body`, its type, the policy, and no caching beyond
/// revalidation (a new binary serves a new page).
fn asset(content_type: &'static str, body: Bytes) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CONTENT_SECURITY_POLICY),
            ),
            (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
            (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
            (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_has_no_inline_script_or_style() {
        // The policy forbids them: the browser would refuse to run them.
        assert!(!INDEX.contains("<style"));
        assert!(!INDEX.contains(" style="));
        let handler = INDEX.split(" on").skip(1).find(|rest| {
            let name: String = rest.chars().take_while(char::is_ascii_lowercase).collect();
            !name.is_empty() && rest[name.len()..].starts_with('=')
        });
        assert_eq!(handler, None, "no inline event handlers");
        for tag in INDEX.match_indices("<script") {
            let rest = &INDEX[tag.0..];
            let end = rest.find('>').unwrap();
            assert!(rest[..end].contains("src="), "{}", &rest[..end]);
        }
        assert!(INDEX.contains("{{AUTH}}"));
    }

    #[test]
    fn script_never_puts_the_key_in_a_url_or_the_console() {
        assert!(!SCRIPT.contains("console."));
        assert!(!SCRIPT.contains("innerHTML"), "data goes in as text only");
        assert!(!SCRIPT.contains("api_key="));
    }
}
