//! Deserializing a value that may be a string, a list or a map while keeping line and column
//! in errors (an untagged enum would lose them).

use serde::Deserialize;

/// A string, or a value built from a sequence or a map with the live deserializer, so that
/// errors inside keep their line and column (an untagged enum would lose them).
pub enum Raw<T> {
    Str(String),
    Other(T),
}

pub trait FromSeqOrMap<'de>: Sized {
    const EXPECTING: &'static str;
    fn from_seq<A: serde::de::SeqAccess<'de>>(_seq: A) -> Result<Self, A::Error> {
        Err(serde::de::Error::custom(format!(
            "expected {}",
            Self::EXPECTING
        )))
    }
    fn from_map<A: serde::de::MapAccess<'de>>(map: A) -> Result<Self, A::Error>;
}

impl<'de, T: FromSeqOrMap<'de>> Deserialize<'de> for Raw<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: FromSeqOrMap<'de>> serde::de::Visitor<'de> for V<T> {
            type Value = Raw<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(T::EXPECTING)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Raw::Str(v.to_string()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                seq: A,
            ) -> Result<Self::Value, A::Error> {
                T::from_seq(seq).map(Raw::Other)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                T::from_map(map).map(Raw::Other)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}
