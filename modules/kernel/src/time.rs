//! Timestamps on the wire.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serializer;

/// Serialises a UTC timestamp exactly as chrono's own `Serialize` does (RFC 3339, `Z`, as many fraction
/// digits as needed: 0, 3, 6 or 9), for `#[serde(serialize_with = "shop_kernel::time::rfc3339")]`.
///
/// chrono hands serde_json a `Display` value, which serde_json writes one character at a time through
/// its escaping adapter: half the instructions of a product listing went there. Formatting into a string
/// first and writing that string is the same text for a fraction of the cost.
pub fn rfc3339<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&at.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, TimeZone, Utc};

    #[derive(serde::Serialize)]
    struct Fast(#[serde(serialize_with = "super::rfc3339")] DateTime<Utc>);

    #[test]
    fn timestamps_are_written_as_chrono_writes_them() {
        let base = Utc.with_ymd_and_hms(2026, 11, 26, 4, 5, 6).single();
        let Some(base) = base else {
            panic!("a valid date");
        };
        for nanos in [0, 120_000_000, 123_456_000, 123_456_789, 1] {
            let at = base + chrono::Duration::nanoseconds(nanos);
            let ours = serde_json::to_string(&Fast(at)).unwrap_or_default();
            let chronos = serde_json::to_string(&at).unwrap_or_default();
            assert_eq!(ours, chronos, "{nanos} ns");
        }
        let year_one = Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0).single();
        if let Some(at) = year_one {
            assert_eq!(
                serde_json::to_string(&Fast(at)).unwrap_or_default(),
                serde_json::to_string(&at).unwrap_or_default()
            );
        }
    }
}
