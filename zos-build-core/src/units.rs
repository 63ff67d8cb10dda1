//! Sizes and durations written as people (and the configuration) write
//! them, for log lines and error messages.

use std::time::Duration;

/// `256 MiB`, `16 GiB`, `1000 bytes`: a size as people read it.
pub fn format_size(bytes: u64) -> String {
    for (unit, name) in [(1u64 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")] {
        if bytes >= unit && bytes % unit == 0 {
            return format!("{} {name}", bytes / unit);
        }
    }
    format!("{bytes} bytes")
}

/// `45m`, `1h30m`, `2s`, `500ms`: how durations are written in the configuration.
pub fn format_duration(duration: Duration) -> String {
    let total = duration.as_secs();
    if total == 0 {
        return format!("{}ms", duration.as_millis());
    }
    let (hours, minutes, seconds) = (total / 3600, total / 60 % 60, total % 60);
    let mut text = String::new();
    if hours > 0 {
        text.push_str(&format!("{hours}h"));
    }
    if minutes > 0 {
        text.push_str(&format!("{minutes}m"));
    }
    if seconds > 0 {
        text.push_str(&format!("{seconds}s"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_written_with_binary_units() {
        assert_eq!(format_size(256 << 20), "256 MiB");
        assert_eq!(format_size(16 << 30), "16 GiB");
        assert_eq!(format_size(3 << 10), "3 KiB");
        assert_eq!(format_size(1000), "1000 bytes");
    }

    #[test]
    fn durations_are_written_as_in_the_configuration() {
        assert_eq!(format_duration(Duration::from_secs(45 * 60)), "45m");
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_duration(Duration::from_secs(2)), "2s");
        assert_eq!(format_duration(Duration::from_secs(3661)), "1h1m1s");
        assert_eq!(format_duration(Duration::from_millis(500)), "500ms");
    }
}
