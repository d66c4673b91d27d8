//! The part of every module's error enum that is the same everywhere, written once.

/// Declares a module's error enum: the variants written here plus the ones every module shares
/// (`Unauthenticated` 401, `Forbidden` 403, `Validation` 422, `Unavailable` 503, `Internal` 500, and the
/// `Idempotency-Key` refusals `IdempotencyKeyReused` 422 and `IdempotencyKeyInUse` 409), the
/// `From` impls for access denials (and, with the module's `local` feature, database errors), and
/// [`ApiError`](crate::ApiError) from the module's own mapping of its variants to problems and back.
///
/// ```ignore
/// shop_kernel::module_error! {
///     /// Catalog's errors; each variant's doc says the HTTP status it becomes.
///     pub enum CatalogError {
///         /// 404: no such product.
///         #[error("product not found")]
///         NotFound,
///     }
///     to_problem {
///         Self::NotFound => Problem::not_found("No such product."),
///     }
///     from_problem(p) {
///         codes::NOT_FOUND => Self::NotFound,
///     }
/// }
/// ```
///
/// `to_problem` must cover every variant written here (the compiler checks it); `from_problem` maps stable
/// codes back, and any code it does not know becomes `Internal`.
#[macro_export]
macro_rules! module_error {
    (
        $(#[$attr:meta])*
        pub enum $name:ident {
            $($variants:tt)*
        }
        to_problem {
            $($pat:pat => $problem:expr),* $(,)?
        }
        from_problem($p:ident) {
            $($code:pat => $variant:expr),* $(,)?
        }
    ) => {
        $(#[$attr])*
        #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
        pub enum $name {
            $($variants)*
            /// 401: no valid access token.
            #[error("authentication required")]
            Unauthenticated,
            /// 403: the caller may not do this.
            #[error("not allowed")]
            Forbidden,
            /// 422: invalid input.
            #[error("invalid input: {0:?}")]
            Validation(Vec<$crate::FieldError>),
            /// 422: an idempotency key was reused for a different request.
            #[error("idempotency key reused with a different request")]
            IdempotencyKeyReused,
            /// 409: the first request with this idempotency key is still running.
            #[error("idempotency key in use by a request still running")]
            IdempotencyKeyInUse,
            /// 503: a module or database this one needs could not be reached.
            #[error("unavailable: {0}")]
            Unavailable(String),
            /// 500: a fault on our side (logged, never sent).
            #[error("internal error: {0}")]
            Internal(String),
        }

        impl From<$crate::AccessDenied> for $name {
            fn from(e: $crate::AccessDenied) -> Self {
                match e {
                    $crate::AccessDenied::Unauthenticated => $name::Unauthenticated,
                    $crate::AccessDenied::Forbidden => $name::Forbidden,
                }
            }
        }

        #[cfg(feature = "local")]
        impl From<$crate::db::DbError> for $name {
            fn from(e: $crate::db::DbError) -> Self {
                use $crate::db::DbError;
                match e {
                    // The database is down or saturated: the module is unavailable (503, retryable).
                    DbError::Connection(reason) => {
                        $crate::__private::tracing::warn!(%reason, "database unavailable");
                        $name::Unavailable("the database is unavailable".into())
                    }
                    DbError::Contention(reason) => {
                        $crate::__private::tracing::warn!(%reason, "database contention");
                        $name::Unavailable("too much contention; retry shortly".into())
                    }
                    DbError::Query(query) => $name::from(query),
                    DbError::UnsupportedUrl(_) | DbError::Migration(_) | DbError::Task(_) => {
                        $name::Internal(e.to_string())
                    }
                }
            }
        }

        #[cfg(feature = "local")]
        impl From<$name> for $crate::db::TxError<$name> {
            fn from(e: $name) -> Self {
                $crate::db::TxError::Fail(e)
            }
        }

        #[cfg(feature = "local")]
        impl From<$crate::__private::diesel::result::Error> for $name {
            fn from(e: $crate::__private::diesel::result::Error) -> Self {
                // A deadlock, a lost connection or a timeout says nothing about the request: 503, so that
                // callers (the checkout saga among them) retry instead of taking it as a refusal.
                match $crate::db::fault(&e) {
                    Some(fault) => {
                        $crate::__private::tracing::warn!(?fault, error = %e, "transient database fault");
                        $name::Unavailable("the database is busy; retry shortly".into())
                    }
                    None => $name::Internal(e.to_string()),
                }
            }
        }

        impl $crate::ApiError for $name {
            fn to_problem(&self) -> $crate::Problem {
                match self {
                    $($pat => $problem,)*
                    $name::Unauthenticated => $crate::Problem::unauthenticated(),
                    $name::Forbidden => $crate::Problem::forbidden("You may not do this."),
                    $name::Validation(errors) => $crate::Problem::validation(errors.clone()),
                    $name::IdempotencyKeyReused => $crate::Problem::idempotency_key_reused(),
                    $name::IdempotencyKeyInUse => $crate::Problem::idempotency_key_in_use(),
                    $name::Unavailable(detail) => $crate::Problem::unavailable(detail.clone()),
                    $name::Internal(_) => $crate::Problem::internal(),
                }
            }

            fn from_problem($p: $crate::Problem) -> Self {
                use $crate::problem::codes;
                match $p.code.as_str() {
                    codes::UNAUTHENTICATED => $name::Unauthenticated,
                    codes::FORBIDDEN => $name::Forbidden,
                    codes::VALIDATION_FAILED => $name::Validation($p.errors.unwrap_or_default()),
                    codes::UNAVAILABLE => $name::Unavailable($p.detail_or_empty()),
                    codes::IDEMPOTENCY_KEY_REUSED => $name::IdempotencyKeyReused,
                    codes::IDEMPOTENCY_KEY_IN_USE => $name::IdempotencyKeyInUse,
                    $($code => $variant,)*
                    _ => $name::Internal(format!(
                        "{} {}: {}",
                        $p.status,
                        $p.code,
                        $p.detail_or_empty()
                    )),
                }
            }

            fn unavailable(detail: String) -> Self {
                $name::Unavailable(detail)
            }
        }
    };
}
