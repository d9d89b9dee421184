//! Reading a multipart upload: field names, count and size limits, type sniffing, and storing each
//! accepted file under a random name as soon as it is complete (so memory holds one file at a time).
//! Any refusal removes what this request already stored.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use actix_multipart::{Field, Multipart};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use serde_json::json;

use super::sniff::{sniff, FileType};
use super::storage::{new_stored_name, BlobStore};
use super::FileServices;
use crate::error::{ApiError, ErrorCode};

/// Largest text field (such as `projectId`) accepted next to the files.
const MAX_TEXT_FIELD: usize = 1024;
/// Largest `metadata` field: room for a full description and every tag, JSON-escaped.
const MAX_METADATA_FIELD: usize = 32 * 1024;
/// Most text fields accepted next to the files (the frontend sends one, `projectId`).
const MAX_TEXT_FIELDS: usize = 16;
/// Longest original name kept for display.
const MAX_ORIGINAL_NAME_CHARS: usize = 255;

/// One accepted and stored file.
#[derive(Debug)]
pub struct Stored {
    pub original_name: String,
    pub stored_name: String,
    pub size: u64,
    pub kind: FileType,
}

#[derive(Debug, Default)]
pub struct Form {
    pub files: Vec<Stored>,
    pub project_id: Option<String>,
    /// The raw `metadata` text field (JSON), for the routes that read it.
    pub metadata: Option<String>,
}

fn unexpected_field() -> ApiError {
    // multer's body, plus `message` for the frontend's error display (CONTRACT §13 #12).
    ApiError::with_body(
        StatusCode::BAD_REQUEST,
        ErrorCode::InvalidBody,
        json!({"error": "Unexpected file field", "message": "Unexpected file field"}),
    )
}

fn human_limit(bytes: u64) -> String {
    const MB: u64 = 1024 * 1024;
    if bytes >= MB && bytes.is_multiple_of(MB) {
        format!("{}MB", bytes / MB)
    } else if bytes.is_multiple_of(1024) {
        format!("{}KB", bytes / 1024)
    } else {
        format!("{bytes}B")
    }
}

fn too_large(limit: u64) -> ApiError {
    ApiError::with_body(
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::PayloadTooLarge,
        json!({"error": "File too large", "limit": human_limit(limit), "message": "File too large"}),
    )
}

pub fn unsupported() -> ApiError {
    ApiError::message(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorCode::UnsupportedMediaType,
        "Unsupported file type",
    )
}

fn malformed() -> ApiError {
    ApiError::bad_request(ErrorCode::InvalidBody, "Invalid multipart body")
}

/// The display name: the last path component of what the client sent, without control characters,
/// so `../../etc/passwd` is kept as `passwd` and never reaches a path.
pub fn display_name(raw: Option<&str>) -> String {
    let last = raw
        .unwrap_or_default()
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or_default();
    let clean: String = last
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_ORIGINAL_NAME_CHARS)
        .collect();
    let clean = clean.trim();
    if clean.is_empty() || clean == "." || clean == ".." {
        "file".to_owned()
    } else {
        clean.to_owned()
    }
}

async fn read_limited(field: &mut Field, limit: u64, ended: &Ended) -> Result<Bytes, ApiError> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = unless_stuck(field.next(), ended).await? {
        let chunk = chunk.map_err(|_| malformed())?;
        if (buf.len() + chunk.len()) as u64 > limit {
            return Err(too_large(limit));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// Set once the request body has ended: everything the parser will ever get is in its buffer.
type Ended = Rc<Cell<bool>>;

/// The request body, noting when it ends.
struct Watched {
    inner: web::Payload,
    ended: Ended,
}

impl futures_util::Stream for Watched {
    type Item = Result<Bytes, actix_web::error::PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let item = Pin::new(&mut self.inner).poll_next(cx);
        if let Poll::Ready(None) = item {
            self.ended.set(true);
        }
        item
    }
}

/// Polls `fut`; a `Pending` after the body ended can never be woken again (actix-multipart waits
/// for more bytes after a part that has no closing boundary), so it is a malformed body.
async fn unless_stuck<F: Future>(fut: F, ended: &Ended) -> Result<F::Output, ApiError> {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| match fut.as_mut().poll(cx) {
        Poll::Ready(out) => Poll::Ready(Ok(out)),
        Poll::Pending if ended.get() => Poll::Ready(Err(malformed())),
        Poll::Pending => Poll::Pending,
    })
    .await
}

/// A multipart stream that remembers it ended: actix-multipart panics when polled again after it
/// returned an error.
struct Parts {
    inner: Multipart,
    done: bool,
    ended: Ended,
}

impl Parts {
    async fn next(
        &mut self,
    ) -> Result<Option<Result<Field, actix_multipart::MultipartError>>, ApiError> {
        if self.done {
            return Ok(None);
        }
        let item = unless_stuck(self.inner.next(), &self.ended).await;
        if !matches!(item, Ok(Some(Ok(_)))) {
            self.done = true;
        }
        item
    }
}

/// Reads the rest of the body (bounded), so the client sees the error answer instead of a reset.
async fn drain(multipart: &mut Parts, mut budget: u64) {
    let ended = multipart.ended.clone();
    while let Ok(Some(Ok(mut field))) = multipart.next().await {
        while let Ok(Some(Ok(chunk))) = unless_stuck(field.next(), &ended).await {
            budget = budget.saturating_sub(chunk.len() as u64);
            if budget == 0 {
                return;
            }
        }
    }
}

fn timed_out() -> ApiError {
    ApiError::message(
        StatusCode::REQUEST_TIMEOUT,
        ErrorCode::RequestTimeout,
        "Upload took too long",
    )
}

/// Reads the form: `file_field` parts (at most `max_files`) and a `projectId` text field.
pub async fn receive(
    services: &FileServices,
    req: &HttpRequest,
    payload: web::Payload,
    file_field: &str,
    max_files: usize,
    no_files: fn() -> ApiError,
) -> Result<Form, ApiError> {
    let ended = Ended::default();
    let body = Watched {
        inner: payload,
        ended: ended.clone(),
    };
    let mut multipart = Parts {
        inner: Multipart::new(req.headers(), body),
        done: false,
        ended,
    };
    // One deadline for the whole request: a client trickling bytes holds a worker slot and delays
    // shutdown, however small its upload.
    let deadline = tokio::time::Instant::now() + services.deadline;
    let mut form = Form::default();
    let result = tokio::time::timeout_at(
        deadline,
        read_all(
            services,
            &mut multipart,
            &mut form,
            file_field,
            max_files,
            no_files,
        ),
    )
    .await
    .unwrap_or_else(|_| Err(timed_out()));
    if let Err(e) = result {
        for stored in &form.files {
            if let Err(err) = services.store.delete(&stored.stored_name).await {
                tracing::warn!(error = %err, name = %stored.stored_name, "cannot remove a refused upload");
            }
        }
        let budget = services.max_file_bytes.saturating_mul(max_files as u64 + 1);
        let _ = tokio::time::timeout_at(deadline, drain(&mut multipart, budget)).await;
        return Err(e);
    }
    Ok(form)
}

async fn read_all(
    services: &FileServices,
    multipart: &mut Parts,
    form: &mut Form,
    file_field: &str,
    max_files: usize,
    no_files: fn() -> ApiError,
) -> Result<(), ApiError> {
    let mut count = 0usize;
    let mut seen_field = false;
    let mut text_fields = 0usize;
    while let Some(field) = multipart.next().await? {
        // A body that is not multipart, or an empty form, has no files (multer's answer too).
        let mut field = field.map_err(|_| if seen_field { malformed() } else { no_files() })?;
        seen_field = true;
        let name = field.name().unwrap_or_default().to_owned();
        let filename = field
            .content_disposition()
            .and_then(|cd| cd.get_filename())
            .map(str::to_owned);
        if filename.is_none() {
            text_fields += 1;
            if text_fields > MAX_TEXT_FIELDS {
                return Err(ApiError::bad_request(
                    ErrorCode::InvalidBody,
                    "Too many form fields",
                ));
            }
            let limit = if name == "metadata" {
                MAX_METADATA_FIELD
            } else {
                MAX_TEXT_FIELD
            };
            let value = read_limited(&mut field, limit as u64, &multipart.ended)
                .await
                .map_err(|e| {
                    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                        ApiError::bad_request(ErrorCode::PayloadTooLarge, "Form field too large")
                    } else {
                        e
                    }
                })?;
            if name == "projectId" {
                let value = std::str::from_utf8(&value)
                    .map_err(|_| {
                        ApiError::bad_request(ErrorCode::InvalidInput, "Invalid projectId")
                    })?
                    .trim();
                if value.contains('\0') {
                    return Err(ApiError::bad_request(
                        ErrorCode::InvalidInput,
                        "Invalid projectId",
                    ));
                }
                form.project_id = (!value.is_empty()).then(|| value.to_owned());
            } else if name == "metadata" {
                let value = std::str::from_utf8(&value).map_err(|_| {
                    ApiError::bad_request(ErrorCode::InvalidInput, "metadata must be a JSON object")
                })?;
                form.metadata = Some(value.to_owned());
            }
            continue;
        }
        if name != file_field {
            return Err(unexpected_field());
        }
        count += 1;
        if count > max_files {
            return Err(unexpected_field());
        }
        let bytes = read_limited(&mut field, services.max_file_bytes, &multipart.ended).await?;
        let original_name = display_name(filename.as_deref());
        let kind = sniff(&bytes, &original_name).ok_or_else(unsupported)?;
        let stored_name = new_stored_name(kind.ext);
        let size = bytes.len() as u64;
        services
            .store
            .put(&stored_name, bytes)
            .await
            .map_err(|e| ApiError::internal("Error uploading files", e))?;
        form.files.push(Stored {
            original_name,
            stored_name,
            size,
            kind,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_lose_their_paths() {
        assert_eq!(display_name(Some("../../etc/passwd")), "passwd");
        assert_eq!(display_name(Some("C:\\Users\\x\\report.pdf")), "report.pdf");
        assert_eq!(display_name(Some("..")), "file");
        assert_eq!(display_name(Some("a\u{0}b\n.txt")), "ab.txt");
        assert_eq!(display_name(None), "file");
    }

    #[test]
    fn limits_read_like_multer() {
        assert_eq!(human_limit(10 * 1024 * 1024), "10MB");
        assert_eq!(human_limit(64 * 1024), "64KB");
        assert_eq!(human_limit(1000), "1000B");
    }
}
