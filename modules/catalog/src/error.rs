//! Everything that can go wrong in the catalog, and its one mapping to problem+json and back. The variants
//! every module shares (401, 403, 422, 503, 500) and their conversions come from the kernel.

use shop_kernel::Problem;

shop_kernel::module_error! {
    /// Catalog's errors; each variant's doc says the HTTP status it becomes.
    pub enum CatalogError {
        /// 404: no such product.
        #[error("product not found")]
        NotFound,
        /// 409: another product has this SKU.
        #[error("sku {0} is taken")]
        SkuTaken(String),
    }
    to_problem {
        Self::NotFound => Problem::not_found("No such product."),
        Self::SkuTaken(sku) => Problem::new(
            409,
            "sku_taken",
            "SKU taken",
            format!("Another product has SKU {sku}."),
        )
        .with("sku", sku),
    }
    from_problem(p) {
        codes::NOT_FOUND => Self::NotFound,
        "sku_taken" => Self::SkuTaken(p.extension("sku").unwrap_or_default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shop_kernel::{ApiError, FieldError};

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
