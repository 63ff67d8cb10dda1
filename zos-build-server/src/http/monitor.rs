//! The monitor page: three static files compiled into the binary.
//!
//! The page (`assets/monitor.html`, `.css`, `.js`) needs nothing at run time
//! but this server: no CDN, no build step, no external font. It opens the
//! `/buildio` websocket on its own origin and draws what arrives, every text
//! from a push or a log as text, never as markup. The Content-Security-Policy
//! sent with the HTML holds the page to that: scripts and styles from this
//! origin only, no inline code, network only back to the same host (and its
//! websocket). See `docs/monitor.md`.

use super::response::{with_type, Body};
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_SECURITY_POLICY, X_CONTENT_TYPE_OPTIONS};
use hyper::{Response, StatusCode};

/// The page.
pub const HTML: &str = include_str!("../../assets/monitor.html");
/// Its style sheet, served at `/monitor/monitor.css`.
pub const CSS: &str = include_str!("../../assets/monitor.css");
/// Its script, served at `/monitor/monitor.js`.
pub const JS: &str = include_str!("../../assets/monitor.js");

/// The policy sent with the page.
pub const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self'; script-src 'self'";

/// The monitor's answer for `path`: the page at `/`, `/monitor` and
/// `/monitor/`, its style sheet and script under `/monitor/`; `None` for
/// any other path.
pub fn monitor_asset(path: &str) -> Option<Response<Body>> {
    let (body, content_type, is_page) = match path {
        "/" | "/monitor" | "/monitor/" => (HTML, "text/html; charset=utf-8", true),
        "/monitor/monitor.css" => (CSS, "text/css; charset=utf-8", false),
        "/monitor/monitor.js" => (JS, "text/javascript; charset=utf-8", false),
        _ => return None,
    };
    let mut response = with_type(StatusCode::OK, body, content_type);
    let headers = response.headers_mut();
    // Revalidated on every load: a new server version is picked up at once.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if is_page {
        headers.insert(
            CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY_VALUE),
        );
    }
    Some(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn header<'a>(response: &'a Response<Body>, name: &str) -> Option<&'a str> {
        response.headers().get(name).and_then(|v| v.to_str().ok())
    }

    async fn body_of(response: Response<Body>) -> String {
        let bytes = response
            .into_body()
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[tokio::test]
    async fn every_route_answers_its_file_with_its_type() {
        let routes = [
            ("/", "text/html; charset=utf-8", HTML),
            ("/monitor", "text/html; charset=utf-8", HTML),
            ("/monitor/", "text/html; charset=utf-8", HTML),
            ("/monitor/monitor.css", "text/css; charset=utf-8", CSS),
            ("/monitor/monitor.js", "text/javascript; charset=utf-8", JS),
        ];
        for (path, content_type, file) in routes {
            let response = monitor_asset(path).unwrap_or_else(|| panic!("{path} is not served"));
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            assert_eq!(
                header(&response, "content-type"),
                Some(content_type),
                "{path}"
            );
            assert_eq!(
                header(&response, "cache-control"),
                Some("no-cache"),
                "{path}"
            );
            assert_eq!(
                header(&response, "x-content-type-options"),
                Some("nosniff"),
                "{path}"
            );
            let csp = header(&response, "content-security-policy");
            if content_type.starts_with("text/html") {
                assert_eq!(csp, Some(CONTENT_SECURITY_POLICY_VALUE), "{path}");
            } else {
                assert_eq!(csp, None, "{path}");
            }
            assert_eq!(body_of(response).await, file, "{path}");
        }
    }

    #[test]
    fn other_paths_are_not_the_monitors() {
        for path in [
            "/monitor/monitor.html",
            "/monitor/other.js",
            "/monitor/monitor.js/",
            "/monitor/../monitor.js",
            "/monitor.js",
            "/index.html",
            "/build/status",
            "",
        ] {
            assert!(monitor_asset(path).is_none(), "{path} should not be served");
        }
    }

    #[test]
    fn the_policy_is_the_strict_one() {
        assert_eq!(
            CONTENT_SECURITY_POLICY_VALUE,
            "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; \
             style-src 'self'; script-src 'self'"
        );
    }

    /// Every value of `attribute="..."` in `html`.
    fn attribute_values<'a>(html: &'a str, attribute: &str) -> Vec<&'a str> {
        let needle = format!("{attribute}=\"");
        let mut values = Vec::new();
        let mut rest = html;
        while let Some(at) = rest.find(&needle) {
            let preceded_by_space = rest[..at].ends_with(|c: char| c.is_ascii_whitespace());
            rest = &rest[at + needle.len()..];
            let end = rest.find('"').unwrap_or(rest.len());
            if preceded_by_space {
                values.push(&rest[..end]);
            }
            rest = &rest[end..];
        }
        values
    }

    #[test]
    fn the_page_loads_only_its_own_two_files() {
        let mut references = attribute_values(HTML, "src");
        references.extend(attribute_values(HTML, "href"));
        references.sort_unstable();
        // `data:,` is an empty icon: the browser asks for no /favicon.ico.
        assert_eq!(
            references,
            ["/monitor/monitor.css", "/monitor/monitor.js", "data:,"]
        );
        // Anything else that could load or run something.
        let lower = HTML.to_ascii_lowercase();
        for forbidden in [
            "<style", " style=", "<iframe", "<object", "<embed", "<img", "@import", "url(",
        ] {
            assert!(!lower.contains(forbidden), "the page holds {forbidden:?}");
        }
        assert_eq!(lower.matches("<script").count(), 1, "one script, by src");
        assert!(
            lower.contains("<script src=\"/monitor/monitor.js\" defer></script>"),
            "the script tag is empty (inline code would be refused by the policy)"
        );
        // No inline event handler attribute (onclick=, onload=...).
        for (at, _) in lower.match_indices(" on") {
            let name: String = lower[at + 1..]
                .chars()
                .take_while(|c| c.is_ascii_alphabetic())
                .collect();
            assert!(
                !lower[at + 1 + name.len()..].starts_with('='),
                "inline handler {name}= in the page"
            );
        }
    }

    #[test]
    fn the_page_has_the_ids_the_browser_tests_use() {
        assert!(HTML.contains(
            "<div id=\"disconnected\" class=\"banner\" role=\"alert\" hidden>Disconnected from the server — reconnecting…</div>"
        ));
        assert!(HTML.contains("<section id=\"running\""));
        assert!(HTML.contains("<section id=\"history\""));
        for id in [
            "running-list",
            "running-count",
            "history-list",
            "connection",
            "tracking",
        ] {
            assert!(HTML.contains(&format!("id=\"{id}\"")), "{id}");
            assert!(JS.contains(&format!("getElementById('{id}')")), "{id}");
        }
    }

    #[test]
    fn the_script_never_parses_markup() {
        for forbidden in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
            "DOMParser",
            "createContextualFragment",
            "srcdoc",
            "setAttribute('style'",
        ] {
            assert!(!JS.contains(forbidden), "monitor.js uses {forbidden}");
        }
        // Timers are given functions, never strings of code.
        for call in ["setTimeout(", "setInterval("] {
            for (at, _) in JS.match_indices(call) {
                let argument = JS[at + call.len()..].trim_start();
                assert!(
                    !argument.starts_with(['\'', '"', '`']),
                    "{call} with a string of code"
                );
            }
        }
    }

    #[test]
    fn the_socket_url_follows_the_page() {
        assert!(JS.contains(
            "(location.protocol === 'https:' ? 'wss:' : 'ws:') + '//' + location.host + '/buildio'"
        ));
    }

    #[test]
    fn nothing_is_fetched_from_elsewhere() {
        for (name, file) in [
            ("monitor.html", HTML),
            ("monitor.js", JS),
            ("monitor.css", CSS),
        ] {
            let lower = file.to_ascii_lowercase();
            for scheme in ["http://", "https://", "//cdn", "@import", "@font-face"] {
                assert!(!lower.contains(scheme), "{name} holds {scheme}");
            }
        }
        // The style sheet loads nothing at all.
        assert!(!CSS.contains("url("), "monitor.css loads a resource");
    }

    #[test]
    fn the_console_is_bounded_and_drawn_once_per_frame() {
        assert!(JS.contains("const CONSOLE_LINES = 500;"));
        assert!(JS.contains("requestAnimationFrame(renderFrame)"));
        assert!(JS.contains("const RECONNECT_MS = 2000;"));
    }
}
