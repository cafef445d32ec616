//! One error type for the HTTP wire: every refusal becomes a status code and the
//! body `{"error":{"code","message"}}` of SPEC §4, and nothing internal leaks.

use actix_web::error::{JsonPayloadError, PathError, PayloadError, QueryPayloadError};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use queue_core::{QueueError, StoreError};
use schemars::JsonSchema;
use serde::Serialize;

// The body of every refusal: `{"error": {...}}`.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "Error")]
pub(crate) struct ErrorBody {
    error: ErrorDetail,
}

// What was refused and why; written out in place in the document.
#[derive(Serialize, JsonSchema)]
#[schemars(inline)]
struct ErrorDetail {
    /// What kind of refusal; stable, for programs.
    #[schemars(extend("enum" = [
        "bad_request",
        "validation",
        "not_found",
        "conflict",
        "unauthorized",
        "forbidden",
        "unsupported_media_type",
        "payload_too_large",
        "internal"
    ]))]
    code: &'static str,
    /// What went wrong and what to do, for people.
    message: String,
    // Present only when one field is at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(
        with = "String",
        description = "With `validation`, when one field is at fault: its name (`content`, `default_wait_seconds`, ...), so a form can show the message next to it."
    )]
    field: Option<&'static str>,
}

/// Why a request was refused, as the client sees it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// Malformed request: unparsable JSON, a wrong method.
    #[error("{0}")]
    BadRequest(String),
    /// Well-formed but invalid values.
    #[error("{0}")]
    Validation(String),
    /// A well-formed request with one invalid field, named so that a form can show
    /// the message next to it (the body carries `"field"`).
    #[error("{field} {message}")]
    InvalidField {
        /// The field, as the API names it (`content`, `default_wait_seconds`, ...).
        field: &'static str,
        /// What is wrong, phrased to follow the field name.
        message: String,
    },
    /// No such resource.
    #[error("{0}")]
    NotFound(String),
    /// The change breaks a queue rule.
    #[error("{0}")]
    Conflict(String),
    /// Missing or wrong bearer token.
    #[error("{0}")]
    Unauthorized(String),
    /// Foreign Host or Origin.
    #[error("{0}")]
    Forbidden(String),
    /// A state-changing request without `Content-Type: application/json`.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The body is over the limit.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// A method the route does not take.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// Something failed on our side; the details went to the log.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// The refusal of a body over [`BODY_LIMIT`](crate::BODY_LIMIT).
    pub fn payload_too_large() -> Self {
        ApiError::PayloadTooLarge(format!(
            "the request body is over the limit of {} bytes (256 KiB)",
            crate::BODY_LIMIT
        ))
    }

    /// The `code` field of the error body.
    pub const fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) | ApiError::MethodNotAllowed(_) => "bad_request",
            ApiError::Validation(_) | ApiError::InvalidField { .. } => "validation",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::Internal(_) => "internal",
        }
    }

    /// The response for this error.
    pub fn to_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status_code());
        match self {
            ApiError::Unauthorized(_) => {
                res.insert_header(("WWW-Authenticate", "Bearer"));
            }
            // A busy, full or read-only database is usually a passing state: tell
            // scripts when to try again rather than leave them to guess.
            ApiError::Internal(_) => {
                res.insert_header(("Retry-After", RETRY_AFTER_SECS.to_string()));
            }
            _ => {}
        }
        res.json(ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message: self.to_string(),
                field: match self {
                    ApiError::InvalidField { field, .. } => Some(*field),
                    _ => None,
                },
            },
        })
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Validation(_) | ApiError::InvalidField { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            // 503, not 500: every internal failure we know of is the database being
            // busy or unwritable for a moment, and a retry may well succeed.
            ApiError::Internal(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        self.to_response()
    }
}

impl From<QueueError> for ApiError {
    fn from(e: QueueError) -> Self {
        match e {
            QueueError::Validation(v) => ApiError::InvalidField {
                field: v.field,
                message: v.message,
            },
            QueueError::NotFound(id) => ApiError::NotFound(format!("no instruction with id {id}")),
            QueueError::Conflict(c) => ApiError::Conflict(c.to_string()),
            QueueError::UnknownQueue(name) => ApiError::InvalidField {
                field: "queue",
                message: format!(
                    "\"{name}\" does not exist: no instruction was queued on it and no agent called on it yet"
                ),
            },
            other => {
                tracing::error!(error = %other, "a queue operation failed");
                ApiError::Internal(unavailable_message(&other))
            }
        }
    }
}

/// Seconds a client is asked to wait after a 503 (`Retry-After`).
pub(crate) const RETRY_AFTER_SECS: u32 = 1;

/// What a client is told when the store fails: what happened in words an operator
/// can act on, never SQLite's raw text (that goes to the log).
fn unavailable_message(e: &QueueError) -> String {
    let what = match e {
        QueueError::Store(StoreError::Busy) => "the database is locked by another process",
        QueueError::Store(StoreError::ReadOnly(_)) => {
            "the database cannot be written (the file, its folder or the disk is read-only)"
        }
        QueueError::Store(StoreError::Full) => "the disk holding the database is full",
        _ => "the queue could not be read or written just now",
    };
    format!("{what}; nothing was changed, try again")
}

/// Maps body parsing failures: bad syntax is 400, a valid document with wrong or
/// unknown fields is 422, an oversized body 413, a wrong content type 415.
pub(crate) fn json_error(err: JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let api = match &err {
        JsonPayloadError::OverflowKnownLength { .. }
        | JsonPayloadError::Overflow { .. }
        | JsonPayloadError::Payload(PayloadError::Overflow) => ApiError::payload_too_large(),
        JsonPayloadError::ContentType => ApiError::UnsupportedMediaType(String::from(
            "send the body as JSON with `Content-Type: application/json`",
        )),
        // serde_json files a number too big for any machine type, and nesting
        // deeper than it will follow, under syntax errors; but the document is
        // well-formed: the values are what is wrong.
        JsonPayloadError::Deserialize(e) if e.is_data() || well_formed_but_refused(e) => {
            ApiError::Validation(format!("invalid request body: {e}"))
        }
        JsonPayloadError::Deserialize(e) => {
            ApiError::BadRequest(format!("the body is not valid JSON: {e}"))
        }
        other => ApiError::BadRequest(format!("the body could not be read: {other}")),
    };
    api.into()
}

fn well_formed_but_refused(e: &serde_json::Error) -> bool {
    let text = e.to_string();
    text.starts_with("number out of range") || text.starts_with("recursion limit exceeded")
}

/// Reads a request body that must be a JSON object into `T`. serde would
/// otherwise fill a struct from an array by position, so `["x"]` would pass for
/// `{"content":"x"}`.
pub(crate) fn object<T: serde::de::DeserializeOwned>(
    body: serde_json::Value,
) -> Result<T, ApiError> {
    if !body.is_object() {
        return Err(ApiError::Validation(String::from(
            "the body must be a JSON object",
        )));
    }
    serde_json::from_value(body)
        .map_err(|e| ApiError::Validation(format!("invalid request body: {e}")))
}

/// Bad query values (`limit=-1`, `status=bogus`) are validation errors.
pub(crate) fn query_error(err: QueryPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let QueryPayloadError::Deserialize(e) = &err else {
        return ApiError::Validation(format!("invalid query: {err}")).into();
    };
    ApiError::Validation(format!("invalid query: {e}")).into()
}

/// A path segment that does not parse (an id that is not a UUID).
pub(crate) fn path_error(err: PathError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::Validation(format!("invalid path: {err}")).into()
}
