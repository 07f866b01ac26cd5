//! Time as plain numbers: the core never reads a clock. Callers pass `now`
//! in milliseconds since the Unix epoch; durations are milliseconds too.

use crate::error::PolicyError;

/// Milliseconds since the Unix epoch (or a duration in milliseconds).
pub type Millis = u64;

/// Parses a human duration into milliseconds.
///
/// Accepts one or more `<number><unit>` parts, e.g. `"500ms"`, `"1s"`,
/// `"1.5s"`, `"10m"`, `"1h30m"`, `"2d"`, and a bare number meaning seconds.
/// Units: `ms`, `s`, `m`, `h`, `d`, `w`. Whitespace between parts is
/// allowed. Negative, empty or overflowing values are errors naming `field`.
pub fn parse_duration(field: &'static str, text: &str) -> Result<Millis, PolicyError> {
    let bad = |reason: String| PolicyError { field, reason };
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(bad(
            "empty duration; write e.g. \"500ms\", \"30s\", \"10m\", \"2h\", \"1d\"".into(),
        ));
    }
    if let Ok(seconds) = trimmed.parse::<f64>() {
        return seconds_to_millis(field, seconds);
    }
    let mut total: f64 = 0.0;
    let mut rest = trimmed;
    while !rest.is_empty() {
        rest = rest.trim_start();
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if number_len == 0 {
            return Err(bad(format!(
                "cannot read {text:?} as a duration: expected a number at {rest:?}; write e.g. \"1h30m\""
            )));
        }
        let number: f64 = rest[..number_len].parse().map_err(|_| {
            bad(format!(
                "cannot read the number {:?} in {text:?}",
                &rest[..number_len]
            ))
        })?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let scale = match unit {
            "ms" => 1.0,
            "s" | "sec" => 1_000.0,
            "m" | "min" => 60_000.0,
            "h" => 3_600_000.0,
            "d" => 86_400_000.0,
            "w" => 604_800_000.0,
            "" => {
                return Err(bad(format!(
                    "{text:?} has a number without a unit; use ms, s, m, h, d or w"
                )))
            }
            other => {
                return Err(bad(format!(
                    "unknown unit {other:?} in {text:?}; use ms, s, m, h, d or w"
                )))
            }
        };
        total += number * scale;
    }
    millis_checked(field, total)
}

/// Converts seconds (as given by a Python float or int) to milliseconds.
pub fn seconds_to_millis(field: &'static str, seconds: f64) -> Result<Millis, PolicyError> {
    millis_checked(field, seconds * 1_000.0)
}

fn millis_checked(field: &'static str, millis: f64) -> Result<Millis, PolicyError> {
    if !millis.is_finite() || millis < 0.0 {
        return Err(PolicyError {
            field,
            reason: format!("duration must be a finite, non-negative value, got {millis} ms"),
        });
    }
    // 2^53 ms is ~285,000 years: beyond that f64 loses integer precision.
    if millis > 9_007_199_254_740_992.0 {
        return Err(PolicyError {
            field,
            reason: "duration is too large".into(),
        });
    }
    Ok(millis.round() as Millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_compounds() {
        assert_eq!(parse_duration("d", "500ms").unwrap(), 500);
        assert_eq!(parse_duration("d", "1s").unwrap(), 1_000);
        assert_eq!(parse_duration("d", "1.5s").unwrap(), 1_500);
        assert_eq!(parse_duration("d", "10m").unwrap(), 600_000);
        assert_eq!(parse_duration("d", "1h30m").unwrap(), 5_400_000);
        assert_eq!(parse_duration("d", "2d").unwrap(), 172_800_000);
        assert_eq!(parse_duration("d", " 1h 5s ").unwrap(), 3_605_000);
        assert_eq!(parse_duration("d", "30").unwrap(), 30_000);
        assert_eq!(parse_duration("d", "0").unwrap(), 0);
    }

    #[test]
    fn rejects_bad_text_naming_the_field() {
        for text in ["", "abc", "10", "10x", "-1s", "1.2.3s", "s", "inf"] {
            if text == "10" {
                continue;
            }
            let err = parse_duration("timeout", text).unwrap_err();
            assert_eq!(err.field, "timeout", "{text}");
        }
        assert!(seconds_to_millis("delay", -1.0).is_err());
        assert!(seconds_to_millis("delay", f64::NAN).is_err());
        assert!(seconds_to_millis("delay", 1e300).is_err());
    }
}
