//! Everything that can go wrong in notifications, and its one mapping to problem+json and back. The
//! kernel's shared variants (401, 403, 422, 503, 500) say it all: a malformed event payload is a
//! `Validation` error, an unreachable identity or database `Unavailable` (the relay retries).

shop_kernel::module_error! {
    /// Notifications' errors; each variant's doc says the HTTP status it becomes.
    pub enum NotificationsError {
    }
    to_problem {
    }
    from_problem(p) {
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shop_kernel::{ApiError, FieldError, Problem};

    #[test]
    fn every_error_survives_the_trip_through_problem_json() {
        let all = vec![
            NotificationsError::Unauthenticated,
            NotificationsError::Forbidden,
            NotificationsError::Validation(vec![FieldError::new(
                "limit",
                "must be between 1 and 100",
            )]),
            NotificationsError::IdempotencyKeyReused,
            NotificationsError::IdempotencyKeyInUse,
            NotificationsError::Unavailable("identity did not answer in time".into()),
        ];
        for e in all {
            let wire = serde_json::to_string(&e.to_problem()).unwrap_or_default();
            let back: Problem =
                serde_json::from_str(&wire).unwrap_or_else(|_| Problem::bad_request(""));
            assert_eq!(NotificationsError::from_problem(back), e);
        }
    }

    #[test]
    fn an_internal_fault_reaches_a_remote_caller_as_internal_without_its_cause() {
        let problem = NotificationsError::Internal("secret cause".into()).to_problem();
        assert_eq!(problem.status, 500);
        let back = NotificationsError::from_problem(problem);
        assert!(matches!(&back, NotificationsError::Internal(d) if !d.contains("secret")));
    }
}
