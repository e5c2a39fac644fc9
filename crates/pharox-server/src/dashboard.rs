//! The dashboard: one static page at `/`, its script and its stylesheet,
//! embedded in the binary (no build step, nothing from a CDN).
//!
//! The three routes are in the route table (public, documented under the
//! `dashboard` tag). The page carries no data and needs no key. Its script
//! reads the `/v1` JSON routes (pools, their stats, snapshots and stats
//! history) with the API key the user types, kept in the tab's
//! `sessionStorage` and sent as `X-API-Key`, never in a URL. The only thing the server writes into the
//! page is whether keys are configured, so the script asks for one before
//! its first request instead of collecting a 401.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use pharox_core::Storage;

use crate::routes::AppState;

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

/// The page a server answers at `/`: `auth_required` when it has API keys.
pub(crate) fn page_for(auth_required: bool) -> Bytes {
    let auth = if auth_required { "required" } else { "off" };
    Bytes::from(INDEX.replace("{{AUTH}}", auth))
}

/// `GET /`: the dashboard page (no data in it; its script reads `/v1`).
#[utoipa::path(
    get,
    path = "/",
    operation_id = "dashboard",
    tag = "dashboard",
    responses((status = 200, description = "The dashboard page", content_type = "text/html", body = String))
)]
pub(crate) async fn page<S: Storage>(State(app): State<AppState<S>>) -> Response {
    asset("text/html; charset=utf-8", app.dashboard.clone())
}

/// `GET /dashboard.js`: the page's script.
#[utoipa::path(
    get,
    path = "/dashboard.js",
    operation_id = "dashboard_script",
    tag = "dashboard",
    responses((status = 200, description = "The dashboard's script", content_type = "text/javascript", body = String))
)]
pub(crate) async fn script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        Bytes::from_static(SCRIPT.as_bytes()),
    )
}

/// `GET /dashboard.css`: the page's stylesheet.
#[utoipa::path(
    get,
    path = "/dashboard.css",
    operation_id = "dashboard_style",
    tag = "dashboard",
    responses((status = 200, description = "The dashboard's stylesheet", content_type = "text/css", body = String))
)]
pub(crate) async fn style() -> Response {
    asset(
        "text/css; charset=utf-8",
        Bytes::from_static(STYLE.as_bytes()),
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
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
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
