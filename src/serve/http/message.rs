//! HTTP/1.1 messages as the server needs them: a request head parsed into a [`Request`], a
//! [`Response`] and the bytes of its head. Pure: no sockets.
//!
//! Out of scope: reading and writing them (`http.rs`), what they say (`routes.rs`).

/// A parsed request head.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The path without its query.
    pub path: String,
    pub accept: Option<String>,
    pub(super) keep_alive: bool,
    pub(super) content_length: usize,
    pub(super) chunked: bool,
}

impl Request {
    /// A request without a body (for handlers' tests).
    pub fn new(method: &str, path: &str, accept: Option<&str>) -> Request {
        Request {
            method: method.to_owned(),
            path: path.to_owned(),
            accept: accept.map(str::to_owned),
            ..Request::default()
        }
    }
}

/// An answer: status, type, body, and the `Allow` header of a 405.
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Box<dyn AsRef<[u8]> + Send>,
    pub allow: Option<&'static str>,
}

impl Response {
    /// A plain-text answer.
    pub fn text(status: u16, body: &'static str) -> Response {
        Response {
            status,
            content_type: "text/plain",
            body: Box::new(body),
            allow: None,
        }
    }

    pub fn bytes(&self) -> &[u8] {
        (*self.body).as_ref()
    }

    /// The status line and headers, with the blank line that ends them.
    pub(super) fn head(&self, keep_alive: bool) -> String {
        let status = self.status;
        let reason = match status {
            200 => "OK",
            400 => "Bad Request",
            404 => "Not Found",
            405 => "Method Not Allowed",
            413 => "Content Too Large",
            431 => "Request Header Fields Too Large",
            _ => "Service Unavailable",
        };
        let mut head = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: {}\r\n",
            self.content_type,
            self.bytes().len(),
            if keep_alive { "keep-alive" } else { "close" }
        );
        if let Some(allow) = self.allow {
            head.push_str("Allow: ");
            head.push_str(allow);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        head
    }
}

/// A request head that is not HTTP/1.x as this server reads it.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum HeadError {
    Malformed,
}

/// Where the head ends (after its blank line), accepting bare `\n` line ends too.
pub(super) fn find_head_end(buffer: &[u8]) -> Option<usize> {
    let crlf = buffer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4);
    let lf = buffer.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Reads a request head (request line and headers).
pub(super) fn parse(head: &[u8]) -> Result<Request, HeadError> {
    let text = std::str::from_utf8(head).map_err(|_| HeadError::Malformed)?;
    let mut lines = text.lines();
    let request_line = lines.next().ok_or(HeadError::Malformed)?;
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HeadError::Malformed);
    };
    let http11 = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        _ => return Err(HeadError::Malformed),
    };
    if method.is_empty()
        || !method.bytes().all(|b| b.is_ascii_uppercase())
        || !target.starts_with('/')
    {
        return Err(HeadError::Malformed);
    }
    let mut request = Request {
        method: method.to_owned(),
        path: target.split(['?', '#']).next().unwrap_or(target).to_owned(),
        keep_alive: http11,
        ..Request::default()
    };
    for line in lines
        .map(|l| l.trim_end_matches('\r'))
        .take_while(|l| !l.is_empty())
    {
        let (name, value) = line.split_once(':').ok_or(HeadError::Malformed)?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("connection") {
            if value.eq_ignore_ascii_case("close") {
                request.keep_alive = false;
            } else if value.eq_ignore_ascii_case("keep-alive") {
                request.keep_alive = true;
            }
        } else if name.eq_ignore_ascii_case("accept") {
            request.accept = Some(value.to_owned());
        } else if name.eq_ignore_ascii_case("content-length") {
            request.content_length = value.parse().map_err(|_| HeadError::Malformed)?;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            request.chunked = true;
        }
    }
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_heads_parse_with_keep_alive_rules() {
        let r = parse(b"GET /metrics?x=1 HTTP/1.1\r\nAccept: application/openmetrics-text\r\n\r\n")
            .unwrap();
        assert_eq!(r.path, "/metrics");
        assert!(r.keep_alive);
        assert_eq!(r.accept.as_deref(), Some("application/openmetrics-text"));
        assert!(!parse(b"GET / HTTP/1.0\r\n\r\n").unwrap().keep_alive);
        assert!(
            parse(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
                .unwrap()
                .keep_alive
        );
        assert!(
            !parse(b"GET / HTTP/1.1\r\nconnection: close\r\n\r\n")
                .unwrap()
                .keep_alive
        );
        assert_eq!(
            parse(b"POST /x HTTP/1.1\r\nContent-Length: 12\r\n\r\n")
                .unwrap()
                .content_length,
            12
        );
    }

    #[test]
    fn garbage_is_malformed() {
        for bad in [
            &b"\x00\xff\r\n\r\n"[..],
            b"GET\r\n\r\n",
            b"GET / HTTP/2\r\n\r\n",
            b"get / HTTP/1.1\r\n\r\n",
            b"GET metrics HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nno colon\r\n\r\n",
            b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        ] {
            assert_eq!(
                parse(bad),
                Err(HeadError::Malformed),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn head_end_is_found_with_crlf_or_lf() {
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n\r\nrest"), Some(18));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\n\nrest"), Some(16));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n"), None);
    }

    #[test]
    fn response_heads_carry_length_connection_and_allow() {
        let mut r = Response::text(405, "method not allowed\n");
        r.allow = Some("GET, HEAD");
        assert_eq!(
            r.head(true),
            "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain\r\nContent-Length: 19\r\n\
             Connection: keep-alive\r\nAllow: GET, HEAD\r\n\r\n"
        );
        assert!(
            Response::text(200, "ok\n")
                .head(false)
                .contains("Connection: close\r\n")
        );
    }
}
