//! Turns `validator` errors into problem field errors.

use validator::{ValidationErrors, ValidationErrorsKind};

use crate::problem::FieldError;

/// Flattens nested validation errors into `field.path: message` pairs, sorted for stable output.
pub fn field_errors(errors: &ValidationErrors) -> Vec<FieldError> {
    let mut out = Vec::new();
    collect("", errors, &mut out);
    out.sort_by(|a, b| a.field.cmp(&b.field));
    out
}

fn collect(prefix: &str, errors: &ValidationErrors, out: &mut Vec<FieldError>) {
    for (field, kind) in errors.errors() {
        let path = if prefix.is_empty() {
            field.to_string()
        } else {
            format!("{prefix}.{field}")
        };
        match kind {
            ValidationErrorsKind::Field(errs) => {
                for e in errs {
                    let message = e
                        .message
                        .as_ref()
                        .map(|m| m.to_string())
                        .unwrap_or_else(|| format!("is invalid ({})", e.code));
                    out.push(FieldError::new(path.clone(), message));
                }
            }
            ValidationErrorsKind::Struct(inner) => collect(&path, inner, out),
            ValidationErrorsKind::List(items) => {
                for (i, inner) in items {
                    collect(&format!("{path}[{i}]"), inner, out);
                }
            }
        }
    }
}

/// Validates a value; `Err` holds the field errors.
pub fn check<T: validator::Validate>(value: &T) -> Result<(), Vec<FieldError>> {
    value.validate().map_err(|e| field_errors(&e))
}

/// True for SKUs made of 1–64 of `A-Z a-z 0-9 - _ .`.
pub fn is_valid_sku(sku: &str) -> bool {
    (1..=64).contains(&sku.len())
        && sku
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// `validator` custom rule for SKUs.
pub fn validate_sku(sku: &str) -> Result<(), validator::ValidationError> {
    if is_valid_sku(sku) {
        Ok(())
    } else {
        Err(validator::ValidationError::new("sku")
            .with_message("must be 1-64 characters of A-Z a-z 0-9 - _ .".into()))
    }
}

/// `validator` rule for one-line text (names): no control characters at all. Documented in OpenAPI as
/// `^[^\u0000-\u001F\u007F-\u009F]*$` (names that must not be blank also need one non-space character).
pub fn validate_single_line(text: &str) -> Result<(), validator::ValidationError> {
    if text.chars().any(char::is_control) {
        Err(validator::ValidationError::new("single_line")
            .with_message("must not contain control characters".into()))
    } else {
        Ok(())
    }
}

/// `validator` rule for free text: line breaks and tabs are fine, other control characters (NUL, which
/// PostgreSQL cannot store, above all) are not. Documented in OpenAPI as
/// `^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$`.
pub fn validate_text(text: &str) -> Result<(), validator::ValidationError> {
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        Err(validator::ValidationError::new("text").with_message(
            "must not contain control characters other than line breaks and tabs".into(),
        ))
    } else {
        Ok(())
    }
}

/// Deserializes an integer that JSON may also write with a zero fraction (`12.0`): JSON Schema counts those
/// as integers, so a client generated from the OpenAPI documents may send them. Fractions are refused.
pub fn integer<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    struct Integer;
    impl serde::de::Visitor<'_> for Integer {
        type Value = i64;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an integer")
        }

        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<i64, E> {
            Ok(v)
        }

        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<i64, E> {
            i64::try_from(v)
                .map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(v), &self))
        }

        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<i64, E> {
            // 2^63 is exactly representable; anything from it up does not fit.
            if v.fract() == 0.0
                && (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&v)
            {
                Ok(v as i64)
            } else {
                Err(E::invalid_type(serde::de::Unexpected::Float(v), &self))
            }
        }
    }
    deserializer.deserialize_any(Integer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_rules_refuse_nul_and_names_refuse_every_control_character() {
        assert!(validate_text("two\nlines\tand a tab").is_ok());
        assert!(validate_text("nul\0").is_err());
        assert!(validate_single_line("Blue mug").is_ok());
        assert!(validate_single_line("two\nlines").is_err());
    }

    #[test]
    fn integers_may_be_written_with_a_zero_fraction_but_not_with_another() {
        #[derive(serde::Deserialize)]
        struct N {
            #[serde(deserialize_with = "integer")]
            n: i64,
        }
        let n = |json: &str| serde_json::from_str::<N>(json).map(|v| v.n).ok();
        assert_eq!(n(r#"{"n": 11963.0}"#), Some(11963));
        assert_eq!(n(r#"{"n": -5}"#), Some(-5));
        assert_eq!(n(r#"{"n": 1.5}"#), None);
        assert_eq!(n(r#"{"n": 1e300}"#), None);
        assert_eq!(n(r#"{"n": 18446744073709551615}"#), None);
        assert_eq!(n(r#"{"n": "7"}"#), None);
    }

    #[test]
    fn skus_allow_only_the_documented_alphabet() {
        assert!(is_valid_sku("ABC-123_x.y"));
        assert!(!is_valid_sku(""));
        assert!(!is_valid_sku("has space"));
        assert!(!is_valid_sku("é"));
        assert!(!is_valid_sku(&"a".repeat(65)));
    }
}
