//! Cursor pagination: `?limit=&cursor=` in, `{items, next_cursor}` out.

use serde::{Deserialize, Serialize};
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
