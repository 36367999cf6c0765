//! A minimal HTTP/1.1 client for the Docker API on a unix socket: one
//! request per connection (`Connection: close`), the body read to the end,
//! `Content-Length` and chunked bodies understood. Enough for `/_ping`,
//! `/version`, `/containers/json` and a container's create/start/wait/delete;
//! no docker CLI and no HTTP crate needed.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Result<serde_json::Value, String> {
        serde_json::from_slice(&self.body).map_err(|e| {
            format!(
                "the API answered HTTP {} with invalid JSON: {e}",
                self.status
            )
        })
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Why a request failed, in words for the admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The socket refused us (EACCES): not root and not in the group.
    PermissionDenied(String),
    /// No socket, or nobody listening (ENOENT, ECONNREFUSED).
    NotListening(String),
    Other(String),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::PermissionDenied(m) | HttpError::NotListening(m) | HttpError::Other(m) => {
                f.write_str(m)
            }
        }
    }
}

pub fn get(socket: &Path, path: &str, timeout: Duration) -> Result<Response, HttpError> {
    request(socket, "GET", path, None, timeout)
}

/// Sends one request; `body` is sent as `application/json`.
pub fn request(
    socket: &Path,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
    timeout: Duration,
) -> Result<Response, HttpError> {
    request_typed(
        socket,
        method,
        path,
        body.map(|b| ("application/json", b)),
        timeout,
    )
}

/// Sends one request with a body of the given content type.
pub fn request_typed(
    socket: &Path,
    method: &str,
    path: &str,
    body: Option<(&str, &[u8])>,
    timeout: Duration,
) -> Result<Response, HttpError> {
    let mut stream = UnixStream::connect(socket).map_err(|e| match e.kind() {
        ErrorKind::PermissionDenied => HttpError::PermissionDenied(format!(
            "cannot connect to {}: permission denied",
            socket.display()
        )),
        ErrorKind::NotFound | ErrorKind::ConnectionRefused => {
            HttpError::NotListening(format!("cannot connect to {}: {e}", socket.display()))
        }
        _ => HttpError::Other(format!("cannot connect to {}: {e}", socket.display())),
    })?;
    let io = |what: &str, e: std::io::Error| {
        HttpError::Other(format!(
            "{what} {} {path} on {}: {e}",
            method,
            socket.display()
        ))
    };
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| io("cannot set a timeout for", e))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: docker\r\nUser-Agent: dockyard\r\nConnection: close\r\n"
    );
    if let Some((content_type, b)) = body {
        head.push_str(&format!(
            "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    head.push_str("\r\n");
    stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body.map(|(_, b)| b).unwrap_or_default()))
        .map_err(|e| io("cannot send", e))?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(|e| {
        if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) {
            HttpError::Other(format!(
                "no answer to {method} {path} on {} within {} s",
                socket.display(),
                timeout.as_secs()
            ))
        } else {
            io("cannot read the answer to", e)
        }
    })?;
    parse_response(&raw).map_err(|m| HttpError::Other(format!("{method} {path}: {m}")))
}

/// Parses a complete HTTP/1.x response (the connection was closed after it).
pub fn parse_response(raw: &[u8]) -> Result<Response, String> {
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Err(format!(
            "not an HTTP response (no end of headers in {} bytes)",
            raw.len()
        ));
    };
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|_| version.starts_with("HTTP/1."))
        .ok_or_else(|| format!("not an HTTP response: {status_line:?}"))?;
    let mut length = None;
    let mut chunked = false;
    for line in lines {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        if k.eq_ignore_ascii_case("content-length") {
            length = Some(
                v.parse::<usize>()
                    .map_err(|_| format!("bad Content-Length {v:?}"))?,
            );
        } else if k.eq_ignore_ascii_case("transfer-encoding") {
            chunked = v.to_ascii_lowercase().contains("chunked");
        }
    }
    let rest = &raw[end + 4..];
    let body = if chunked {
        dechunk(rest)?
    } else if let Some(n) = length {
        if rest.len() < n {
            return Err(format!("the body ended after {} of {n} bytes", rest.len()));
        }
        rest[..n].to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Response { status, body })
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = data.windows(2).position(|w| w == b"\r\n") else {
            return Err("chunked body ended without its last chunk".into());
        };
        let size_text = String::from_utf8_lossy(&data[..eol]);
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        data = &data[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size {
            return Err("chunked body ended inside a chunk".into());
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size..];
        data = data.strip_prefix(b"\r\n").unwrap_or(data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::os::unix::net::UnixListener;
    use std::thread;

    /// A fake daemon: answers each connection with the next canned response
    /// and hands back the request lines it saw.
    fn serve(
        dir: &Path,
        answers: Vec<Vec<u8>>,
    ) -> (std::path::PathBuf, thread::JoinHandle<Vec<String>>) {
        let sock = dir.join("docker.sock");
        let listener = UnixListener::bind(&sock).expect("bind");
        let handle = thread::spawn(move || {
            let mut seen = Vec::new();
            for answer in answers {
                let (mut conn, _) = listener.accept().expect("accept");
                let mut reader = BufReader::new(conn.try_clone().expect("clone"));
                let mut first = String::new();
                reader.read_line(&mut first).expect("request line");
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).expect("header");
                    if line == "\r\n" || line.is_empty() {
                        break;
                    }
                    if let Some(v) = line.strip_prefix("Content-Length: ") {
                        length = v.trim().parse().expect("length");
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).expect("body");
                seen.push(format!(
                    "{} {}",
                    first.trim_end(),
                    String::from_utf8_lossy(&body)
                ));
                conn.write_all(&answer).expect("answer");
            }
            seen
        });
        (sock, handle)
    }

    #[test]
    fn get_with_content_length_and_chunked_bodies() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (sock, server) = serve(
            dir.path(),
            vec![
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nOK".to_vec(),
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n[{\"I\r\n7;x=y\r\nd\":1},\r\n3\r\n{}]\r\n0\r\n\r\n".to_vec(),
                b"HTTP/1.1 201 Created\r\n\r\n{\"Id\":\"abc\"}".to_vec(),
            ],
        );
        let t = Duration::from_secs(5);
        let ping = get(&sock, "/_ping", t).expect("ping");
        assert_eq!((ping.status, ping.text().as_str()), (200, "OK"));
        let list = get(&sock, "/containers/json", t).expect("list");
        let v = list.json().expect("json");
        assert_eq!(v.as_array().map(Vec::len), Some(2), "{v}");
        let created = request(
            &sock,
            "POST",
            "/containers/create",
            Some(b"{\"Image\":\"x\"}"),
            t,
        )
        .expect("create");
        assert_eq!(created.status, 201);
        assert_eq!(created.json().expect("json")["Id"], "abc");
        let seen = server.join().expect("server");
        assert_eq!(
            seen,
            [
                "GET /_ping HTTP/1.1 ",
                "GET /containers/json HTTP/1.1 ",
                "POST /containers/create HTTP/1.1 {\"Image\":\"x\"}"
            ]
        );
    }

    #[test]
    fn errors_are_classified() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = Duration::from_secs(2);
        match get(&dir.path().join("none.sock"), "/_ping", t) {
            Err(HttpError::NotListening(m)) => assert!(m.contains("none.sock"), "{m}"),
            other => panic!("expected NotListening, got {other:?}"),
        }
        // A server that never answers: the timeout ends the wait.
        let sock = dir.path().join("silent.sock");
        let listener = UnixListener::bind(&sock).expect("bind");
        let keep = thread::spawn(move || {
            let conn = listener.accept();
            thread::sleep(Duration::from_secs(3));
            drop(conn);
        });
        match get(&sock, "/_ping", Duration::from_millis(300)) {
            Err(HttpError::Other(m)) => assert!(m.contains("no answer"), "{m}"),
            other => panic!("expected a timeout, got {other:?}"),
        }
        keep.join().expect("join");
    }

    #[test]
    fn malformed_responses_are_errors() {
        for (raw, why) in [
            (&b"garbage"[..], "no end of headers"),
            (b"SSH-2.0 x\r\n\r\n", "not an HTTP response"),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
                "ended after 5 of 10",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                "bad chunk size",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
                "inside a chunk",
            ),
        ] {
            let e = parse_response(raw).expect_err(why);
            assert!(e.contains(why), "{why}: {e}");
        }
    }
}
