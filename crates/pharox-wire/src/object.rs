//! Structs from JSON objects only.
//!
//! serde's derive also builds a struct from a sequence (its fields by
//! position), so `["a", 5]` would pass for `{"name": "a", "port": 5}`. An
//! API must refuse that: these helpers ask the deserializer for a map, which
//! JSON gives only for an object, and build the struct from it.

use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

/// A `T` read from a JSON object only (see the module docs); written as `T`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Object<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        object(d).map(Self)
    }
}

impl<T: Serialize> Serialize for Object<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

struct ObjectVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map))
    }
}

/// Reads a struct `T` from an object only (`deserialize_with` helper).
///
/// # Errors
/// An "invalid type" error for anything but an object, or `T`'s own errors.
pub fn object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    d.deserialize_map(ObjectVisitor(PhantomData))
}

/// [`object`] for an optional field: `null` is `None`.
///
/// # Errors
/// As [`object`].
pub fn option_object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    Ok(Option::<Object<T>>::deserialize(d)?.map(|o| o.0))
}

/// [`object`] for every element of an optional list: `null` is `None`.
///
/// # Errors
/// As [`object`], for any element; an "invalid type" error for a non-list.
pub fn option_vec_object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Vec<T>>, D::Error> {
    struct Objects<T>(Vec<T>);
    impl<'de, T: Deserialize<'de>> Deserialize<'de> for Objects<T> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct Each<T>(PhantomData<T>);
            impl<'de, T: Deserialize<'de>> Visitor<'de> for Each<T> {
                type Value = Vec<T>;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a list of JSON objects")
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
                    let mut all = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
                    while let Some(one) = seq.next_element_seed(ObjectSeed(PhantomData))? {
                        all.push(one);
                    }
                    Ok(all)
                }
            }
            d.deserialize_seq(Each(PhantomData)).map(Self)
        }
    }
    Ok(Option::<Objects<T>>::deserialize(d)?.map(|o| o.0))
}

struct ObjectSeed<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> DeserializeSeed<'de> for ObjectSeed<T> {
    type Value = T;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        object(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Point {
        x: i32,
        #[serde(default)]
        y: i32,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    struct Shape {
        #[serde(default, deserialize_with = "option_object")]
        centre: Option<Point>,
        #[serde(default, deserialize_with = "option_vec_object")]
        corners: Option<Vec<Point>>,
    }

    #[test]
    fn objects_pass_and_sequences_do_not() {
        let p: Object<Point> = serde_json::from_str(r#"{"x": 1}"#).unwrap();
        assert_eq!(p.0, Point { x: 1, y: 0 });
        // Plain derive takes a sequence for a struct; Object does not.
        assert!(serde_json::from_str::<Point>("[1, 2]").is_ok());
        for bad in ["[1, 2]", "[]", "1", "\"x\"", "null", "true"] {
            let e = serde_json::from_str::<Object<Point>>(bad).unwrap_err();
            assert!(e.is_data(), "{bad}: {e}");
        }
        assert!(serde_json::from_str::<Object<Point>>(r#"{"x": 1, "z": 2}"#).is_err());
    }

    #[test]
    fn nested_fields_refuse_sequences_too() {
        let ok: Shape = serde_json::from_str(
            r#"{"centre": {"x": 1}, "corners": [{"x": 2}, {"x": 3, "y": 4}]}"#,
        )
        .unwrap();
        assert_eq!(ok.centre, Some(Point { x: 1, y: 0 }));
        assert_eq!(ok.corners.unwrap().len(), 2);
        let none: Shape = serde_json::from_str(r#"{"centre": null, "corners": null}"#).unwrap();
        assert_eq!((none.centre, none.corners), (None, None));
        for bad in [
            r#"{"centre": [1, 2]}"#,
            r#"{"corners": [[1, 2]]}"#,
            r#"{"corners": {"x": 1}}"#,
        ] {
            assert!(serde_json::from_str::<Shape>(bad).is_err(), "{bad}");
        }
    }
}
