//! Names of snapshot files: `HHHHHHHHHHHHHHHH-VVVVVVVVVVVVVVVVVVVV.snap`, the stream id's hash
//! in 16 lowercase hex digits and the stream version in 20 decimal digits. Stream ids may be
//! any UTF-8 up to 1 KiB, so they are not in the name; the header holds the id itself.

/// Name of the subdirectory of a store directory that holds its snapshots.
pub const SNAPSHOT_DIR_NAME: &str = "snapshots";

/// Ending of a snapshot file's name.
pub const SNAPSHOT_FILE_SUFFIX: &str = ".snap";

/// Ending of a file being written by the temp + rename protocol (`<name>.tmp`).
pub const TEMP_FILE_SUFFIX: &str = ".tmp";

/// The file name of the snapshot of the stream with hash `stream_hash` at `version`.
pub fn snapshot_file_name(stream_hash: u64, version: u64) -> String {
    format!("{stream_hash:016x}-{version:020}{SNAPSHOT_FILE_SUFFIX}")
}

/// The stream hash and version a snapshot file name gives, or `None` when `name` is not exactly
/// a snapshot file name (temp files and everything else).
pub fn parse_snapshot_file_name(name: &str) -> Option<(u64, u64)> {
    let stem = name.strip_suffix(SNAPSHOT_FILE_SUFFIX)?;
    let (hash, version) = stem.split_once('-')?;
    let lower_hex = |c: u8| c.is_ascii_digit() || (b'a'..=b'f').contains(&c);
    if hash.len() != 16 || !hash.bytes().all(lower_hex) {
        return None;
    }
    if version.len() != 20 || !version.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    Some((
        u64::from_str_radix(hash, 16).ok()?,
        version.parse::<u64>().ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_reject_others() {
        for (h, v) in [(0, 0), (u64::MAX, u64::MAX), (0xdee4_809f_34be_e86d, 9_900)] {
            assert_eq!(
                parse_snapshot_file_name(&snapshot_file_name(h, v)),
                Some((h, v))
            );
        }
        let good = snapshot_file_name(1, 2);
        assert_eq!(good, "0000000000000001-00000000000000000002.snap");
        for bad in [
            format!("{good}.tmp"),
            good.to_uppercase(),
            "0000000000000001-2.snap".into(),
            "000000000000000g-00000000000000000002.snap".into(),
            "0000000000000001-99999999999999999999.snap".into(),
            "0000000000000001_00000000000000000002.snap".into(),
        ] {
            assert_eq!(parse_snapshot_file_name(&bad), None, "{bad}");
        }
    }
}
