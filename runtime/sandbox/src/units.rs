//! Human-readable durations (`100us`, `500ms`, `30s`, `2m`) and sizes (`64KiB`,
//! `128MiB`, `1GiB`) as written in manifests.

use std::time::Duration;

/// Parses `<number><unit>` with unit `us`, `ms`, `s` or `m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = split_number(text)?;
    let millis_per_unit: u64 = match unit {
        "us" => return Ok(Duration::from_micros(number)),
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        _ => {
            return Err(format!(
                "`{text}` has no valid unit: write it as `500ms`, `30s` or `2m`"
            ));
        }
    };
    number
        .checked_mul(millis_per_unit)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("`{text}` is too long"))
}

/// Parses `<number><unit>` with unit `B`, `KiB`, `MiB` or `GiB`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let (number, unit) = split_number(text)?;
    let bytes_per_unit: u64 = match unit {
        "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => {
            return Err(format!(
                "`{text}` has no valid unit: write it as `512KiB`, `64MiB` or `1GiB`"
            ));
        }
    };
    number
        .checked_mul(bytes_per_unit)
        .ok_or_else(|| format!("`{text}` is too large"))
}

/// Writes a byte count the way a manifest would: `64MiB`, `512KiB`, `1000B`.
pub fn format_size(bytes: u64) -> String {
    for (unit, size) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{}{unit}", bytes / size);
        }
    }
    format!("{bytes}B")
}

/// Writes a duration the way a manifest would: `2m`, `30s`, `1500ms`,
/// `250us` (to the microsecond).
pub fn format_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if !duration.subsec_micros().is_multiple_of(1_000) {
        format!("{}us", duration.as_micros())
    } else if millis >= 60_000 && millis.is_multiple_of(60_000) {
        format!("{}m", millis / 60_000)
    } else if millis >= 1_000 && millis.is_multiple_of(1_000) {
        format!("{}s", millis / 1_000)
    } else {
        format!("{millis}ms")
    }
}

fn split_number(text: &str) -> Result<(u64, &str), String> {
    let text = text.trim();
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(format!("`{text}` does not start with a number"));
    }
    let (number, unit) = text.split_at(digits);
    let number = number
        .parse()
        .map_err(|_| format!("`{text}` is too large"))?;
    Ok((number, unit.trim_start()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_round_trips_through_parsing() {
        for text in ["64MiB", "512KiB", "1GiB", "1000B", "1025B"] {
            assert_eq!(format_size(parse_size(text).unwrap()), text);
        }
        for text in ["2m", "30s", "1500ms", "90s", "250us", "1001us"] {
            assert_eq!(format_duration(parse_duration(text).unwrap()), text);
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("100us"), Ok(Duration::from_micros(100)));
        assert_eq!(parse_duration("2500us"), Ok(Duration::from_micros(2500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2 m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("30").unwrap_err().contains("no valid unit"));
        assert!(
            parse_duration("s")
                .unwrap_err()
                .contains("does not start with a number")
        );
        assert!(
            parse_duration("99999999999999999999s")
                .unwrap_err()
                .contains("too large")
        );
        assert!(
            parse_duration("18446744073709551615m")
                .unwrap_err()
                .contains("too long")
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64KiB"), Ok(64 << 10));
        assert_eq!(parse_size("128MiB"), Ok(128 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("17B"), Ok(17));
        assert!(parse_size("64MB").unwrap_err().contains("no valid unit"));
        assert!(
            parse_size("-1MiB")
                .unwrap_err()
                .contains("does not start with a number")
        );
    }
}
