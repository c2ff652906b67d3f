//! The archive marker (`archive.path`): where the store's archived sealed segments are.
//!
//! ```text
//! magic "EVLOGARC" | version u16 | path_len u16 | path (UTF-8, path_len bytes) | crc u32
//! ```
//! The CRC-32 covers every byte before it. The file is written whole (temp, fsync, rename,
//! fsync directory) before the first segment is moved to the archive, so a store whose
//! segments were archived always names where they are. It is data: damage is an error.

use super::bytes::{DecodeError, u16_at, u32_at};

/// File name of the archive marker in a store directory.
pub const ARCHIVE_FILE_NAME: &str = "archive.path";
/// Magic at byte 0.
pub const ARCHIVE_MAGIC: [u8; 8] = *b"EVLOGARC";
/// Current version.
pub const ARCHIVE_VERSION: u16 = 1;
/// Longest path the marker holds.
pub const MAX_ARCHIVE_PATH_BYTES: usize = 4096;

/// Encodes the marker naming `path`.
pub fn encode_archive_marker(path: &str) -> Vec<u8> {
    assert!(path.len() <= MAX_ARCHIVE_PATH_BYTES);
    let mut b = Vec::with_capacity(16 + path.len());
    b.extend_from_slice(&ARCHIVE_MAGIC);
    b.extend_from_slice(&ARCHIVE_VERSION.to_le_bytes());
    b.extend_from_slice(&(path.len() as u16).to_le_bytes());
    b.extend_from_slice(path.as_bytes());
    let crc = crc32fast::hash(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

/// Decodes and checks a marker, returning the archive path it names.
pub fn decode_archive_marker(buf: &[u8]) -> Result<&str, DecodeError> {
    if buf.len() < 16 {
        return Err(DecodeError::new(
            0,
            "archive marker length",
            16,
            buf.len() as u64,
        ));
    }
    if buf[..8] != ARCHIVE_MAGIC {
        return Err(DecodeError::new(0, "archive marker magic", 0, 0));
    }
    let len = u16_at(buf, 10) as usize;
    if len > MAX_ARCHIVE_PATH_BYTES || buf.len() != 16 + len {
        return Err(DecodeError::new(
            10,
            "archive marker path length",
            (buf.len().saturating_sub(16)) as u64,
            len as u64,
        ));
    }
    let crc = crc32fast::hash(&buf[..12 + len]);
    let stored = u32_at(buf, 12 + len);
    if crc != stored {
        return Err(DecodeError::new(
            12 + len,
            "archive marker checksum",
            stored.into(),
            crc.into(),
        ));
    }
    let version = u16_at(buf, 8);
    if version != ARCHIVE_VERSION {
        return Err(DecodeError::unsupported(
            8,
            "archive marker version",
            ARCHIVE_VERSION.into(),
            version.into(),
        ));
    }
    std::str::from_utf8(&buf[12..12 + len])
        .map_err(|_| DecodeError::new(12, "archive marker path is not UTF-8", 0, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_round_trips_and_every_flip_is_caught() {
        let b = encode_archive_marker("/mnt/usb/evlog-archive");
        assert_eq!(decode_archive_marker(&b).unwrap(), "/mnt/usb/evlog-archive");
        for i in 0..b.len() {
            let mut bad = b.clone();
            bad[i] ^= 1;
            assert!(decode_archive_marker(&bad).is_err(), "byte {i}");
        }
        assert!(decode_archive_marker(&b[..b.len() - 1]).is_err());
    }
}
