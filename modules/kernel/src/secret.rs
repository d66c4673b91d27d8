//! Secrets in configuration: never printed by `Debug`, compared in constant time, at least 32 bytes.

use std::fmt;

/// The shortest service credential accepted: 32 bytes, as much entropy as a 256-bit key when random.
pub const MIN_SECRET_LEN: usize = 32;

/// A secret string (service credential, password) whose `Debug` and `Display` print `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// A service credential read from `var`: refused when shorter than [`MIN_SECRET_LEN`] bytes.
    pub fn credential(var: &str, value: impl Into<String>) -> Result<Self, String> {
        let value = value.into();
        if value.len() < MIN_SECRET_LEN {
            return Err(format!(
                "{var} is {} bytes long; a service credential needs at least {MIN_SECRET_LEN} \
                 (generate one with `shop service-credential`)",
                value.len()
            ));
        }
        Ok(Secret(value))
    }

    /// The secret itself, for the one place that must send or check it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Constant-time comparison with presented bytes.
    pub fn matches(&self, presented: &[u8]) -> bool {
        constant_time_eq(self.0.as_bytes(), presented)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Compares two byte strings without an early exit on the first difference.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::new("hunter2-hunter2-hunter2-hunter2-x");
        assert_eq!(format!("{s:?} {s}"), "Secret(***) ***");
    }

    #[test]
    fn short_credentials_are_refused_with_the_variable_named() {
        let err = Secret::credential("SHOP_SERVICE_TOKEN", "short").err();
        assert!(err.is_some_and(|e| e.contains("SHOP_SERVICE_TOKEN") && e.contains("32")));
        assert!(Secret::credential("X", "a".repeat(32)).is_ok());
    }

    #[test]
    fn comparison_needs_equal_bytes() {
        let s = Secret::new("abc");
        assert!(s.matches(b"abc"));
        assert!(!s.matches(b"abd") && !s.matches(b"ab"));
    }
}
