//! The catalog contract: what other modules and remote callers may ask of the catalog.

use serde::{Deserialize, Serialize};
use shop_kernel::{Money, Page};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use validator::Validate;

use crate::error::CatalogError;

/// A product as sold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Product {
    /// Product id (UUID v7).
    pub id: Uuid,
    /// Stock-keeping unit, unique; inventory keys stock by it.
    pub sku: String,
    /// Display name.
    pub name: String,
    /// Longer description (may be empty).
    pub description: String,
    /// Unit price in the shop currency.
    pub price: Money,
    /// Inactive products are hidden from listings and cannot be ordered.
    pub active: bool,
    /// When the product was created.
    #[serde(serialize_with = "shop_kernel::time::rfc3339")]
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// When the product last changed.
    #[serde(serialize_with = "shop_kernel::time::rfc3339")]
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// Body of `POST /api/v1/products`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, Validate)]
pub struct NewProduct {
    /// 1–64 characters of `A-Z a-z 0-9 - _ .`, unique.
    #[validate(custom(function = "shop_kernel::validation::validate_sku"))]
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub sku: String,
    /// 1–200 characters.
    #[validate(
        length(min = 1, max = 200, message = "must be 1-200 characters"),
        custom(function = "shop_kernel::validation::validate_single_line")
    )]
    #[schema(
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u001F\\u007F-\\u009F]*$",
        min_length = 1,
        max_length = 200
    )]
    pub name: String,
    /// 0–5000 characters.
    #[serde(default)]
    #[validate(
        length(max = 5000, message = "must be at most 5000 characters"),
        custom(function = "shop_kernel::validation::validate_text")
    )]
    #[schema(
        pattern = "^[^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*$",
        max_length = 5000
    )]
    pub description: String,
    /// Unit price; amount ≥ 0, in the shop currency.
    #[validate(nested)]
    pub price: Money,
}

/// Body of `PATCH /api/v1/products/{id}`: only the fields present change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema, Validate)]
pub struct ProductPatch {
    /// New name, 1–200 characters.
    #[validate(
        length(min = 1, max = 200, message = "must be 1-200 characters"),
        custom(function = "shop_kernel::validation::validate_single_line")
    )]
    #[schema(
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u001F\\u007F-\\u009F]*$",
        min_length = 1,
        max_length = 200
    )]
    pub name: Option<String>,
    /// New description, 0–5000 characters.
    #[validate(
        length(max = 5000, message = "must be at most 5000 characters"),
        custom(function = "shop_kernel::validation::validate_text")
    )]
    #[schema(
        pattern = "^[^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F\\u007F-\\u009F]*$",
        max_length = 5000
    )]
    pub description: Option<String>,
    /// New unit price.
    #[validate(nested)]
    pub price: Option<Money>,
    /// Activate or deactivate.
    pub active: Option<bool>,
}

/// Query of `GET /api/v1/products`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct ProductQuery {
    /// Search, at most 100 characters, no control characters. Words are runs of letters and digits,
    /// compared lowercased; a product matches when every word of `q` (the first 16) begins a word of its
    /// name or description, or appears anywhere in its SKU. Products matching every word in their name or
    /// SKU come first, then those matched with their description's help; each group oldest first.
    #[param(max_length = 100, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$")]
    pub q: Option<String>,
    /// Page size, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// Opaque cursor: a previous page's `next_cursor` (of the same `q`).
    #[param(pattern = "^2?[0-9a-fA-F]{32}$")]
    pub cursor: Option<String>,
}

shop_kernel::contract! {
    /// What the catalog offers: products and prices.
    pub trait CatalogApi {
        module = "catalog";
        error = CatalogError;
        client = CatalogClient;

        /// Active products, oldest first; with `q`, those matching it, best first; anyone. Read-only.
        Read fn list_products(query: ProductQuery) -> Page<Product>, for [Anyone];

        /// One product, active or not; anyone. Read-only.
        Read fn get_product(id: Uuid) -> Product, for [Anyone];

        /// Many products by id in one call (at most 500 ids); unknown ids are left out. Read-only.
        Read fn get_products(ids: Vec<Uuid>) -> Vec<Product>, for [Anyone];

        /// Creates a product; admins only. Not idempotent: a repeat fails with `sku_taken`.
        Once fn create_product(product: NewProduct) -> Product, for [Admin];

        /// Changes the fields present in the patch; admins only. Idempotent.
        Idempotent fn update_product(id: Uuid, patch: ProductPatch) -> Product, for [Admin];
    }
}
