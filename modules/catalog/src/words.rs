//! The words search matches: how a product's text and a search's `q` are cut into words.
//!
//! Both sides are cut here, in Rust, and the databases only store and index the result (PostgreSQL takes the
//! words as lexemes verbatim, SQLite's FTS5 tables index text that is nothing but words and spaces), so that
//! a search means the same on both backends and for every script.

use std::collections::BTreeSet;

/// The version of the cutting below. Rows indexed under an older one are indexed again in the background
/// (`store::index_stale`): a change of these rules ships with a bump and a migration that empties
/// `catalog_search_words` and sets every row's `words_version` to 0, so that no count of the old cutting
/// stays behind.
pub const VERSION: i16 = 1;

/// Longest word kept, in characters; longer runs are cut there, on both sides alike.
const MAX_WORD: usize = 64;

/// The words of `text`: its runs of letters and digits, lowercased, each cut to `MAX_WORD` characters.
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|run| !run.is_empty())
        .map(|run| {
            let lower = run.to_lowercase();
            // Lowercasing may produce marks (İ becomes i and a combining dot): cut again, so that a stored
            // word holds nothing but letters and digits.
            lower
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
                .map(|w| w.chars().take(MAX_WORD).collect::<String>())
                .collect::<Vec<_>>()
        })
        .flat_map(Vec::into_iter)
}

/// The words a SKU is found by: every suffix of each of its words, so that a word of a search, which
/// matches the beginning of a stored word, matches anywhere inside a SKU (`4817` finds `SKU-0004817`).
fn sku_words(sku: &str) -> impl Iterator<Item = String> + '_ {
    words(sku).flat_map(|word| {
        let starts: Vec<usize> = word.char_indices().map(|(i, _)| i).collect();
        starts
            .into_iter()
            .map(move |i| word[i..].to_string())
            .collect::<Vec<_>>()
    })
}

/// What a product is found by, as stored: its title words (name and SKU), and all its words (those and
/// the description's), each a set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Indexed {
    pub title: BTreeSet<String>,
    pub all: BTreeSet<String>,
}

impl Indexed {
    pub fn of(name: &str, sku: &str, description: &str) -> Self {
        let title: BTreeSet<String> = words(name).chain(sku_words(sku)).collect();
        let mut all = title.clone();
        all.extend(words(description));
        Indexed { title, all }
    }

    /// The stored form of a set: words separated by one space (PostgreSQL's index splits it into lexemes,
    /// FTS5 tokenizes it).
    pub fn joined(words: &BTreeSet<String>) -> String {
        words
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// How the vocabulary's counts change when a product's words go from `old` to `new` (`None`: not counted,
/// as a product new or indexed under an older `VERSION`). Per word: (titles delta, products delta), in
/// byte order, the order every writer takes the vocabulary's rows in. The empty word counts products.
pub fn count_changes(old: Option<&Indexed>, new: Option<&Indexed>) -> Vec<(String, i64, i64)> {
    let mut changes: std::collections::BTreeMap<String, (i64, i64)> = Default::default();
    let mut add = |indexed: &Indexed, sign: i64| {
        for word in &indexed.title {
            changes.entry(word.clone()).or_default().0 += sign;
        }
        for word in &indexed.all {
            changes.entry(word.clone()).or_default().1 += sign;
        }
        let total = changes.entry(String::new()).or_default();
        total.0 += sign;
        total.1 += sign;
    };
    if let Some(old) = old {
        add(old, -1);
    }
    if let Some(new) = new {
        add(new, 1);
    }
    changes
        .into_iter()
        .filter(|(_, (titles, products))| *titles != 0 || *products != 0)
        .map(|(word, (titles, products))| (word, titles, products))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(words: &[&str]) -> BTreeSet<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn words_are_runs_of_letters_and_digits_lowercased() {
        let got: Vec<String> = words("Blue MUG_cup, 50% \"off\" Çay-glass İstanbul").collect();
        assert_eq!(
            got,
            [
                "blue", "mug", "cup", "50", "off", "çay", "glass", "i", "stanbul"
            ]
        );
        assert_eq!(words(&"x".repeat(100)).next().map(|w| w.len()), Some(64));
    }

    #[test]
    fn a_sku_is_found_by_every_suffix_of_its_words() {
        let indexed = Indexed::of("Tea", "TEA-17", "Green, loose");
        assert_eq!(indexed.title, set(&["17", "7", "a", "ea", "tea"]));
        assert_eq!(
            indexed.all,
            set(&["17", "7", "a", "ea", "green", "loose", "tea"])
        );
        assert_eq!(Indexed::joined(&indexed.title), "17 7 a ea tea");
    }

    #[test]
    fn count_changes_are_the_difference_in_byte_order_with_the_total() {
        let old = Indexed::of("Blue mug", "M", "");
        let new = Indexed::of("Navy mug", "M", "blue glaze");
        let changes = count_changes(Some(&old), Some(&new));
        assert_eq!(
            changes,
            vec![
                ("blue".to_string(), -1, 0),
                ("glaze".to_string(), 0, 1),
                ("navy".to_string(), 1, 1),
            ]
        );
        let created = count_changes(None, Some(&old));
        assert_eq!(created.first(), Some(&(String::new(), 1, 1)));
        assert_eq!(created.len(), 4);
    }
}
