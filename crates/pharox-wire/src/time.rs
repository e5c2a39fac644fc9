//! Times on the wire: ISO-8601, six fraction digits, `+00:00`.

use chrono::{DateTime, Utc};

/// A time as the SDK parses it (`datetime.fromisoformat`, also on Python
/// 3.10): `2025-01-31T12:00:00.123456+00:00`, always six fraction digits.
pub fn iso(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
}

/// Serde for a `DateTime<Utc>` field as [`iso`]; reads any RFC 3339 time.
pub mod iso_time {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes [`iso`](super::iso).
    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::iso(*t))
    }

    /// Reads an RFC 3339 time (any offset, any fraction).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| serde::de::Error::custom("expected an RFC 3339 time"))
    }
}

/// Serde for an `Option<DateTime<Utc>>` field as [`iso`] or `null`.
pub mod iso_opt {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes [`iso`](super::iso) or `null`.
    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => super::iso_time::serialize(t, s),
            None => s.serialize_none(),
        }
    }

    /// Reads an RFC 3339 time or `null`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        #[derive(Deserialize)]
        struct Wrap(#[serde(with = "super::iso_time")] DateTime<Utc>);
        Ok(Option::<Wrap>::deserialize(d)?.map(|w| w.0))
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn times_have_six_fraction_digits_and_an_explicit_offset() {
        let t = Utc.timestamp_millis_opt(1_700_000_000_123).unwrap();
        assert_eq!(iso(t), "2023-11-14T22:13:20.123000+00:00");
    }

    #[test]
    fn any_rfc_3339_time_reads_back() {
        #[derive(serde::Deserialize)]
        struct T(#[serde(with = "iso_time")] DateTime<Utc>);
        let t = Utc.timestamp_millis_opt(1_700_000_000_123).unwrap();
        for text in [
            "\"2023-11-14T22:13:20.123000+00:00\"",
            "\"2023-11-14T22:13:20.123Z\"",
            "\"2023-11-14T23:13:20.123+01:00\"",
        ] {
            assert_eq!(serde_json::from_str::<T>(text).unwrap().0, t, "{text}");
        }
        assert!(serde_json::from_str::<T>("\"yesterday\"").is_err());
    }
}
