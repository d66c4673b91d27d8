//! Everything that can go wrong in identity, and its one mapping to problem+json and back. The variants
//! every module shares (401, 403, 422, 503, 500) and their conversions come from the kernel.

use shop_kernel::Problem;
use shop_kernel::problem::codes;

shop_kernel::module_error! {
    /// Identity's errors; each variant's doc says the HTTP status it becomes.
    pub enum IdentityError {
        /// 404: no such user (or not yours to see).
        #[error("user not found")]
        NotFound,
        /// 404: no undelivered identity event with that id.
        #[error("event not found")]
        EventNotFound,
        /// 409: an account with this email exists.
        #[error("email taken")]
        EmailTaken,
        /// 401: wrong email or password (the same answer for both).
        #[error("invalid credentials")]
        InvalidCredentials,
        /// 429: too many sign-ins or registrations; retry after this many seconds.
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
    }
    to_problem {
        Self::NotFound => Problem::not_found("No such user."),
        Self::EventNotFound => Problem::event_not_found(),
        Self::EmailTaken => Problem::new(
            409,
            "email_taken",
            "Email taken",
            "An account with this email exists.",
        ),
        Self::InvalidCredentials => Problem::new(
            401,
            "invalid_credentials",
            "Invalid credentials",
            "The email or password is wrong.",
        ),
        Self::Throttled { retry_after } => {
            let mut p = Problem::new(
                429,
                codes::RATE_LIMITED,
                "Too many attempts",
                format!("Too many attempts; try again in {retry_after} seconds."),
            );
            p.retry_after = Some(*retry_after);
            p
        },
        Self::AdminPasswordMismatch => Problem::new(
            409,
            "admin_password_mismatch",
            "Admin password mismatch",
            "An account with this email exists and the given password does not match it.",
        ),
        Self::Busy { retry_after } => {
            let mut p = Problem::new(
                503,
                "busy",
                "Busy",
                "Too many sign-ins and registrations are in progress; retry shortly.",
            );
            p.retry_after = Some(*retry_after);
            p
        },
    }
    from_problem(p) {
        codes::NOT_FOUND => Self::NotFound,
        codes::EVENT_NOT_FOUND => Self::EventNotFound,
        "email_taken" => Self::EmailTaken,
        "invalid_credentials" => Self::InvalidCredentials,
        codes::RATE_LIMITED => Self::Throttled {
            retry_after: p.retry_after.unwrap_or(1),
        },
        "admin_password_mismatch" => Self::AdminPasswordMismatch,
        "busy" => Self::Busy {
            retry_after: p.retry_after.unwrap_or(1),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shop_kernel::{ApiError, FieldError};

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
            IdentityError::EventNotFound,
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
