//! Times and durations as the tables show them: UTC (the server's times are
//! unix seconds; the client does not guess a time zone), and durations in
//! the two largest units that matter (`1m05s`, `2h03m`).
//!
//! The calendar is `jiff`'s: dates are easy to get almost right by hand. The
//! short durations stay hand-written: `humantime` writes every unit with
//! spaces (`1m 5s`, `1h 2m 7s`), wider than a table column wants, and the
//! tables and `follow`'s closing line are compared byte for byte.

use jiff::tz::Offset;
use jiff::Timestamp;

/// A duration of `seconds`, short.
pub fn duration(seconds: f64) -> String {
    let total = if seconds.is_finite() && seconds > 0.0 {
        seconds.round() as u64
    } else {
        0
    };
    let (days, hours, minutes, secs) = (
        total / 86_400,
        total / 3600 % 24,
        total / 60 % 60,
        total % 60,
    );
    if days > 0 {
        format!("{days}d{hours:02}h")
    } else if hours > 0 {
        format!("{hours}h{minutes:02}m")
    } else if minutes > 0 {
        format!("{minutes}m{secs:02}s")
    } else {
        format!("{secs}s")
    }
}

/// A moment (unix seconds) in UTC: `HH:MM:SS` when it is on the same UTC
/// day as `now`, `YYYY-MM-DD HH:MM` otherwise; `-` when it is not a time
/// (not finite, or beyond jiff's years -9999 to 9999).
pub fn moment(unix: f64, now: f64) -> String {
    let Some(moment) = utc(unix) else {
        return "-".to_string();
    };
    if utc(now).is_some_and(|now| now.date() == moment.date()) {
        format!(
            "{:02}:{:02}:{:02}",
            moment.hour(),
            moment.minute(),
            moment.second()
        )
    } else {
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}",
            moment.year(),
            moment.month(),
            moment.day(),
            moment.hour(),
            moment.minute()
        )
    }
}

/// The UTC civil time of `unix` seconds, to the second (rounded down).
fn utc(unix: f64) -> Option<jiff::civil::DateTime> {
    if !unix.is_finite() {
        return None;
    }
    // `as` saturates; a saturated value is out of jiff's range and refused.
    let timestamp = Timestamp::from_second(unix.floor() as i64).ok()?;
    Some(Offset::UTC.to_datetime(timestamp))
}

/// Now, in unix seconds.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_use_the_two_largest_units() {
        assert_eq!(duration(0.0), "0s");
        assert_eq!(duration(-3.0), "0s");
        assert_eq!(duration(f64::NAN), "0s");
        assert_eq!(duration(59.4), "59s");
        assert_eq!(duration(65.0), "1m05s");
        assert_eq!(duration(3600.0 + 120.0 + 7.0), "1h02m");
        assert_eq!(duration(2.0 * 86_400.0 + 3.0 * 3600.0), "2d03h");
    }

    #[test]
    fn dates_are_right_across_leap_years_and_eras() {
        let date = |days: i64| moment(days as f64 * 86_400.0, f64::NAN);
        assert_eq!(date(0), "1970-01-01 00:00");
        assert_eq!(date(-1), "1969-12-31 00:00");
        assert_eq!(date(11_016), "2000-02-29 00:00");
        assert_eq!(date(11_017), "2000-03-01 00:00");
        assert_eq!(date(19_782), "2024-02-29 00:00");
        assert_eq!(date(47_541), "2100-03-01 00:00", "2100 is not a leap year");
        // Walking day by day from 1970 agrees with a naive calendar.
        let mut expected = (1970i64, 1u32, 1u32);
        for days in 0..200_000 {
            let (y, m, d) = expected;
            assert_eq!(
                date(days),
                format!("{y:04}-{m:02}-{d:02} 00:00"),
                "day {days}"
            );
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let length = match m {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            expected = if d < length {
                (y, m, d + 1)
            } else if m < 12 {
                (y, m + 1, 1)
            } else {
                (y + 1, 1, 1)
            };
        }
    }

    #[test]
    fn moments_show_the_date_only_when_it_is_not_today() {
        // 2024-05-01 12:34:56 UTC.
        let t = 1_714_566_896.0;
        assert_eq!(moment(t, t + 60.0), "12:34:56");
        assert_eq!(moment(t, t + 86_400.0), "2024-05-01 12:34");
        assert_eq!(moment(f64::INFINITY, t), "-");
        assert_eq!(moment(1e300, t), "-", "beyond the calendar");
        assert_eq!(moment(t + 0.9, t), "12:34:56", "rounded down");
        assert_eq!(moment(-0.5, f64::NAN), "1969-12-31 23:59");
    }
}
