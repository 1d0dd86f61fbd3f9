//! Timestamps are stored as naive UTC; the API shows them as RFC 3339 with `Z`.

use chrono::{NaiveDateTime, SecondsFormat};
use serde::Serializer;

pub fn format(at: NaiveDateTime) -> String {
    at.and_utc().to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

pub fn serialize<S: Serializer>(at: &NaiveDateTime, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format(*at))
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps_are_utc_with_a_z() {
        let at = chrono::DateTime::from_timestamp(1_800_000_000, 123_456_000)
            .unwrap()
            .naive_utc();
        assert_eq!(super::format(at), "2027-01-15T08:00:00.123456Z");
    }
}
