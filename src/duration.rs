//! Durations as scenarios and flags write them: a number and a unit (`30s`, `10m`, `1h`, `7d`).

use serde::Deserialize;

/// `30s`, `10m`, `1h`, `7d` (a number and a unit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DurationText(pub std::time::Duration);

impl<'de> Deserialize<'de> for DurationText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s)
            .map(DurationText)
            .map_err(serde::de::Error::custom)
    }
}

/// The longest duration accepted anywhere (ten years): sums and deadlines never overflow.
pub const MAX: std::time::Duration = std::time::Duration::from_secs(10 * 365 * 86400);

/// A timeout: a duration of at least one second (`0s` would disable what it bounds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeout(pub std::time::Duration);

impl<'de> Deserialize<'de> for Timeout {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match parse_duration(&s) {
            Ok(t) if t.is_zero() => Err(serde::de::Error::custom(format!(
                "invalid timeout {s:?}: must be at least 1s"
            ))),
            Ok(t) => Ok(Timeout(t)),
            Err(e) => Err(serde::de::Error::custom(e)),
        }
    }
}

pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: u64 = n.parse().map_err(|_| {
        format!("invalid duration {s:?}: expected a number and s, m, h or d, such as 10m")
    })?;
    let too_long = || format!("invalid duration {s:?}: too long");
    let secs = match unit {
        "s" => n,
        "m" => n.checked_mul(60).ok_or_else(too_long)?,
        "h" => n.checked_mul(3600).ok_or_else(too_long)?,
        "d" => n.checked_mul(86400).ok_or_else(too_long)?,
        _ => {
            return Err(format!(
                "invalid duration {s:?}: expected a number and s, m, h or d, such as 10m"
            ));
        }
    };
    let d = std::time::Duration::from_secs(secs);
    if d > MAX {
        return Err(format!("invalid duration {s:?}: at most 3650d"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10m").unwrap().as_secs(), 600);
        assert_eq!(parse_duration("7d").unwrap().as_secs(), 604800);
        assert!(parse_duration("10 minutes").is_err());
        assert!(parse_duration("3650d").is_ok());
        for too_long in ["3651d", "18446744073709551615s", "99999999999999999999s"] {
            assert!(parse_duration(too_long).is_err(), "{too_long}");
        }
    }
}
