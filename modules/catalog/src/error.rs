//! Everything that can go wrong in the catalog, and its one mapping to problem+json and back.

use shop_kernel::problem::codes;
use shop_kernel::{AccessDenied, ApiError, FieldError, Problem};

/// Catalog's errors; each variant's doc says the HTTP status it becomes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    /// 401: no valid access token.
    #[error("authentication required")]
    Unauthenticated,
    /// 403: the caller lacks the role.
    #[error("not allowed")]
    Forbidden,
    /// 422: invalid input.
    #[error("invalid input: {0:?}")]
    Validation(Vec<FieldError>),
    /// 404: no such product.
    #[error("product not found")]
    NotFound,
    /// 409: another product has this SKU.
    #[error("sku {0} is taken")]
    SkuTaken(String),
    /// 503: a module the catalog needs could not be reached.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// 500: a fault on our side (logged, never sent).
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<AccessDenied> for CatalogError {
    fn from(e: AccessDenied) -> Self {
        match e {
            AccessDenied::Unauthenticated => CatalogError::Unauthenticated,
            AccessDenied::Forbidden => CatalogError::Forbidden,
        }
    }
}

#[cfg(feature = "local")]
impl From<shop_kernel::db::DbError> for CatalogError {
    fn from(e: shop_kernel::db::DbError) -> Self {
        use shop_kernel::db::DbError;
        match e {
            // The database is down or saturated: the module is unavailable (503, retryable), not broken.
            DbError::Connection(reason) => {
                tracing::warn!(%reason, "database unavailable");
                CatalogError::Unavailable("the database is unavailable".into())
            }
            DbError::UnsupportedUrl(_)
            | DbError::Query(_)
            | DbError::Migration(_)
            | DbError::Task(_) => CatalogError::Internal(e.to_string()),
        }
    }
}

#[cfg(feature = "local")]
impl From<diesel::result::Error> for CatalogError {
    fn from(e: diesel::result::Error) -> Self {
        CatalogError::Internal(e.to_string())
    }
}

impl ApiError for CatalogError {
    fn to_problem(&self) -> Problem {
        use CatalogError::*;
        match self {
            Unauthenticated => Problem::unauthenticated(),
            Forbidden => Problem::forbidden("Only admins may do this."),
            Validation(errors) => Problem::validation(errors.clone()),
            NotFound => Problem::not_found("No such product."),
            SkuTaken(sku) => Problem::new(
                409,
                "sku_taken",
                "SKU taken",
                format!("Another product has SKU {sku}."),
            )
            .with("sku", sku),
            Unavailable(detail) => Problem::unavailable(detail.clone()),
            Internal(_) => Problem::internal(),
        }
    }

    fn from_problem(p: Problem) -> Self {
        use CatalogError::*;
        match p.code.as_str() {
            codes::UNAUTHENTICATED => Unauthenticated,
            codes::FORBIDDEN => Forbidden,
            codes::VALIDATION_FAILED => Validation(p.errors.unwrap_or_default()),
            codes::NOT_FOUND => NotFound,
            "sku_taken" => SkuTaken(p.extension("sku").unwrap_or_default()),
            codes::UNAVAILABLE => Unavailable(p.detail_or_empty()),
            _ => Internal(format!("{} {}: {}", p.status, p.code, p.detail_or_empty())),
        }
    }

    fn unavailable(detail: String) -> Self {
        CatalogError::Unavailable(detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_survives_the_trip_through_problem_json() {
        let all = vec![
            CatalogError::Unauthenticated,
            CatalogError::Forbidden,
            CatalogError::Validation(vec![FieldError::new("name", "must be 1-200 characters")]),
            CatalogError::NotFound,
            CatalogError::SkuTaken("A-1".into()),
            CatalogError::Unavailable("catalog did not answer in time".into()),
        ];
        for e in all {
            let wire = serde_json::to_string(&e.to_problem()).unwrap_or_default();
            let back: Problem =
                serde_json::from_str(&wire).unwrap_or_else(|_| Problem::bad_request(""));
            assert_eq!(CatalogError::from_problem(back), e);
        }
    }
}
