//! The `Date` header value (RFC 9110 §6.6.1: an origin server with a clock MUST send it) in
//! IMF-fixdate form (RFC 9110 §5.6.7): `Sun, 06 Nov 1994 08:49:37 GMT`, always 29 bytes.
//! Formatted at most once per second per thread.

use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};

/// Bytes of an IMF-fixdate.
pub const HTTP_DATE_BYTES: usize = 29;

const WEEKDAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// (year, month 1..=12, day 1..=31) of a day count since 1970-01-01, by the proleptic Gregorian
/// "civil from days" method: shift the year to start in March so the leap day is last, then
/// split into 400-year eras (146 097 days), years of era, and days of year.
fn civil_from_days(days: u64) -> (u64, usize, u64) {
    let z = days + 719_468; // days from 0000-03-01 to 1970-01-01
    let era = z / 146_097;
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month as usize, day)
}

/// Formats `unix_seconds` (years up to 9999) as an IMF-fixdate.
pub fn format_http_date(unix_seconds: u64) -> [u8; HTTP_DATE_BYTES] {
    let days = unix_seconds / 86_400;
    let seconds_of_day = unix_seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    let mut out = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    out[..3].copy_from_slice(WEEKDAYS[(days % 7) as usize]);
    put_two(&mut out[5..7], day);
    out[8..11].copy_from_slice(MONTHS[month - 1]);
    put_two(&mut out[12..14], (year / 100) % 100);
    put_two(&mut out[14..16], year % 100);
    put_two(&mut out[17..19], seconds_of_day / 3_600);
    put_two(&mut out[20..22], seconds_of_day / 60 % 60);
    put_two(&mut out[23..25], seconds_of_day % 60);
    out
}

fn put_two(out: &mut [u8], value: u64) {
    out[0] = b'0' + (value / 10 % 10) as u8;
    out[1] = b'0' + (value % 10) as u8;
}

thread_local! {
    static CACHED: Cell<(u64, [u8; HTTP_DATE_BYTES])> = const { Cell::new((0, *b"Thu, 01 Jan 1970 00:00:00 GMT")) };
}

/// The current time as an IMF-fixdate, reformatted only when the second changes.
pub fn http_date_now() -> [u8; HTTP_DATE_BYTES] {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    CACHED.with(|cached| {
        let (second, text) = cached.get();
        if second == now {
            return text;
        }
        let text = format_http_date(now);
        cached.set((now, text));
        text
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Naive reference: walk years and months from 1970.
    fn reference(unix_seconds: u64) -> String {
        let mut days = unix_seconds / 86_400;
        let leap =
            |y: u64| (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
        let mut year = 1970;
        while days >= if leap(year) { 366 } else { 365 } {
            days -= if leap(year) { 366 } else { 365 };
            year += 1;
        }
        let lengths = [
            31,
            if leap(year) { 29 } else { 28 },
            31,
            30,
            31,
            30,
            31,
            31,
            30,
            31,
            30,
            31,
        ];
        let mut month = 0;
        while days >= lengths[month] {
            days -= lengths[month];
            month += 1;
        }
        let weekday =
            ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(unix_seconds / 86_400 % 7) as usize];
        let names = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let s = unix_seconds % 86_400;
        format!(
            "{weekday}, {:02} {} {year:04} {:02}:{:02}:{:02} GMT",
            days + 1,
            names[month],
            s / 3600,
            s / 60 % 60,
            s % 60
        )
    }

    #[test]
    fn rfc_example() {
        // RFC 9110 §5.6.7's example date.
        assert_eq!(
            &format_http_date(784_111_777),
            b"Sun, 06 Nov 1994 08:49:37 GMT"
        );
        assert_eq!(
            &format_http_date(951_782_400),
            b"Tue, 29 Feb 2000 00:00:00 GMT"
        );
    }

    #[test]
    fn now_is_well_formed() {
        let now = http_date_now();
        assert!(now.ends_with(b" GMT") && now[3] == b',');
    }

    proptest! {
        #[test]
        fn matches_reference(seconds in 0u64..253_402_300_800) { // up to 9999-12-31
            prop_assert_eq!(String::from_utf8(format_http_date(seconds).to_vec()).unwrap(), reference(seconds));
        }
    }
}
