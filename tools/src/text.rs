//! Text formatting and parsing shared by the subcommands: times, durations, byte counts.

use std::time::Duration;

/// Formats µs since the Unix epoch as RFC 3339 UTC with microseconds.
pub fn rfc3339_us(us: u64) -> String {
    let secs = us / 1_000_000;
    let micros = us % 1_000_000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A duration with a unit that keeps three significant digits or so: `812 ns`, `1.25 ms`.
pub fn duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns < 1_000 {
        format!("{ns} ns")
    } else if ns < 1_000_000 {
        format!("{:.2} us", ns as f64 / 1e3)
    } else if ns < 1_000_000_000 {
        format!("{:.2} ms", ns as f64 / 1e6)
    } else {
        format!("{:.2} s", ns as f64 / 1e9)
    }
}

/// Parses a duration given on the command line: a whole number and a unit, `s` (seconds),
/// `m` (minutes), `h` (hours), `d` (days) or `w` (weeks): `30d`, `12h`, `90m`, `0s`. The error
/// says what is wrong and what is expected (clap prints it as a usage error, exit 2).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    const EXPECTED: &str =
        "expected a whole number and a unit: s, m, h, d or w (e.g. 30d, 12h, 90m, 0s)";
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(format!("{s:?} does not start with a number: {EXPECTED}"));
    }
    let secs_per: u64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        "" => return Err(format!("{s:?} has no unit: {EXPECTED}")),
        u => return Err(format!("unknown unit {u:?} in {s:?}: {EXPECTED}")),
    };
    // Durations are counted in microseconds since the Unix epoch elsewhere: keep them in a u64.
    const MAX_SECS: u64 = u64::MAX / 1_000_000;
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(secs_per))
        .filter(|secs| *secs <= MAX_SECS)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{s:?} is too long (at most {MAX_SECS}s)"))
}

/// A duration as [`parse_duration`] reads it, in the largest unit that keeps it whole (`30d`,
/// `90m`, `0s`).
pub fn duration_arg(d: Duration) -> String {
    let secs = d.as_secs();
    for (unit, per) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if secs > 0 && secs.is_multiple_of(per) {
            return format!("{}{unit}", secs / per);
        }
    }
    format!("{secs}s")
}

/// A byte count in binary units: `512 B`, `3.50 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.2} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_format_as_rfc3339() {
        assert_eq!(rfc3339_us(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            rfc3339_us(951_782_400_000_001),
            "2000-02-29T00:00:00.000001Z"
        );
        assert_eq!(
            rfc3339_us(1_735_689_599_999_999),
            "2024-12-31T23:59:59.999999Z"
        );
    }

    #[test]
    fn durations_and_bytes_have_units() {
        assert_eq!(duration(Duration::from_nanos(812)), "812 ns");
        assert_eq!(duration(Duration::from_micros(1250)), "1.25 ms");
        assert_eq!(duration(Duration::from_secs(3)), "3.00 s");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3 << 20 | 1 << 19), "3.50 MiB");
    }

    #[test]
    fn durations_parse_with_a_unit() {
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("90m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(43_200)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(2_592_000)));
        assert_eq!(parse_duration("2w"), Ok(Duration::from_secs(1_209_600)));
        for (arg, shown) in [
            ("0s", "0s"),
            ("90m", "90m"),
            ("120m", "2h"),
            ("30d", "30d"),
            ("2w", "14d"),
            ("61s", "61s"),
        ] {
            assert_eq!(duration_arg(parse_duration(arg).unwrap()), shown);
        }
        for (bad, why) in [
            ("", "does not start with a number"),
            ("d", "does not start with a number"),
            ("-1d", "does not start with a number"),
            ("30", "has no unit"),
            ("30x", "unknown unit"),
            ("1.5h", "unknown unit"),
            ("3d12h", "unknown unit"),
            ("99999999999999999999d", "too long"),
            ("300000000000000w", "too long"),
        ] {
            let e = parse_duration(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
            assert!(e.contains(bad), "{bad}: {e}");
        }
    }
}
