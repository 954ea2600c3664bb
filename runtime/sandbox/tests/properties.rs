//! Property tests of the manifest's sizes and durations: parsing never
//! panics, and what is parsed, written back and parsed again is the same
//! value.
//!
//! Each property runs 256 cases by default (bounded, for CI); for a longer
//! run, set the case count:
//!
//! ```sh
//! PROPTEST_CASES=100000 cargo test --release -p mayfly-sandbox --test properties
//! ```

use std::time::Duration;

use mayfly_sandbox::units::{format_duration, format_size, parse_duration, parse_size};
use proptest::prelude::*;

/// Proptest's defaults (256 cases, or `PROPTEST_CASES`), without failure
/// files in the source tree: a case that fails is kept as a plain test.
fn config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Texts that are sizes or durations, nearly, or not at all.
fn unit_text() -> impl Strategy<Value = String> {
    let number = prop_oneof![
        "[0-9]{1,4}",
        "[0-9]{15,25}",
        any::<u64>().prop_map(|n| n.to_string()),
        proptest::sample::select(
            &[
                "",
                "-1",
                "+1",
                "1.5",
                "1e400",
                "0x10",
                "١٢",
                "٣",
                "0",
                "00",
                "18446744073709551615",
                "18446744073709551616",
                "99999999999",
            ][..]
        )
        .prop_map(String::from),
    ];
    let unit = prop_oneof![
        proptest::sample::select(
            &[
                "us",
                "ms",
                "s",
                "m",
                "h",
                "B",
                "KiB",
                "MiB",
                "GiB",
                "TiB",
                "kb",
                "MB",
                "mib",
                " GiB",
                " ms",
                "s ",
                "",
                " ",
                "\u{a0}s",
                "\u{2003}MiB",
                "ms\n",
                "\0",
                "é",
            ][..]
        )
        .prop_map(String::from),
        "\\PC{0,4}",
    ];
    prop_oneof![
        4 => (number, unit).prop_map(|(number, unit)| format!("{number}{unit}")),
        1 => any::<String>(),
        1 => "[ \t]{0,2}[0-9]{1,3}[ \t]{0,2}[a-zA-Z]{0,3}[ \t]{0,2}",
    ]
}

proptest! {
    #![proptest_config(config())]

    /// Parsing any text answers; a size that parses is written back as one
    /// that parses to the same number of bytes.
    #[test]
    fn sizes_round_trip(text in unit_text()) {
        if let Ok(bytes) = parse_size(&text) {
            let written = format_size(bytes);
            prop_assert_eq!(parse_size(&written), Ok(bytes), "{:?} is written {:?}", text, written);
        }
    }

    /// The same for durations.
    #[test]
    fn durations_round_trip(text in unit_text()) {
        if let Ok(duration) = parse_duration(&text) {
            let written = format_duration(duration);
            prop_assert_eq!(
                parse_duration(&written),
                Ok(duration),
                "{:?} is written {:?}", text, written
            );
        }
    }

    /// Every byte count and every whole number of milliseconds is written
    /// as a text that parses back to it, in the largest unit that divides
    /// it.
    #[test]
    fn every_value_is_written_so_that_it_parses_back(n in any::<u64>(), shift in 0u32..40) {
        // Many values with round units, and any value at all.
        for bytes in [n, n.checked_shl(shift).unwrap_or(n), n >> shift << shift] {
            let written = format_size(bytes);
            prop_assert_eq!(parse_size(&written), Ok(bytes), "{} is written {:?}", bytes, written);
        }
        // (Shifted so that the products cannot overflow.)
        for millis in [n, (n >> shift.max(10)) * 1000, (n >> shift.max(16)) * 60_000] {
            let duration = Duration::from_millis(millis);
            let written = format_duration(duration);
            prop_assert_eq!(
                parse_duration(&written),
                Ok(duration),
                "{:?} is written {:?}", duration, written
            );
        }
    }
}
