//! When micro-batches run.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::duration::parse_duration;

/// Spark's triggers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// Everything present at start, in rate-limited batches, then stop.
    AvailableNow,
    /// One batch of everything present (read limits ignored), then stop.
    Once,
    /// Run until stopped: one micro-batch per interval when new files exist.
    ProcessingTime(Duration),
}

impl Trigger {
    /// Does the query stop by itself?
    pub fn is_finite(&self) -> bool {
        !matches!(self, Trigger::ProcessingTime(_))
    }
}

impl FromStr for Trigger {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "available-now" | "availablenow" => Ok(Trigger::AvailableNow),
            "once" => Ok(Trigger::Once),
            other => match parse_duration(other) {
                Some(d) if !d.is_zero() => Ok(Trigger::ProcessingTime(d)),
                _ => Err(format!(
                    "invalid trigger `{s}`; use available-now, once, or an interval such as 2s or 500ms"
                )),
            },
        }
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Trigger::AvailableNow => f.write_str("available-now"),
            Trigger::Once => f.write_str("once"),
            Trigger::ProcessingTime(d) => write!(f, "{}ms", d.as_millis()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_triggers() {
        assert_eq!(
            "available-now".parse::<Trigger>().unwrap(),
            Trigger::AvailableNow
        );
        assert_eq!("once".parse::<Trigger>().unwrap(), Trigger::Once);
        assert_eq!(
            "500ms".parse::<Trigger>().unwrap(),
            Trigger::ProcessingTime(Duration::from_millis(500))
        );
        assert!("0s".parse::<Trigger>().is_err());
        assert!("sometimes"
            .parse::<Trigger>()
            .unwrap_err()
            .contains("available-now"));
    }
}
