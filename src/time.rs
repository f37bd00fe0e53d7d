//! One timestamp type, jiff's: values from crates that speak chrono (cron, object_store) are
//! converted here.

/// A chrono UTC time as a jiff timestamp, to the nanosecond.
pub fn from_chrono(t: chrono::DateTime<chrono::Utc>) -> jiff::Timestamp {
    jiff::Timestamp::from_nanosecond(
        i128::from(t.timestamp()) * 1_000_000_000 + i128::from(t.timestamp_subsec_nanos()),
    )
    .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    #[test]
    fn keeps_the_nanoseconds() {
        let t = chrono::DateTime::from_timestamp(1_700_000_000, 123_456_789).unwrap();
        assert_eq!(
            super::from_chrono(t).as_nanosecond(),
            1_700_000_000_123_456_789
        );
    }
}
