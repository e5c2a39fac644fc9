//! Integer fields read the way JSON Schema counts integers.
//!
//! To JSON Schema (and so to the OpenAPI document and every client generated
//! from it) `5.0` is the integer 5; serde's derive refuses it for a `u16`.
//! These `deserialize_with` helpers take any JSON number whose value is a
//! whole number in the field's range, and refuse the rest with an "invalid
//! value" error (a 422 naming the field, never a 5xx).

use std::fmt;
use std::marker::PhantomData;

use serde::Deserializer;
use serde::de::{Error, Unexpected, Visitor};

/// Reads an unsigned integer field: `5` or `5.0`, within `T`'s range.
///
/// # Errors
/// "invalid type" for a non-number, "invalid value" for a fraction, a
/// negative number or one past `T`'s range.
pub fn whole<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    d.deserialize_any(Whole(PhantomData))
}

/// [`whole`] for an optional field: `null` is `None`.
///
/// # Errors
/// As [`whole`].
pub fn whole_opt<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    d.deserialize_option(OptionalWhole(PhantomData))
}

struct Whole<T>(PhantomData<T>);

impl<T: TryFrom<u64>> Whole<T> {
    fn expected() -> String {
        format!(
            "a whole number from 0 to {}",
            max::<T>().map_or_else(|| u64::MAX.to_string(), |m| m.to_string())
        )
    }
}

/// The largest `u64` that converts to `T` (found by halving: `T` is an
/// unsigned primitive or `usize`), or `None` when every `u64` does.
fn max<T: TryFrom<u64>>() -> Option<u64> {
    if T::try_from(u64::MAX).is_ok() {
        return None;
    }
    let (mut lo, mut hi) = (0u64, u64::MAX);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if T::try_from(mid).is_ok() {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    Some(lo)
}

impl<'de, T: TryFrom<u64>> Visitor<'de> for Whole<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&Self::expected())
    }

    fn visit_u64<E: Error>(self, v: u64) -> Result<T, E> {
        T::try_from(v).map_err(|_| E::invalid_value(Unexpected::Unsigned(v), &&*Self::expected()))
    }

    fn visit_i64<E: Error>(self, v: i64) -> Result<T, E> {
        match u64::try_from(v) {
            Ok(v) => self.visit_u64(v),
            Err(_) => Err(E::invalid_value(Unexpected::Signed(v), &&*Self::expected())),
        }
    }

    fn visit_f64<E: Error>(self, v: f64) -> Result<T, E> {
        // 2^64 is the first f64 past u64::MAX; every whole f64 below it
        // converts exactly.
        if v.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&v) {
            self.visit_u64(v as u64)
        } else {
            Err(E::invalid_value(Unexpected::Float(v), &&*Self::expected()))
        }
    }
}

struct OptionalWhole<T>(PhantomData<T>);

impl<'de, T: TryFrom<u64>> Visitor<'de> for OptionalWhole<T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} or null", Whole::<T>::expected())
    }

    fn visit_none<E: Error>(self) -> Result<Option<T>, E> {
        Ok(None)
    }

    fn visit_unit<E: Error>(self) -> Result<Option<T>, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Option<T>, D::Error> {
        whole(d).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    struct Port {
        #[serde(deserialize_with = "whole")]
        port: u16,
        #[serde(default, deserialize_with = "whole_opt")]
        limit: Option<u64>,
    }

    fn port(json: &str) -> Result<Port, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn whole_numbers_in_range_are_integers_in_any_spelling() {
        assert_eq!(port(r#"{"port": 5}"#).unwrap().port, 5);
        assert_eq!(port(r#"{"port": 5.0}"#).unwrap().port, 5);
        assert_eq!(port(r#"{"port": 6.5e1}"#).unwrap().port, 65);
        assert_eq!(port(r#"{"port": 65535}"#).unwrap().port, 65535);
        let p = port(r#"{"port": 1, "limit": 3.0}"#).unwrap();
        assert_eq!(p.limit, Some(3));
        assert_eq!(port(r#"{"port": 1, "limit": null}"#).unwrap().limit, None);
        assert_eq!(port(r#"{"port": 1}"#).unwrap().limit, None);
        let big = port(r#"{"port": 1, "limit": 18446744073709551615}"#).unwrap();
        assert_eq!(big.limit, Some(u64::MAX));
    }

    #[test]
    fn fractions_negatives_and_out_of_range_are_data_errors() {
        for bad in [
            r#"{"port": 5.5}"#,
            r#"{"port": -1}"#,
            r#"{"port": -0.5}"#,
            r#"{"port": 65536}"#,
            r#"{"port": 65536.0}"#,
            r#"{"port": 1e300}"#,
            r#"{"port": "5"}"#,
            r#"{"port": null}"#,
            r#"{"port": 1, "limit": 1.5}"#,
            r#"{"port": 1, "limit": 18446744073709551616}"#,
        ] {
            let e = port(bad).unwrap_err();
            assert!(e.is_data(), "{bad}: {e}");
        }
        let e = port(r#"{"port": 70000}"#).unwrap_err().to_string();
        assert!(e.contains("a whole number from 0 to 65535"), "{e}");
    }
}
