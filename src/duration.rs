//! Durations as users write them: `500ms`, `2s`, `10 minutes`, `1 hour`, `7d`, `1 day 2 hours`.
//! Shared by triggers, `maxFileAge`, watermarks and windows.

use std::time::Duration;

/// Parse a human duration. Returns `None` when the text is not a duration.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim().to_ascii_lowercase();
    let text = text
        .strip_prefix("interval")
        .unwrap_or(&text)
        .trim()
        .to_string();
    if text.is_empty() {
        return None;
    }
    let mut total: u128 = 0;
    let mut rest = text.as_str();
    let mut any = false;
    while !rest.trim_start().is_empty() {
        rest = rest.trim_start();
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let amount: u128 = rest[..digits].parse().ok()?;
        rest = rest[digits..].trim_start();
        let unit_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let nanos_per: u128 = match unit {
            "ns" | "nanosecond" | "nanoseconds" => 1,
            "us" | "microsecond" | "microseconds" => 1_000,
            "ms" | "milli" | "millis" | "millisecond" | "milliseconds" => 1_000_000,
            "s" | "sec" | "secs" | "second" | "seconds" => 1_000_000_000,
            "m" | "min" | "mins" | "minute" | "minutes" => 60_000_000_000,
            "h" | "hr" | "hrs" | "hour" | "hours" => 3_600_000_000_000,
            "d" | "day" | "days" => 86_400_000_000_000,
            "w" | "week" | "weeks" => 7 * 86_400_000_000_000,
            _ => return None,
        };
        total = total.checked_add(amount.checked_mul(nanos_per)?)?;
        any = true;
        rest = rest.trim_start().strip_prefix(',').unwrap_or(rest);
    }
    if !any {
        return None;
    }
    Some(Duration::from_nanos(u64::try_from(total).ok()?))
}

/// A positive number of microseconds in the largest unit that holds it exactly, as `parse_duration`
/// reads it back (`'2 hours'`, `'7701 seconds'`, `'1500 microseconds'`).
pub fn describe_micros(us: i64) -> String {
    const UNITS: [(i64, &str); 6] = [
        (86_400_000_000, "days"),
        (3_600_000_000, "hours"),
        (60_000_000, "minutes"),
        (1_000_000, "seconds"),
        (1_000, "milliseconds"),
        (1, "microseconds"),
    ];
    let (per, unit) = UNITS
        .iter()
        .find(|(per, _)| us % per == 0)
        .copied()
        .unwrap_or((1, "microseconds"));
    format!("'{} {unit}'", us / per)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_micros_in_the_largest_exact_unit() {
        assert_eq!(describe_micros(7_200_000_000), "'2 hours'");
        assert_eq!(describe_micros(7_701_000_000), "'7701 seconds'");
        assert_eq!(describe_micros(1_500), "'1500 microseconds'");
        for us in [7_701_000_000, 1_500, 86_400_000_000] {
            let text = describe_micros(us);
            let back = parse_duration(text.trim_matches('\'')).unwrap();
            assert_eq!(back.as_micros() as i64, us);
        }
    }

    #[test]
    fn parses_common_spellings() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("10 minutes"), Some(Duration::from_secs(600)));
        assert_eq!(parse_duration("1 hour"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("7d"), Some(Duration::from_secs(7 * 86400)));
        assert_eq!(
            parse_duration("1 day 2 hours"),
            Some(Duration::from_secs(86400 + 7200))
        );
        assert_eq!(
            parse_duration("interval 5 seconds"),
            Some(Duration::from_secs(5))
        );
    }

    #[test]
    fn rejects_nonsense() {
        for bad in ["", "soon", "5", "5 parsecs", "ms", "-1s"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}
