//! Cursor pagination: `?limit=&cursor=` in, `{items, next_cursor}` out.

use serde::{Deserialize, Serialize};

use crate::problem::FieldError;
use utoipa::{IntoParams, ToSchema};

/// Default page size.
pub const DEFAULT_LIMIT: u32 = 20;
/// Largest page size a client may ask for.
pub const MAX_LIMIT: u32 = 100;

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    /// The items of this page, in list order.
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; null when there is nothing after this page.
    pub next_cursor: Option<String>,
}

/// Which page to fetch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageRequest {
    /// Page size, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// Opaque cursor: a previous page's `next_cursor`.
    pub cursor: Option<String>,
}

impl PageRequest {
    /// The page size to use; `None` when `limit` is out of range.
    pub fn checked_limit(&self) -> Option<u32> {
        match self.limit {
            None => Some(DEFAULT_LIMIT),
            Some(n) if (1..=MAX_LIMIT).contains(&n) => Some(n),
            Some(_) => None,
        }
    }
}

/// Reads the page size and the cursor of a list ordered by UUID id, whose cursor is the id of a page's last
/// item as 32 hex digits (the form `Page::from_rows` is given): any such cursor is a position, whether or not
/// that item still exists. Problems are added to `errors`; the id comes back hyphenated, as stored.
pub fn checked_id_page(
    limit: Option<u32>,
    cursor: Option<&str>,
    errors: &mut Vec<FieldError>,
) -> (Option<u32>, Option<String>) {
    let limit = PageRequest {
        limit,
        cursor: None,
    }
    .checked_limit();
    if limit.is_none() {
        errors.push(FieldError::new("limit", "must be between 1 and 100"));
    }
    let after = cursor.and_then(|c| {
        let id = uuid::Uuid::try_parse(c).ok().filter(|_| c.len() == 32);
        if id.is_none() {
            errors.push(FieldError::new(
                "cursor",
                "must be 32 hex digits from next_cursor",
            ));
        }
        id.map(|id| id.to_string())
    });
    (limit, after)
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` fetched rows: the extra row only says that more exist. `cursor`
    /// gives the position after an item: the list's sort key, in a form its documented pattern describes,
    /// so that every cursor a client can write is a position the list accepts.
    pub fn from_rows(mut rows: Vec<T>, limit: u32, cursor: impl Fn(&T) -> String) -> Self {
        let limit = limit as usize;
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next_cursor = if more { rows.last().map(cursor) } else { None };
        Page {
            items: rows,
            next_cursor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_has_a_cursor_only_when_more_rows_exist() {
        let p = Page::from_rows(vec![1, 2, 3], 2, |n| n.to_string());
        assert_eq!(p.items, vec![1, 2]);
        assert_eq!(p.next_cursor.as_deref(), Some("2"));
        let last = Page::from_rows(vec![1, 2], 2, |n| n.to_string());
        assert_eq!(last.next_cursor, None);
    }

    #[test]
    fn id_cursors_are_32_hex_digits_and_come_back_as_stored_ids() {
        let mut errors = Vec::new();
        let (limit, after) =
            checked_id_page(None, Some("0192D5E3A1B27C3D8E9F0A1B2C3D4E5F"), &mut errors);
        assert_eq!(limit, Some(20));
        assert_eq!(
            after.as_deref(),
            Some("0192d5e3-a1b2-7c3d-8e9f-0a1b2c3d4e5f")
        );
        assert!(errors.is_empty());
        let (_, after) = checked_id_page(
            Some(0),
            Some("0192d5e3-a1b2-7c3d-8e9f-0a1b2c3d4e5f"),
            &mut errors,
        );
        assert_eq!(after, None);
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, vec!["limit", "cursor"]);
    }

    #[test]
    fn limits_outside_one_to_a_hundred_are_rejected() {
        let req = |limit| PageRequest {
            limit,
            cursor: None,
        };
        assert_eq!(req(None).checked_limit(), Some(20));
        assert_eq!(req(Some(100)).checked_limit(), Some(100));
        assert_eq!(req(Some(0)).checked_limit(), None);
        assert_eq!(req(Some(101)).checked_limit(), None);
    }
}
