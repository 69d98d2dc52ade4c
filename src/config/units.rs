//! Values with units: sizes (`64MiB`, `10GB`) and durations (`250ms`, `30s`, `7d`).
//!
//! ```
//! use tessera::config::{format_size, parse_duration, parse_size};
//! assert_eq!(parse_size("64MiB"), Some(64 << 20));
//! assert_eq!(parse_duration("2d"), Some(std::time::Duration::from_secs(2 * 86_400)));
//! assert_eq!(format_size(10 << 30), "10GiB");
//! ```

use std::time::Duration;

/// Seconds in a day, for the `d` duration unit.
const SECONDS_PER_DAY: u64 = 86_400;

/// Parses `1234`, `10KiB`, `64MiB`, `10GiB`, `1TiB` (binary) and `10KB`, `10MB`, `10GB`, `1TB`
/// (decimal); `K`/`M`/`G`/`T` alone are binary, as in most cache tools' docs.
pub fn parse_size(text: &str) -> Option<u64> {
    let (number, unit) = split_number(text)?;
    let multiplier: u64 = match unit.trim() {
        "" | "B" => 1,
        "K" | "KiB" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        "T" | "TiB" => 1 << 40,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        _ => return None,
    };
    number.checked_mul(multiplier)
}

/// Splits `"64MiB"` into `(64, "MiB")`; `None` without leading digits or on overflow.
fn split_number(text: &str) -> Option<(u64, &str)> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    Some((number.parse().ok()?, unit))
}

/// Formats a byte count with the largest binary unit that divides it.
pub fn format_size(bytes: u64) -> String {
    for (unit, shift) in [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)] {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    format!("{bytes}B")
}

/// Parses `250ms`, `30s`, `5m`, `1h`, `7d`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let (number, unit) = split_number(text)?;
    let seconds_per_unit = match unit {
        "ms" => return Some(Duration::from_millis(number)),
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => SECONDS_PER_DAY,
        _ => return None,
    };
    number
        .checked_mul(seconds_per_unit)
        .map(Duration::from_secs)
}

/// A request rate: `requests` per `per` (`2000/s`, `600/m`, `10000/h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestRate {
    pub requests: u64,
    pub per: Duration,
}

impl RequestRate {
    /// Requests per second.
    pub fn per_second(self) -> f64 {
        self.requests as f64 / self.per.as_secs_f64()
    }
}

/// Parses `N/s`, `N/m`, `N/h` with N ≥ 1.
pub fn parse_rate(text: &str) -> Option<RequestRate> {
    let (count, unit) = text.trim().split_once('/')?;
    let requests: u64 = count.parse().ok().filter(|n| *n > 0)?;
    let per = match unit {
        "s" => Duration::from_secs(1),
        "m" => Duration::from_secs(60),
        "h" => Duration::from_secs(3600),
        _ => return None,
    };
    Some(RequestRate { requests, per })
}

/// Parses `true`/`false` and the usual spellings of yes and no.
pub fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("0"), Some(0));
        assert_eq!(parse_size("10GiB"), Some(10 << 30));
        assert_eq!(parse_size("10G"), Some(10 << 30));
        assert_eq!(parse_size("10GB"), Some(10_000_000_000));
        assert_eq!(parse_size("64MiB"), Some(64 << 20));
        assert_eq!(parse_size("12 KiB"), Some(12 << 10));
        assert_eq!(parse_size("1TB"), Some(1_000_000_000_000));
        assert_eq!(parse_size("1XB"), None);
        assert_eq!(parse_size("GiB"), None);
        assert_eq!(parse_size("-1MiB"), None);
        assert_eq!(parse_size("1.5GiB"), None);
        assert_eq!(parse_size("99999999999TiB"), None, "overflow is an error");
        assert_eq!(format_size(10 << 30), "10GiB");
        assert_eq!(format_size(1500), "1500B");
    }

    #[test]
    fn durations_parse_with_units_including_days() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("30"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("3h"), Some(Duration::from_secs(3 * 3600)));
        assert_eq!(parse_duration("7d"), Some(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("0d"), Some(Duration::ZERO));
        assert_eq!(parse_duration("2 m"), None);
        assert_eq!(parse_duration("1w"), None);
        assert_eq!(parse_duration("d"), None);
        assert_eq!(parse_duration("1D"), None, "units are case-sensitive");
        assert_eq!(
            parse_duration(&format!("{}d", u64::MAX / 86_400 + 1)),
            None,
            "overflow is an error"
        );
    }

    #[test]
    fn rates_parse_per_second_minute_and_hour() {
        assert_eq!(parse_rate("2000/s").unwrap().per_second(), 2000.0);
        assert_eq!(parse_rate("600/m").unwrap().per_second(), 10.0);
        assert_eq!(parse_rate("3600/h").unwrap().per_second(), 1.0);
        for bad in ["0/s", "10", "10/d", "/s", "x/s", "-1/s"] {
            assert_eq!(parse_rate(bad), None, "{bad}");
        }
    }

    #[test]
    fn booleans_take_the_usual_spellings_and_nothing_else() {
        for yes in ["true", "1", "yes", "on"] {
            assert_eq!(parse_bool(yes), Some(true), "{yes}");
        }
        for no in ["false", "0", "no", "off"] {
            assert_eq!(parse_bool(no), Some(false), "{no}");
        }
        assert_eq!(parse_bool("True"), None);
        assert_eq!(parse_bool(""), None);
    }
}
