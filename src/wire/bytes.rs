//! Little-endian helpers over byte slices, and the decode error every decoder returns.

use std::fmt;

/// Why a byte slice did not decode. Offsets are relative to the slice the decoder was given;
/// the segment layer adds the file name and the slice's place in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// Offset in the decoded slice where the problem was found.
    pub at: usize,
    /// What was wrong, e.g. "frame header checksum".
    pub what: &'static str,
    /// The value the format requires (or the limit), where one applies.
    pub expected: u64,
    /// The value found.
    pub found: u64,
    /// True when the bytes are intact but of a format version this build does not know (a
    /// newer evlog wrote them): never to be cut or repaired, only refused.
    pub unsupported: bool,
}

impl DecodeError {
    pub(crate) fn new(at: usize, what: &'static str, expected: u64, found: u64) -> Self {
        DecodeError {
            at,
            what,
            expected,
            found,
            unsupported: false,
        }
    }

    /// A version this build does not know, in bytes whose checksum matched.
    pub(crate) fn unsupported(at: usize, what: &'static str, expected: u64, found: u64) -> Self {
        DecodeError {
            unsupported: true,
            ..DecodeError::new(at, what, expected, found)
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at byte {} (expected {:#x}, found {:#x})",
            self.what, self.at, self.expected, self.found
        )
    }
}

impl std::error::Error for DecodeError {}

/// The names of the three checks [`check_fixed_header`] makes, for its errors.
pub struct HeaderChecks {
    /// Name of the length check, e.g. "segment header length".
    pub length: &'static str,
    /// Name of the magic check.
    pub magic: &'static str,
    /// Name of the checksum check.
    pub checksum: &'static str,
}

/// Checks the start of a fixed-size header: `buf` holds at least `len` bytes, starts with
/// `magic`, and the little-endian CRC-32 stored at `crc_at` matches bytes `0..crc_at`.
pub fn check_fixed_header<const M: usize>(
    buf: &[u8],
    len: usize,
    magic: &[u8; M],
    crc_at: usize,
    names: &HeaderChecks,
) -> Result<(), DecodeError> {
    check_fixed_header_with(buf, len, magic, crc_at, names, true)
}

/// [`check_fixed_header`], checking the checksum only when `check_crc` (for bytes checked as a
/// whole already).
pub fn check_fixed_header_with<const M: usize>(
    buf: &[u8],
    len: usize,
    magic: &[u8; M],
    crc_at: usize,
    names: &HeaderChecks,
    check_crc: bool,
) -> Result<(), DecodeError> {
    if buf.len() < len {
        return Err(DecodeError::new(
            0,
            names.length,
            len as u64,
            buf.len() as u64,
        ));
    }
    // Arrays of a known length: compared in a register or two, not by a call to memcmp.
    if buf.first_chunk::<M>() != Some(magic) {
        let as_u64 = |b: &[u8]| {
            let mut x = [0u8; 8];
            x[..b.len()].copy_from_slice(b);
            u64::from_le_bytes(x)
        };
        return Err(DecodeError::new(
            0,
            names.magic,
            as_u64(magic),
            as_u64(&buf[..magic.len()]),
        ));
    }
    let stored = u32_at(buf, crc_at);
    let crc = if check_crc {
        crc32fast::hash(&buf[..crc_at])
    } else {
        stored
    };
    if crc != stored {
        return Err(DecodeError::new(
            crc_at,
            names.checksum,
            crc.into(),
            stored.into(),
        ));
    }
    Ok(())
}

/// Reads a little-endian `u16` at `off`; the caller has checked the bounds.
#[inline]
pub fn u16_at(buf: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([buf[off], buf[off + 1]])
}

/// Asks the processor to fetch the cache line holding `bytes[at]` (nothing when `at` is out
/// of bounds, or on processors this has no instruction for).
#[inline(always)]
pub fn prefetch(bytes: &[u8], at: usize) {
    #[cfg(target_arch = "x86_64")]
    if at < bytes.len() {
        #[allow(unsafe_code)]
        // SAFETY: a prefetch only hints the cache; it never faults and reads nothing into the
        // program. The pointer is in bounds of `bytes` all the same.
        unsafe {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            _mm_prefetch::<_MM_HINT_T0>(bytes.as_ptr().add(at).cast());
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (bytes, at);
}

/// Reads a little-endian `u32` at `off`; the caller has checked the bounds.
#[inline]
pub fn u32_at(buf: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(buf[off..off + 4].try_into().expect("4 bytes"))
}

/// Reads a little-endian `u64` at `off`; the caller has checked the bounds.
#[inline]
pub fn u64_at(buf: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(buf[off..off + 8].try_into().expect("8 bytes"))
}

/// A bounds-checked cursor over a byte slice. Every read checks the remaining length first.
pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Added to `pos` in errors, so they speak of offsets in the enclosing slice.
    base: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor over `buf` whose errors report offsets starting at `base`.
    pub fn new(buf: &'a [u8], base: usize) -> Self {
        Cursor { buf, pos: 0, base }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Offset of the cursor in the enclosing slice.
    pub fn offset(&self) -> usize {
        self.base + self.pos
    }

    // The reads below are inlined into the decoders (a record takes a dozen of them), their
    // errors built out of line: the common path is a bounds check and a load.

    /// Takes `n` bytes, failing with `what` if fewer remain.
    #[inline]
    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(self.short(n, what));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    #[cold]
    #[inline(never)]
    fn short(&self, n: usize, what: &'static str) -> DecodeError {
        DecodeError::new(self.offset(), what, n as u64, self.remaining() as u64)
    }

    /// Reads one byte.
    #[inline]
    pub fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, what)?[0])
    }

    /// Reads a little-endian `u16`.
    #[inline]
    pub fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        Ok(u16_at(self.take(2, what)?, 0))
    }

    /// Reads a little-endian `u32`.
    #[inline]
    pub fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32_at(self.take(4, what)?, 0))
    }

    /// Reads a little-endian `u64`.
    #[inline]
    pub fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(u64_at(self.take(8, what)?, 0))
    }

    /// Reads a length-prefixed field after checking its length against `limit`.
    #[inline]
    pub fn bytes_with_limit(
        &mut self,
        len: usize,
        limit: usize,
        what: &'static str,
    ) -> Result<&'a [u8], DecodeError> {
        if len > limit {
            return Err(self.over_limit(len, limit, what));
        }
        self.take(len, what)
    }

    #[cold]
    #[inline(never)]
    fn over_limit(&self, len: usize, limit: usize, what: &'static str) -> DecodeError {
        DecodeError::new(self.offset(), what, limit as u64, len as u64)
    }

    /// Reads a UTF-8 string of `len` bytes (checked against `limit`).
    pub fn str_with_limit(
        &mut self,
        len: usize,
        limit: usize,
        what: &'static str,
    ) -> Result<&'a str, DecodeError> {
        let at = self.offset();
        let b = self.bytes_with_limit(len, limit, what)?;
        std::str::from_utf8(b).map_err(|e| DecodeError::new(at, what, 0, e.valid_up_to() as u64))
    }
}

/// FNV-1a, 64 bits: the stable hash of stream ids stored in index files. Fixed by the format,
/// so it never changes with a library upgrade.
pub fn stream_hash(stream: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in stream.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}
