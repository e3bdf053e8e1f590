//! The web UI (docs/ui.md): three files built into the binary (`nimbus/ui/`), served at `/` and
//! `/ui/`. The page reads `/api/v1/gale/status` and posts Storm's REST actions with the API token;
//! every response carries a Content-Security-Policy that allows only these files and this
//! server, so nothing is fetched from anywhere else and no inline script runs.

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

pub const INDEX_HTML: &str = include_str!("../ui/index.html");
pub const APP_JS: &str = include_str!("../ui/app.js");
pub const APP_CSS: &str = include_str!("../ui/app.css");

/// Only this server's own files and API: no inline script or style, no other origin, no framing.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                       connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn page(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// The UI's routes, for any state (Nimbus's router merges them; `gale local --ui` may too).
pub fn routes<T: Clone + Send + Sync + 'static>() -> Router<T> {
    Router::new()
        .route(
            "/",
            get(|| async { page("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/ui/app.js",
            get(|| async { page("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/ui/app.css",
            get(|| async { page("text/css; charset=utf-8", APP_CSS) }),
        )
        // Browsers ask for it; there is none.
        .route(
            "/favicon.ico",
            get(|| async { axum::http::StatusCode::NO_CONTENT }),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_its_own_files_and_writes_text_as_text() {
        // Its script and style come from /ui/, and nothing else is named.
        assert!(INDEX_HTML.contains(r#"<script src="/ui/app.js" defer></script>"#));
        assert!(!INDEX_HTML.contains("http://") && !INDEX_HTML.contains("https://"));
        assert!(
            !APP_JS.contains("http://")
                || APP_JS
                    .matches("http://")
                    .all(|_| APP_JS.contains("http://www.w3.org/2000/svg"))
        );
        assert!(!APP_JS.contains("https://"));
        // Text reaches the page only through textContent / text nodes.
        assert!(
            !APP_JS.contains("innerHTML")
                && !APP_JS.contains("outerHTML")
                && !APP_JS.contains("insertAdjacentHTML")
        );
        assert!(!APP_JS.contains("eval("));
        assert!(CSP.contains("script-src 'self'") && !CSP.contains("unsafe"));
    }
}
