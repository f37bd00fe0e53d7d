//! PostgreSQL log sequence numbers (`X/Y` in hex).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A WAL position: `high/low` in hexadecimal, as PostgreSQL and barman print it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lsn(pub u64);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid LSN {0:?}: expected two hexadecimal numbers separated by '/', such as 0/7024A08")]
pub struct LsnParseError(pub String);

impl FromStr for Lsn {
    type Err = LsnParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || LsnParseError(s.to_string());
        let (hi, lo) = s.trim().split_once('/').ok_or_else(err)?;
        let hi = u32::from_str_radix(hi, 16).map_err(|_| err())?;
        let lo = u32::from_str_radix(lo, 16).map_err(|_| err())?;
        Ok(Lsn((u64::from(hi) << 32) | u64::from(lo)))
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

impl Serialize for Lsn {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Lsn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let lsn: Lsn = "0/7024A08".parse().unwrap();
        assert_eq!(lsn.0, 0x7024A08);
        assert_eq!(lsn.to_string(), "0/7024A08");
        let big: Lsn = "1A/FF000028".parse().unwrap();
        assert_eq!(big.0, 0x1A_FF00_0028);
        assert_eq!(big.to_string(), "1A/FF000028");
    }

    #[test]
    fn rejects_garbage() {
        assert!("07024A08".parse::<Lsn>().is_err());
        assert!("0/XYZ".parse::<Lsn>().is_err());
        assert!("1/2/3".parse::<Lsn>().is_err());
    }
}
