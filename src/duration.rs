//! Durations as people write them in flags and in `launch.yml`: `5s`, `250ms`, `1m30s`,
//! or a bare number of seconds (`5`), because that is what `docker stop -t` takes.

use std::time::Duration;

/// A duration that could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid duration {text:?}: {reason}; write it like 5s, 250ms or 1m30s")]
pub struct DurationError {
    /// What was written.
    pub text: String,
    /// Why it was refused.
    pub reason: String,
}

/// Parses `5`, `5s`, `250ms`, `1m30s`, `2h`.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let trimmed = text.trim();
    let error = |reason: &str| DurationError {
        text: text.to_string(),
        reason: reason.to_string(),
    };
    if trimmed.is_empty() {
        return Err(error("it is empty"));
    }
    if let Ok(seconds) = trimmed.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    humantime::parse_duration(trimmed).map_err(|e| error(&e.to_string()))
}

/// Formats a duration the way [`parse`] reads it back (`1m 30s`, `250ms`).
pub fn format(duration: Duration) -> String {
    humantime::format_duration(duration).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_people_write() {
        assert_eq!(parse("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse(" 250ms "), Ok(Duration::from_millis(250)));
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn refuses_nonsense_with_a_hint() {
        let err = parse("5 parsecs").unwrap_err();
        assert!(err.to_string().contains("5s, 250ms or 1m30s"), "{err}");
        assert!(parse("").is_err());
        assert!(parse("-1s").is_err());
    }

    #[test]
    fn formats_round_trip() {
        let d = Duration::from_millis(90_250);
        assert_eq!(parse(&format(d)), Ok(d));
    }
}
