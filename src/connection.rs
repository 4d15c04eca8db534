//! A client's connection, so that even the refusals actix-http writes on its own leave as
//! problem documents.
//!
//! When a request's head cannot be parsed (a URI longer than 64 KiB among them), is larger
//! than actix's 128 KiB buffer, or does not arrive in time, actix-http's dispatcher answers
//! before any middleware runs, with an empty `400`, `431` or `408`. The API answers every
//! other error as `application/problem+json` (RFC 9457), and never with an empty error body,
//! so an empty 4xx on the wire can only be one of those: this stream writes a problem document
//! in its place. Which one an empty `400` was is told by the longest line the client sent
//! since the last answer: longer than the URI limit, it was a URI too long (414).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The longest URI the `http` crate accepts; a longer request line is a 414.
const MAX_URI_BYTES: usize = 65_534;

pub struct ProblemStream<IO> {
    io: IO,
    /// Bytes read since the last line break.
    line: usize,
    /// The longest line read since the last answer was written.
    longest: usize,
    /// A problem document being written in place of a bare refusal, and how much of it is out.
    replacing: Option<(Vec<u8>, usize)>,
}

impl<IO> ProblemStream<IO> {
    pub fn new(io: IO) -> Self {
        Self {
            io,
            line: 0,
            longest: 0,
            replacing: None,
        }
    }

    fn saw(&mut self, bytes: &[u8]) {
        for chunk in bytes.split_inclusive(|b| *b == b'\n') {
            self.line = self.line.saturating_add(chunk.len());
            self.longest = self.longest.max(self.line);
            if chunk.ends_with(b"\n") {
                self.line = 0;
            }
        }
    }
}

/// The problem document for a bare refusal of actix's dispatcher, if `written` is one.
fn replacement(written: &[u8], longest_line: usize) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(written).ok()?;
    let rest = text
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| text.strip_prefix("HTTP/1.0 "))?;
    if !(text.ends_with("\r\n\r\n") && text.contains("\r\ncontent-length: 0\r\n")) {
        return None;
    }
    let (status, title, detail) = match rest.get(..3)? {
        "400" if longest_line > MAX_URI_BYTES => (
            414,
            "URI too long",
            "the request's URI is longer than 65534 bytes",
        ),
        "400" => (
            400,
            "The request could not be read",
            "the request's head is not valid HTTP/1.1",
        ),
        "408" => (
            408,
            "Request timeout",
            "the request's head was not sent in time",
        ),
        "431" => (
            431,
            "Request header fields too large",
            "the request's head is larger than 128 KiB",
        ),
        _ => return None,
    };
    let kind = match status {
        414 => "uri-too-long",
        400 => "malformed",
        408 => "request-timeout",
        _ => "headers-too-large",
    };
    let body = serde_json::json!({
        "type": format!("/problems/{kind}"), "title": title, "status": status, "detail": detail,
    })
    .to_string();
    let reason = actix_web::http::StatusCode::from_u16(status)
        .ok()?
        .canonical_reason()
        .unwrap_or(title);
    Some(
        format!(
            "HTTP/1.1 {status} {reason}\r\ncontent-type: application/problem+json\r\n\
             content-length: {}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

impl<IO: AsyncRead + Unpin> AsyncRead for ProblemStream<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let read = buf.filled()[before..].to_vec();
            self.saw(&read);
        }
        polled
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for ProblemStream<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.replacing.is_none() {
            match replacement(buf, self.longest) {
                Some(problem) => self.replacing = Some((problem, 0)),
                None => {
                    // An answer of the app's own: the next request's lines are counted afresh.
                    self.longest = self.line;
                    return Pin::new(&mut self.io).poll_write(cx, buf);
                }
            }
        }
        // The whole refusal is consumed only once the whole problem document is out, so the
        // dispatcher never hands over the rest of a half-replaced answer.
        let this = &mut *self;
        if let Some((problem, written)) = this.replacing.as_mut() {
            while *written < problem.len() {
                match Pin::new(&mut this.io).poll_write(cx, &problem[*written..]) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    Poll::Ready(Ok(n)) => *written += n,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return Poll::Pending,
                }
            }
        }
        this.replacing = None;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BARE_400: &[u8] =
        b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\ndate: Tue, 01 Dec 2026 21:48:30 GMT\r\n\r\n";

    fn status_and_type(bytes: &[u8]) -> (String, bool) {
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        let status = text[9..12].to_owned();
        (
            status,
            text.contains("content-type: application/problem+json"),
        )
    }

    /// issue 12 (11): each bare refusal of the dispatcher becomes a problem document, a
    /// request line past the URI limit a 414; the app's own answers pass untouched.
    #[test]
    fn bare_refusals_become_problem_documents() {
        let cases: [(&[u8], usize, Option<&str>); 6] = [
            (BARE_400, 10, Some("400")),
            (BARE_400, 100_000, Some("414")),
            (b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n", 0, Some("408")),
            (b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\nconnection: close\r\n\r\n", 0, Some("431")),
            (b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/problem+json\r\ncontent-length: 12\r\n\r\n{\"status\":1}", 0, None),
            (b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n", 0, None),
        ];
        for (written, longest, expected) in cases {
            let got = replacement(written, longest).map(|r| status_and_type(&r));
            assert_eq!(got, expected.map(|s| (s.to_owned(), true)), "{longest}");
        }
    }

    #[test]
    fn the_longest_line_since_the_last_answer_is_counted() {
        let mut stream = ProblemStream::new(tokio::io::empty());
        stream.saw(b"GET /");
        stream.saw(&[b'a'; 70_000]);
        stream.saw(b" HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(stream.longest > MAX_URI_BYTES);
        assert_eq!(stream.line, 0);
    }
}
