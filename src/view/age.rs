//! Ages as kubectl prints them: `45s`, `5m30s`, `3h`, `2d4h`, `400d`, `2y30d`.

use std::fmt;

use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
use serde::{Serialize, Serializer};

/// The time since an object was created, in whole seconds. It displays as kubectl does, so a
/// table of ours lines up with `kubectl get` beside it; it serializes as that same text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Age(pub i64);

impl Age {
    /// The age at `now` of something created at `created`; none when it has no timestamp.
    pub fn since(created: Option<&Time>, now: Timestamp) -> Option<Age> {
        created.map(|t| Age(now.as_second() - t.0.as_second()))
    }
}

impl fmt::Display for Age {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&human(self.0))
    }
}

impl Serialize for Age {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Seconds in the units kubectl picks: exact while small, coarser as it grows. Two units at
/// most, the second dropped when it is zero. A clock up to a second ahead of the API server's
/// reads as `0s`; anything further in the future is `<invalid>`, as kubectl shows it.
fn human(seconds: i64) -> String {
    const MINUTE: i64 = 60;
    const HOUR: i64 = 60 * MINUTE;
    const DAY: i64 = 24 * HOUR;
    const YEAR: i64 = 365 * DAY;
    let two = |big: i64, big_unit: &str, small: i64, small_unit: &str| match small {
        0 => format!("{big}{big_unit}"),
        _ => format!("{big}{big_unit}{small}{small_unit}"),
    };
    match seconds {
        s if s < -1 => "<invalid>".into(),
        s if s < 0 => "0s".into(),
        s if s < 2 * MINUTE => format!("{s}s"),
        s if s < 10 * MINUTE => two(s / MINUTE, "m", s % MINUTE, "s"),
        s if s < 3 * HOUR => format!("{}m", s / MINUTE),
        s if s < 8 * HOUR => two(s / HOUR, "h", s % HOUR / MINUTE, "m"),
        s if s < 2 * DAY => format!("{}h", s / HOUR),
        s if s < 8 * DAY => two(s / DAY, "d", s % DAY / HOUR, "h"),
        s if s < 2 * YEAR => format!("{}d", s / DAY),
        s if s < 8 * YEAR => two(s / YEAR, "y", s % YEAR / DAY, "d"),
        s => format!("{}y", s / YEAR),
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case(-5, "<invalid>")]
    #[case(-1, "0s")]
    #[case(0, "0s")]
    #[case(59, "59s")]
    #[case(119, "119s")]
    #[case(120, "2m")]
    #[case(5 * 60, "5m")]
    #[case(5 * 60 + 30, "5m30s")]
    #[case(10 * 60 + 30, "10m")]
    #[case(179 * 60, "179m")]
    #[case(3 * 3600, "3h")]
    #[case(3 * 3600 + 20 * 60 + 5, "3h20m")]
    #[case(8 * 3600 + 59 * 60, "8h")]
    #[case(47 * 3600, "47h")]
    #[case(2 * 86400, "2d")]
    #[case(2 * 86400 + 5 * 3600, "2d5h")]
    #[case(8 * 86400 + 5 * 3600, "8d")]
    #[case(400 * 86400, "400d")]
    #[case(2 * 365 * 86400 + 30 * 86400, "2y30d")]
    #[case(9 * 365 * 86400, "9y")]
    fn ages_read_like_kubectl(#[case] seconds: i64, #[case] shown: &str) {
        assert_eq!(Age(seconds).to_string(), shown);
    }

    #[test]
    fn an_age_is_measured_from_creation_and_serialized_as_shown() {
        let created: Timestamp = "2026-03-01T10:00:00Z".parse().unwrap();
        let now: Timestamp = "2026-03-01T13:00:00Z".parse().unwrap();
        let age = Age::since(Some(&Time(created)), now).unwrap();
        assert_eq!(age, Age(3 * 3600));
        assert_eq!(serde_json::to_string(&age).unwrap(), "\"3h\"");
        assert_eq!(Age::since(None, now), None);
    }
}
