//! The exporter's HTTP surface: the answer to a request, from the request and the shared state.
//! No I/O; not pure either: it reads the latest publication, and `/health` reads the clock (how
//! long ago the poller finished an attempt, `State::healthy`).
//!
//! `GET` and `HEAD` on each path: `/metrics` answers the published exposition in the format the
//! `Accept` header asks for (OpenMetrics 1.0.0, else text 0.0.4); `/health` 200 `ok` while the
//! poller has finished an attempt recently, else 503; `/` a short page. Other paths 404, other
//! methods 405 with `Allow: GET, HEAD`.
//!
//! Out of scope: sockets, request parsing, bounds (`http.rs`); producing the exposition (the
//! poller).

use std::sync::Arc;

use crate::core::exposition::Format;

use super::http::{Request, Response};
use super::state::{Publication, State};

const INDEX: &str = "<!DOCTYPE html>\n<html><head><title>ecs-container-exporter</title></head>\n\
<body><h1>ecs-container-exporter</h1><p><a href=\"/metrics\">Metrics</a> &middot; \
<a href=\"/health\">Health</a></p></body></html>\n";

/// The published exposition in one format, as a response body (no copy).
struct Scrape(Arc<Publication>, Format);

impl AsRef<[u8]> for Scrape {
    fn as_ref(&self) -> &[u8] {
        self.0.body(self.1).as_bytes()
    }
}

/// The answer to a request.
pub fn route(request: &Request, state: &State) -> Response {
    let known = matches!(request.path.as_str(), "/metrics" | "/health" | "/");
    if !known {
        return Response::text(404, "not found\n");
    }
    if request.method != "GET" && request.method != "HEAD" {
        let mut response = Response::text(405, "method not allowed\n");
        response.allow = Some("GET, HEAD");
        return response;
    }
    match request.path.as_str() {
        "/metrics" => {
            let format = Format::negotiate(request.accept.as_deref());
            Response {
                status: 200,
                content_type: format.content_type(),
                body: Box::new(Scrape(state.latest(), format)),
                allow: None,
            }
        }
        "/health" if state.healthy() => Response::text(200, "ok\n"),
        "/health" => Response::text(503, "no recent poll\n"),
        _ => Response {
            status: 200,
            content_type: "text/html; charset=utf-8",
            body: Box::new(INDEX),
            allow: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::exposition::Exposition;
    use std::time::Duration;

    fn get(path: &str, accept: Option<&str>) -> Request {
        Request::new("GET", path, accept)
    }

    fn state() -> State {
        let state = State::new(Duration::from_secs(60), false);
        state.publish(Publication {
            attempted: None,
            exposition: Exposition {
                text: "a 1\n".into(),
                openmetrics: "a 1\n# EOF\n".into(),
            },
            poll: None,
        });
        state
    }

    #[test]
    fn metrics_answers_the_published_bytes_in_the_format_asked_for() {
        let state = state();
        let text = route(&get("/metrics", None), &state);
        assert_eq!(
            (text.status, text.content_type, text.bytes()),
            (
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                &b"a 1\n"[..]
            )
        );
        let om = route(
            &get(
                "/metrics",
                Some("application/openmetrics-text;version=1.0.0"),
            ),
            &state,
        );
        assert_eq!(om.bytes(), b"a 1\n# EOF\n");
        assert!(om.content_type.starts_with("application/openmetrics-text"));
    }

    #[test]
    fn health_follows_the_last_poll_attempt() {
        let fresh = State::new(Duration::from_secs(60), false);
        assert_eq!(route(&get("/health", None), &fresh).status, 503);
        assert_eq!(route(&get("/health", None), &state()).status, 200);
    }

    #[test]
    fn unknown_paths_are_404_and_other_methods_405_with_allow() {
        let state = state();
        assert_eq!(route(&get("/nope", None), &state).status, 404);
        let response = route(&Request::new("POST", "/metrics", None), &state);
        assert_eq!((response.status, response.allow), (405, Some("GET, HEAD")));
        let head = Request::new("HEAD", "/metrics", None);
        assert_eq!(route(&head, &state).status, 200);
        let index = route(&get("/", None), &state);
        assert!(index.content_type.starts_with("text/html"));
    }
}
