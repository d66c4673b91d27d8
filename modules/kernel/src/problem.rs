//! RFC 9457 problem details: the one shape every error takes on the wire.

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

/// An RFC 9457 problem (`application/problem+json`) with shop's stable `code`.
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
    /// The SKU the problem is about (e.g. `insufficient_stock`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    /// Seconds to wait before retrying (also sent as `Retry-After`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
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
            sku: None,
            retry_after: None,
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

    /// 503 `unavailable`: a module this request needs cannot be reached.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Problem::new(503, codes::UNAVAILABLE, "Service unavailable", detail)
    }

    /// 500 `internal`, deliberately without detail: causes are logged, never sent.
    pub fn internal() -> Self {
        Problem::new(500, codes::INTERNAL, "Internal error", "")
    }

    /// The same problem with the `sku` extension member.
    pub fn with_sku(mut self, sku: &str) -> Self {
        self.sku = Some(sku.to_string());
        self
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
}
