//! RFC 9457 problem details: the one shape every error takes on the wire.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One invalid input field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FieldError {
    /// The field's name (`price.amount_minor` for nested fields).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    /// A field error.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// An RFC 9457 problem (`application/problem+json`) with shop's stable `code`. Problems of a module may add
/// members of their own (`sku`, `balance`, `order_id`...); 5xx answers add `request_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// A URI reference naming the problem type (`/problems/<code>`).
    #[serde(rename = "type")]
    pub type_: String,
    /// Short human-readable summary of the problem type.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// Human-readable explanation of this occurrence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Stable machine-readable code, e.g. `sku_taken`.
    pub code: String,
    /// Invalid fields (validation errors only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
    /// Seconds to wait before retrying (also sent as `Retry-After`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    /// Members a module adds for its own problems (`sku`, `balance`, `order_id`...), and `request_id` on
    /// 5xx answers; they travel to remote callers unchanged.
    #[serde(flatten, default)]
    #[schema(ignore)]
    pub extensions: BTreeMap<String, serde_json::Value>,
}

/// The media type of problem responses.
pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

impl Problem {
    /// A problem with the given status, stable code, title and detail.
    pub fn new(status: u16, code: &str, title: &str, detail: impl Into<String>) -> Self {
        let detail = detail.into();
        Problem {
            type_: format!("/problems/{code}"),
            title: title.to_string(),
            status,
            detail: (!detail.is_empty()).then_some(detail),
            code: code.to_string(),
            errors: None,
            retry_after: None,
            extensions: BTreeMap::new(),
        }
    }

    /// 422 `validation_failed` listing the invalid fields.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let mut p = Problem::new(
            422,
            codes::VALIDATION_FAILED,
            "Validation failed",
            "One or more fields are invalid.",
        );
        p.errors = Some(errors);
        p
    }

    /// 400 `bad_request`: the request could not be read (malformed JSON, wrong types, bad parameters).
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Problem::new(400, codes::BAD_REQUEST, "Bad request", detail)
    }

    /// 401 `unauthenticated`.
    pub fn unauthenticated() -> Self {
        Problem::new(
            401,
            codes::UNAUTHENTICATED,
            "Unauthenticated",
            "Sign in first.",
        )
    }

    /// 403 `forbidden`.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Problem::new(403, codes::FORBIDDEN, "Forbidden", detail)
    }

    /// 404 `not_found`.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Problem::new(404, codes::NOT_FOUND, "Not found", detail)
    }

    /// 503 `unavailable` with `Retry-After: 1`: a module or database this request needs cannot be
    /// reached or did not answer in time; the same request may well succeed a moment later.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        let mut p = Problem::new(503, codes::UNAVAILABLE, "Service unavailable", detail);
        p.retry_after = Some(1);
        p
    }

    /// 408 `request_timeout`: the request's body did not arrive in time (`Connection: close` goes with
    /// it: the rest of the body is not read).
    pub fn request_timeout(detail: impl Into<String>) -> Self {
        Problem::new(408, codes::REQUEST_TIMEOUT, "Request timeout", detail)
    }

    /// 404 `event_not_found`: the module's outbox holds no undelivered event with that id.
    pub fn event_not_found() -> Self {
        Problem::new(
            404,
            codes::EVENT_NOT_FOUND,
            "Event not found",
            "No undelivered event of this module has this id.",
        )
    }

    /// 422 `idempotency_key_reused`: the key came with another request before.
    pub fn idempotency_key_reused() -> Self {
        Problem::new(
            422,
            codes::IDEMPOTENCY_KEY_REUSED,
            "Idempotency key reused",
            "This Idempotency-Key was already used with a different request.",
        )
    }

    /// 409 `idempotency_key_in_use`: the first request with the key is still running.
    pub fn idempotency_key_in_use() -> Self {
        Problem::new(
            409,
            codes::IDEMPOTENCY_KEY_IN_USE,
            "Idempotency key in use",
            "The first request with this Idempotency-Key is still running; retry shortly.",
        )
    }

    /// 500 `internal`, deliberately without detail: causes are logged, never sent.
    pub fn internal() -> Self {
        Problem::new(500, codes::INTERNAL, "Internal error", "")
    }

    /// The same problem with an extension member (a value that cannot be encoded is left out).
    pub fn with(mut self, name: &str, value: impl Serialize) -> Self {
        // An extension named like a standard member would overwrite it on the wire.
        debug_assert!(
            ![
                "type", "title", "status", "detail", "instance", "code", "errors"
            ]
            .contains(&name),
            "problem extension {name:?} shadows a standard member"
        );
        if let Ok(value) = serde_json::to_value(value) {
            self.extensions.insert(name.to_string(), value);
        }
        self
    }

    /// An extension member, if present and of type `T`.
    pub fn extension<T: DeserializeOwned>(&self, name: &str) -> Option<T> {
        self.extensions
            .get(name)
            .and_then(|v| T::deserialize(v).ok())
    }

    /// What a client is shown of a 5xx: the status, code and title, a generic detail and the request id
    /// to quote; the cause stays in the log.
    pub fn redacted_for_client(&self, request_id: Option<&str>) -> Problem {
        let detail = match self.status {
            503 => "A service this request needs is unavailable; retry later.",
            504 => "A service this request needs did not answer in time; retry later.",
            500 => "Something went wrong on our side.",
            _ => "The server could not complete the request.",
        };
        let mut shown = Problem::new(self.status, &self.code, &self.title, detail);
        shown.retry_after = self.retry_after;
        if let Some(id) = request_id {
            shown = shown.with("request_id", id);
        }
        shown
    }

    /// The detail, or an empty string.
    pub fn detail_or_empty(&self) -> String {
        self.detail.clone().unwrap_or_default()
    }
}

/// Stable codes shared by every module.
pub mod codes {
    /// 400: the request could not be read.
    pub const BAD_REQUEST: &str = "bad_request";
    /// 401: missing or invalid credentials.
    pub const UNAUTHENTICATED: &str = "unauthenticated";
    /// 403: authenticated but not allowed.
    pub const FORBIDDEN: &str = "forbidden";
    /// 404: no such resource (or not yours).
    pub const NOT_FOUND: &str = "not_found";
    /// 404: no undelivered event with that id.
    pub const EVENT_NOT_FOUND: &str = "event_not_found";
    /// 405: the resource exists but not with this method.
    pub const METHOD_NOT_ALLOWED: &str = "method_not_allowed";
    /// 413: the body is larger than the server accepts.
    pub const PAYLOAD_TOO_LARGE: &str = "payload_too_large";
    /// 415: the body is not JSON.
    pub const UNSUPPORTED_MEDIA_TYPE: &str = "unsupported_media_type";
    /// 422: fields failed validation.
    pub const VALIDATION_FAILED: &str = "validation_failed";
    /// 422: an Idempotency-Key was reused with a different request.
    pub const IDEMPOTENCY_KEY_REUSED: &str = "idempotency_key_reused";
    /// 408: the request's body did not arrive in time.
    pub const REQUEST_TIMEOUT: &str = "request_timeout";
    /// 409: the first request with this Idempotency-Key is still running.
    pub const IDEMPOTENCY_KEY_IN_USE: &str = "idempotency_key_in_use";
    /// 429: too many attempts.
    pub const RATE_LIMITED: &str = "rate_limited";
    /// 500: a fault on our side; details are only logged.
    pub const INTERNAL: &str = "internal";
    /// 503: a module this request needs cannot be reached.
    pub const UNAVAILABLE: &str = "unavailable";

    // Deployment faults between services: the calling service logs them and answers 503, never these.
    /// 401 on `/internal`: the service credential is missing or not accepted.
    pub const SERVICE_UNAUTHENTICATED: &str = "service_unauthenticated";
    /// 403 on `/internal`: the credential may not speak for the module named as the origin.
    pub const ORIGIN_NOT_ALLOWED: &str = "origin_not_allowed";
    /// 404 on `/internal`: no such module or operation is served here.
    pub const UNKNOWN_OPERATION: &str = "unknown_operation";
    /// 400 on `/internal`: the call could not be read (malformed JSON, arguments of the wrong shape).
    pub const BAD_CALL: &str = "bad_call";

    /// True for the codes that mean the services are deployed or built wrong, not that the user erred.
    pub fn is_deployment_fault(code: &str) -> bool {
        matches!(
            code,
            SERVICE_UNAUTHENTICATED | ORIGIN_NOT_ALLOWED | UNKNOWN_OPERATION | BAD_CALL
        )
    }
}

/// A module's error enum: maps to a problem and back, losslessly for every variant.
pub trait ApiError:
    std::error::Error + From<crate::AccessDenied> + Send + Sync + Sized + 'static
{
    /// The problem this error is sent as.
    fn to_problem(&self) -> Problem;
    /// The error a received problem stands for (inverse of [`ApiError::to_problem`]).
    fn from_problem(problem: Problem) -> Self;
    /// A module could not be reached or did not answer in time (503).
    fn unavailable(detail: String) -> Self;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_serialize_with_rfc_9457_field_names_and_omit_empty_extensions() {
        let p = Problem::new(409, "sku_taken", "SKU taken", "");
        let v = serde_json::to_value(&p).unwrap_or_default();
        assert_eq!(v["type"], "/problems/sku_taken");
        assert_eq!(v["status"], 409);
        assert!(v.get("detail").is_none());
        assert!(v.get("errors").is_none());
    }

    #[test]
    fn module_members_survive_the_wire() {
        let p = Problem::new(402, "insufficient_funds", "Insufficient funds", "")
            .with("balance", 1250)
            .with("order_id", "0192");
        let wire = serde_json::to_string(&p).unwrap_or_default();
        assert!(wire.contains(r#""balance":1250"#), "{wire}");
        let back: Problem = serde_json::from_str(&wire).unwrap_or_else(|_| Problem::internal());
        assert_eq!(back, p);
        assert_eq!(back.extension::<i64>("balance"), Some(1250));
        assert_eq!(
            back.extension::<String>("order_id").as_deref(),
            Some("0192")
        );
    }

    #[test]
    fn five_hundreds_shown_to_clients_carry_no_cause() {
        let p = Problem::unavailable("http://10.0.0.7:8081 refused: connection reset")
            .with("sku", "A-1");
        let shown = p.redacted_for_client(Some("req-1"));
        let wire = serde_json::to_string(&shown).unwrap_or_default();
        assert!(
            !wire.contains("10.0.0.7") && !wire.contains("A-1"),
            "{wire}"
        );
        assert_eq!(shown.code, "unavailable");
        assert_eq!(
            shown.extension::<String>("request_id").as_deref(),
            Some("req-1")
        );
    }
}
