//! What every request is held to and every response carries, whatever its route: a deadline
//! for the body, and `Cache-Control: no-store` on the API's answers.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use actix_web::HttpMessage;
use futures_util::Stream;

/// How long a client may take to send a request's body once its head has arrived.
#[derive(Clone, Copy, Debug)]
pub struct BodyDeadline(pub Duration);

/// The error a body sent too slowly ends with; the JSON extractor turns it into a 408.
pub fn is_body_timeout(error: &PayloadError) -> bool {
    matches!(error, PayloadError::Io(e) if e.kind() == std::io::ErrorKind::TimedOut)
}

/// Middleware: the body must arrive within the deadline. A client trickling a body a byte at a
/// time would otherwise hold its connection (and a worker's attention) for as long as it likes.
pub async fn body_deadline(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let deadline = req
        .app_data::<actix_web::web::Data<BodyDeadline>>()
        .map(|d| d.0);
    if let Some(limit) = deadline {
        let payload = req.take_payload();
        let timed: actix_http::BoxedPayloadStream = Box::pin(Deadline {
            inner: payload,
            timer: Box::pin(tokio::time::sleep(limit)),
        });
        req.set_payload(Payload::from(timed));
    }
    next.call(req).await
}

struct Deadline {
    inner: Payload,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl Stream for Deadline {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Poll::Ready(item) = Pin::new(&mut self.inner).poll_next(cx) {
            return Poll::Ready(item);
        }
        match self.timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the body was not sent in time",
            ))))),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Middleware: no answer of the API may be kept by a browser or a proxy cache; they carry
/// health data, and the rest tells who may see it.
pub async fn no_store(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let api = req.path().starts_with("/v1/");
    let mut res = next.call(req).await?;
    if api {
        res.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    Ok(res)
}
