//! Times and durations as the tables show them: UTC (the server's times are
//! unix seconds; the client does not guess a time zone), and durations in
//! the two largest units that matter (`1m05s`, `2h03m`).

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

/// (year, month, day) of the day `days` after 1970-01-01, in the
/// proleptic Gregorian calendar.
fn civil_date(days: i64) -> (i64, u32, u32) {
    // Count from 0000-03-01, so that the leap day is the last of its year,
    // in whole 400-year cycles of 146,097 days.
    let shifted = days + 719_468;
    let cycle = shifted.div_euclid(146_097);
    let day_of_cycle = shifted.rem_euclid(146_097);
    let year_of_cycle =
        (day_of_cycle - day_of_cycle / 1460 + day_of_cycle / 36_524 - day_of_cycle / 146_096) / 365;
    let day_of_year =
        day_of_cycle - (365 * year_of_cycle + year_of_cycle / 4 - year_of_cycle / 100);
    // Months from March: 31, 30, 31, 30, 31, 31, 30, 31, 30, 31, 31, 28/29.
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    } as u32;
    let year = year_of_cycle + cycle * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A moment (unix seconds) in UTC: `HH:MM:SS` when it is on the same UTC
/// day as `now`, `YYYY-MM-DD HH:MM` otherwise.
pub fn moment(unix: f64, now: f64) -> String {
    if !unix.is_finite() {
        return "-".to_string();
    }
    let seconds = unix.floor() as i64;
    let day = seconds.div_euclid(86_400);
    let of_day = seconds.rem_euclid(86_400);
    let (hour, minute, second) = (of_day / 3600, of_day / 60 % 60, of_day % 60);
    if now.is_finite() && (now.floor() as i64).div_euclid(86_400) == day {
        format!("{hour:02}:{minute:02}:{second:02}")
    } else {
        let (year, month, date) = civil_date(day);
        format!("{year:04}-{month:02}-{date:02} {hour:02}:{minute:02}")
    }
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
        assert_eq!(civil_date(0), (1970, 1, 1));
        assert_eq!(civil_date(-1), (1969, 12, 31));
        assert_eq!(civil_date(11_016), (2000, 2, 29));
        assert_eq!(civil_date(11_017), (2000, 3, 1));
        assert_eq!(civil_date(19_782), (2024, 2, 29));
        assert_eq!(civil_date(47_541), (2100, 3, 1), "2100 is not a leap year");
        // Walking day by day from 1970 agrees with a naive calendar.
        let mut expected = (1970i64, 1u32, 1u32);
        for days in 0..200_000 {
            assert_eq!(civil_date(days), expected, "day {days}");
            let (y, m, d) = expected;
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
    }
}
