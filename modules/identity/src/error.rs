//! Everything that can go wrong in identity, and its one mapping to problem+json and back.

use shop_kernel::problem::codes;
use shop_kernel::{AccessDenied, ApiError, FieldError, Problem};

/// Identity's errors; each variant's doc says the HTTP status it becomes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// 401: no valid access token.
    #[error("authentication required")]
    Unauthenticated,
    /// 403: the caller lacks the role.
    #[error("not allowed")]
    Forbidden,
    /// 422: invalid input.
    #[error("invalid input: {0:?}")]
    Validation(Vec<FieldError>),
    /// 404: no such user (or not yours to see).
    #[error("user not found")]
    NotFound,
    /// 409: an account with this email exists.
    #[error("email taken")]
    EmailTaken,
    /// 401: wrong email or password (the same answer for both).
    #[error("invalid credentials")]
    InvalidCredentials,
    /// 429: too many failed sign-ins; retry after this many seconds.
    #[error("too many attempts; retry after {retry_after}s")]
    Throttled {
        /// Seconds until another attempt is accepted.
        retry_after: u64,
    },
    /// 409: an account with the configured admin email exists and the configured password does not
    /// match it, so it is not promoted.
    #[error("an account with this email exists and the admin password does not match it")]
    AdminPasswordMismatch,
    /// 503: every password-hashing thread stayed busy; retry after this many seconds.
    #[error("password hashing is saturated; retry after {retry_after}s")]
    Busy {
        /// Seconds to wait.
        retry_after: u64,
    },
    /// 503: a module identity needs could not be reached.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// 500: a fault on our side (logged, never sent).
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<AccessDenied> for IdentityError {
    fn from(e: AccessDenied) -> Self {
        match e {
            AccessDenied::Unauthenticated => IdentityError::Unauthenticated,
            AccessDenied::Forbidden => IdentityError::Forbidden,
        }
    }
}

#[cfg(feature = "local")]
impl From<shop_kernel::db::DbError> for IdentityError {
    fn from(e: shop_kernel::db::DbError) -> Self {
        use shop_kernel::db::DbError;
        match e {
            // The database is down or saturated: the module is unavailable (503, retryable), not broken.
            DbError::Connection(reason) => {
                tracing::warn!(%reason, "database unavailable");
                IdentityError::Unavailable("the database is unavailable".into())
            }
            DbError::UnsupportedUrl(_)
            | DbError::Query(_)
            | DbError::Migration(_)
            | DbError::Task(_) => IdentityError::Internal(e.to_string()),
        }
    }
}

#[cfg(feature = "local")]
impl From<diesel::result::Error> for IdentityError {
    fn from(e: diesel::result::Error) -> Self {
        IdentityError::Internal(e.to_string())
    }
}

impl ApiError for IdentityError {
    fn to_problem(&self) -> Problem {
        use IdentityError::*;
        match self {
            Unauthenticated => Problem::unauthenticated(),
            Forbidden => Problem::forbidden("You may not do this."),
            Validation(errors) => Problem::validation(errors.clone()),
            NotFound => Problem::not_found("No such user."),
            EmailTaken => Problem::new(
                409,
                "email_taken",
                "Email taken",
                "An account with this email exists.",
            ),
            InvalidCredentials => Problem::new(
                401,
                "invalid_credentials",
                "Invalid credentials",
                "The email or password is wrong.",
            ),
            Throttled { retry_after } => {
                let mut p = Problem::new(
                    429,
                    codes::RATE_LIMITED,
                    "Too many attempts",
                    format!("Too many failed sign-ins; try again in {retry_after} seconds."),
                );
                p.retry_after = Some(*retry_after);
                p
            }
            AdminPasswordMismatch => Problem::new(
                409,
                "admin_password_mismatch",
                "Admin password mismatch",
                "An account with this email exists and the given password does not match it.",
            ),
            Busy { retry_after } => {
                let mut p = Problem::new(
                    503,
                    "busy",
                    "Busy",
                    "Too many sign-ins and registrations are in progress; retry shortly.",
                );
                p.retry_after = Some(*retry_after);
                p
            }
            Unavailable(detail) => Problem::unavailable(detail.clone()),
            Internal(_) => Problem::internal(),
        }
    }

    fn from_problem(p: Problem) -> Self {
        use IdentityError::*;
        match p.code.as_str() {
            codes::UNAUTHENTICATED => Unauthenticated,
            codes::FORBIDDEN => Forbidden,
            codes::VALIDATION_FAILED => Validation(p.errors.unwrap_or_default()),
            codes::NOT_FOUND => NotFound,
            "email_taken" => EmailTaken,
            "invalid_credentials" => InvalidCredentials,
            "admin_password_mismatch" => AdminPasswordMismatch,
            "busy" => Busy {
                retry_after: p.retry_after.unwrap_or(1),
            },
            codes::RATE_LIMITED => Throttled {
                retry_after: p.retry_after.unwrap_or(1),
            },
            codes::UNAVAILABLE => Unavailable(p.detail_or_empty()),
            _ => Internal(format!("{} {}: {}", p.status, p.code, p.detail_or_empty())),
        }
    }

    fn unavailable(detail: String) -> Self {
        IdentityError::Unavailable(detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_survives_the_trip_through_problem_json() {
        let all = vec![
            IdentityError::Unauthenticated,
            IdentityError::Forbidden,
            IdentityError::Validation(vec![FieldError::new(
                "password",
                "must be 12-128 characters",
            )]),
            IdentityError::NotFound,
            IdentityError::EmailTaken,
            IdentityError::InvalidCredentials,
            IdentityError::Throttled { retry_after: 42 },
            IdentityError::AdminPasswordMismatch,
            IdentityError::Busy { retry_after: 2 },
            IdentityError::Unavailable("identity did not answer in time".into()),
        ];
        for e in all {
            let wire = serde_json::to_string(&e.to_problem()).unwrap_or_default();
            let back: Problem =
                serde_json::from_str(&wire).unwrap_or_else(|_| Problem::bad_request(""));
            assert_eq!(IdentityError::from_problem(back), e);
        }
    }
}
