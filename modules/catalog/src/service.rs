//! The catalog's business rules.

use shop_kernel::db::{self, Database, is_unique_violation, write_transaction};
use shop_kernel::page::checked_id_page;
use shop_kernel::validation::check;
use shop_kernel::{FieldError, Money, Page, RequestContext};
use uuid::Uuid;

use crate::api::{CatalogApi, NewProduct, Product, ProductPatch, ProductQuery};
use crate::error::CatalogError;
use crate::search::{self, Position};
use crate::store::{self, ProductRow};

/// Settings of the catalog implementation.
#[derive(Debug, Clone)]
pub struct CatalogConfig {
    /// The shop's one currency (ISO 4217); prices in any other are rejected.
    pub currency: String,
}

/// The local implementation of [`CatalogApi`].
#[derive(Debug, Clone)]
pub struct CatalogService {
    db: Database,
    config: CatalogConfig,
    total: std::sync::Arc<search::Total>,
}

type Outcome<T> = Result<T, CatalogError>;

fn product(row: ProductRow) -> Outcome<Product> {
    Ok(Product {
        id: Uuid::parse_str(&row.id)
            .map_err(|e| CatalogError::Internal(format!("bad stored id: {e}")))?,
        sku: row.sku,
        name: row.name,
        description: row.description,
        price: Money::new(row.price_minor, row.currency),
        active: row.active,
        created_at: row.created_at.and_utc(),
        updated_at: row.updated_at.and_utc(),
    })
}

impl CatalogService {
    /// A catalog on `db` (its migrations already applied).
    pub fn new(db: Database, config: CatalogConfig) -> Self {
        CatalogService {
            db,
            config,
            total: Default::default(),
        }
    }

    /// Indexes the words of up to `batch` products cut under an older rule (or none: rows from before word
    /// search), in one transaction; returns how many. The composition root calls it until it returns 0.
    pub async fn index_stale_words(&self, batch: i64) -> Outcome<usize> {
        self.db
            .run(move |conn| {
                write_transaction(conn, |c| store::index_stale(c, batch))
                    .map_err(CatalogError::from)
            })
            .await
    }

    fn check_currency(&self, price: &Money, errors: &mut Vec<FieldError>) {
        if price.currency != self.config.currency {
            errors.push(FieldError::new(
                "price.currency",
                format!("must be {}, the shop currency", self.config.currency),
            ));
        }
    }
}

#[async_trait::async_trait]
impl CatalogApi for CatalogService {
    async fn list_products(
        &self,
        _ctx: &RequestContext,
        query: ProductQuery,
    ) -> Outcome<Page<Product>> {
        let mut errors = Vec::new();
        // A search's cursor in its second tier is the product's id after a 2.
        let (cursor_tier, cursor) = match query.cursor.as_deref() {
            Some(c) if c.len() == 33 && c.starts_with('2') => (2, Some(&c[1..])),
            other => (1, other),
        };
        let (limit, after) = checked_id_page(query.limit, cursor, &mut errors);
        // Checked as sent, before trimming: some control characters are white space to Unicode (NEL, U+0085)
        // and trimming would drop them where the documented pattern refuses them.
        let sent = query.q.as_deref();
        if sent.is_some_and(|q| q.chars().count() > 100) {
            errors.push(FieldError::new("q", "must be at most 100 characters"));
        }
        if sent.is_some_and(|q| q.chars().any(char::is_control)) {
            errors.push(FieldError::new("q", "must not contain control characters"));
        }
        let q = sent.map(str::trim).filter(|q| !q.is_empty());
        let (Some(limit), true) = (limit, errors.is_empty()) else {
            return Err(CatalogError::Validation(errors));
        };
        let Some(q) = q.map(str::to_string) else {
            // The listing has one tier: a search's second-tier cursor is taken as the product it names, as
            // every cursor the documented pattern allows is a position the list accepts.
            let rows = self
                .db
                .run(move |conn| {
                    store::list_active(conn, after.as_deref(), i64::from(limit) + 1)
                        .map_err(CatalogError::from)
                })
                .await?;
            let items = rows.into_iter().map(product).collect::<Outcome<Vec<_>>>()?;
            return Ok(Page::from_rows(items, limit, |p| p.id.simple().to_string()));
        };
        let from = Position {
            tier: cursor_tier,
            after: after.unwrap_or_default(),
        };
        let total = self.total.clone();
        let hits = self
            .db
            .run(move |conn| {
                search::search(conn, &total, &q, &from, i64::from(limit) + 1)
                    .map_err(CatalogError::from)
            })
            .await?;
        let items = hits
            .into_iter()
            .map(|(row, tier)| product(row).map(|p| (p, tier)))
            .collect::<Outcome<Vec<_>>>()?;
        // A tier-2 position is written with a leading 2 (`search::Position`).
        let page = Page::from_rows(items, limit, |(p, tier)| match tier {
            1 => p.id.simple().to_string(),
            _ => format!("{tier}{}", p.id.simple()),
        });
        Ok(Page {
            items: page.items.into_iter().map(|(p, _)| p).collect(),
            next_cursor: page.next_cursor,
        })
    }

    async fn get_product(&self, _ctx: &RequestContext, id: Uuid) -> Outcome<Product> {
        let row = self
            .db
            .run(move |conn| store::by_id(conn, &id.to_string()).map_err(CatalogError::from))
            .await?;
        row.map(product).unwrap_or(Err(CatalogError::NotFound))
    }

    async fn get_products(&self, _ctx: &RequestContext, ids: Vec<Uuid>) -> Outcome<Vec<Product>> {
        if ids.len() > 500 {
            return Err(CatalogError::Validation(vec![FieldError::new(
                "ids",
                "must hold at most 500 ids",
            )]));
        }
        let ids: Vec<String> = ids.iter().map(Uuid::to_string).collect();
        let rows = self
            .db
            .run(move |conn| store::by_ids(conn, &ids).map_err(CatalogError::from))
            .await?;
        rows.into_iter().map(product).collect()
    }

    async fn create_product(&self, ctx: &RequestContext, new: NewProduct) -> Outcome<Product> {
        ctx.require_admin()?;
        let mut errors = check(&new).err().unwrap_or_default();
        self.check_currency(&new.price, &mut errors);
        if new.name.trim().is_empty() && errors.iter().all(|e| e.field != "name") {
            errors.push(FieldError::new("name", "must not be blank"));
        }
        if !errors.is_empty() {
            errors.sort_by(|a, b| a.field.cmp(&b.field));
            return Err(CatalogError::Validation(errors));
        }
        let now = db::now();
        let row = ProductRow {
            id: Uuid::now_v7().to_string(),
            sku: new.sku,
            name: new.name.trim().to_string(),
            description: new.description,
            price_minor: new.price.amount_minor,
            currency: new.price.currency,
            active: true,
            created_at: now,
            updated_at: now,
        };
        let stored = row.clone();
        self.db
            .run(move |conn| {
                write_transaction(conn, |c| store::insert(c, &stored)).map_err(|e| {
                    if is_unique_violation(&e) {
                        CatalogError::SkuTaken(stored.sku.clone())
                    } else {
                        e.into()
                    }
                })
            })
            .await?;
        product(row)
    }

    async fn update_product(
        &self,
        ctx: &RequestContext,
        id: Uuid,
        patch: ProductPatch,
    ) -> Outcome<Product> {
        ctx.require_admin()?;
        let mut errors = check(&patch).err().unwrap_or_default();
        if let Some(price) = &patch.price {
            self.check_currency(price, &mut errors);
        }
        if patch.name.as_deref().is_some_and(|n| n.trim().is_empty())
            && errors.iter().all(|e| e.field != "name")
        {
            errors.push(FieldError::new("name", "must not be blank"));
        }
        if !errors.is_empty() {
            errors.sort_by(|a, b| a.field.cmp(&b.field));
            return Err(CatalogError::Validation(errors));
        }
        let row = self
            .db
            .run(move |conn| {
                write_transaction(conn, |c| -> Outcome<ProductRow> {
                    store::lock(c, &id.to_string())?;
                    let old = store::by_id(c, &id.to_string())?.ok_or(CatalogError::NotFound)?;
                    let mut row = old.clone();
                    if let Some(name) = patch.name {
                        row.name = name.trim().to_string();
                    }
                    if let Some(description) = patch.description {
                        row.description = description;
                    }
                    if let Some(price) = patch.price {
                        row.price_minor = price.amount_minor;
                        row.currency = price.currency;
                    }
                    if let Some(active) = patch.active {
                        row.active = active;
                    }
                    row.updated_at = db::now();
                    store::update(c, &old, &row)?;
                    Ok(row)
                })
            })
            .await?;
        product(row)
    }
}
