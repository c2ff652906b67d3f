//! Compressed sealed segments (`NNN.zseg`): the exact bytes of a sealed `.seg` file (its
//! *image*), cut into blocks that are zstd-compressed one by one, each with a CRC-32 of its
//! compressed bytes. Decompressing every block in order gives back the `.seg` file byte for
//! byte, so frames, footer, `.idx` offsets and checkpoints keep their meaning.
//!
//! ```text
//! header (64)    magic "EVLOGZSG" | version u16 | reserved u16 | block_raw_bytes u32 |
//!                image_len u64 | block_count u32 | table_crc u32 | reserved (28) |
//!                header_crc u32 (of bytes 0..60)
//! segment header (64)   copy of image bytes [0, 64)
//! segment footer (64)   copy of image bytes [image_len - 64, image_len)
//! block table    block_count x (compressed_len u32 | compressed_crc u32); table_crc covers it
//! blocks         block i decompresses to image[i * block_raw_bytes ..][.. block_raw_bytes]
//!                (the last block holds the rest)
//! ```
//!
//! Every check runs before anything is decompressed: the header's and the table's checksums,
//! the limits on `image_len` and `block_raw_bytes`, the block count against them, the blocks'
//! extents against the file length, and each block's CRC before its bytes reach zstd. A block
//! must decompress to exactly its length; zstd is never asked for more.

use super::bytes::{DecodeError, HeaderChecks, check_fixed_header, u16_at, u32_at, u64_at};
use super::segment::{FOOTER_BYTES, SEGMENT_HEADER_BYTES};

/// Magic at byte 0 of a compressed segment file.
pub const ZSEG_MAGIC: [u8; 8] = *b"EVLOGZSG";
/// Current compressed segment format version.
pub const ZSEG_VERSION: u16 = 1;
/// Size of the compressed segment header.
pub const ZSEG_HEADER_BYTES: usize = 64;
/// Bytes before the block table: the header and the copies of the segment header and footer.
pub const ZSEG_PREFIX_BYTES: usize = ZSEG_HEADER_BYTES + SEGMENT_HEADER_BYTES + FOOTER_BYTES;
/// Size of one block table entry.
pub const ZSEG_BLOCK_ENTRY_BYTES: usize = 8;
/// Uncompressed bytes per block written by this version.
pub const ZSEG_BLOCK_RAW_BYTES: u32 = 64 << 10;
/// Smallest and largest `block_raw_bytes` a reader accepts.
pub const ZSEG_BLOCK_RAW_MIN: u32 = 4 << 10;
/// See [`ZSEG_BLOCK_RAW_MIN`].
pub const ZSEG_BLOCK_RAW_MAX: u32 = 4 << 20;
/// Largest image a reader accepts: the largest segment a writer seals (a segment is sealed
/// before a frame would take it past `SEGMENT_BYTES_MAX`, so its data ends there at most)
/// and its footer.
pub const ZSEG_MAX_IMAGE_BYTES: u64 = super::limits::SEGMENT_BYTES_MAX + FOOTER_BYTES as u64;
/// zstd level used to compress blocks.
pub const ZSEG_ZSTD_LEVEL: i32 = 3;

/// The file name of the compressed segment whose first event is at `first_position`.
pub fn zseg_file_name(first_position: u64) -> String {
    format!("{first_position:020}.zseg")
}

/// Parses a compressed segment file name back into its first position.
pub fn parse_zseg_file_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".zseg")?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// One block of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZsegBlock {
    /// Offset of the compressed bytes in the file.
    pub offset: u64,
    /// Length of the compressed bytes.
    pub compressed_len: u32,
    /// CRC-32 of the compressed bytes.
    pub compressed_crc: u32,
    /// Offset of the block's bytes in the image.
    pub image_offset: u64,
    /// Length of the block's bytes in the image.
    pub raw_len: u32,
}

/// The checked layout of a compressed segment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZsegLayout {
    /// Length of the image (the `.seg` file it stands for).
    pub image_len: u64,
    /// Uncompressed bytes per block (the last may hold fewer).
    pub block_raw_bytes: u32,
    /// The blocks, in image order.
    pub blocks: Vec<ZsegBlock>,
}

impl ZsegLayout {
    /// The image's first 64 bytes (the segment header), as copied into the file.
    pub fn segment_header(buf: &[u8]) -> &[u8] {
        &buf[ZSEG_HEADER_BYTES..ZSEG_HEADER_BYTES + SEGMENT_HEADER_BYTES]
    }

    /// The image's last 64 bytes (the segment footer), as copied into the file.
    pub fn segment_footer(buf: &[u8]) -> &[u8] {
        &buf[ZSEG_HEADER_BYTES + SEGMENT_HEADER_BYTES..ZSEG_PREFIX_BYTES]
    }
}

/// Decodes and checks the 64-byte header of a compressed segment: returns the image length,
/// the block size, the block count and the block table's CRC.
pub fn decode_zseg_header(buf: &[u8]) -> Result<(u64, u32, u32, u32), DecodeError> {
    check_fixed_header(
        buf,
        ZSEG_HEADER_BYTES,
        &ZSEG_MAGIC,
        60,
        &HeaderChecks {
            length: "compressed segment header length",
            magic: "compressed segment magic",
            checksum: "compressed segment header checksum",
        },
    )?;
    let version = u16_at(buf, 8);
    if version != ZSEG_VERSION {
        return Err(DecodeError::unsupported(
            8,
            "compressed segment format version",
            ZSEG_VERSION.into(),
            version.into(),
        ));
    }
    let block_raw = u32_at(buf, 12);
    if !(ZSEG_BLOCK_RAW_MIN..=ZSEG_BLOCK_RAW_MAX).contains(&block_raw) {
        return Err(DecodeError::new(
            12,
            "compressed segment block size",
            ZSEG_BLOCK_RAW_MAX.into(),
            block_raw.into(),
        ));
    }
    let image_len = u64_at(buf, 16);
    if image_len < (SEGMENT_HEADER_BYTES + FOOTER_BYTES) as u64 || image_len > ZSEG_MAX_IMAGE_BYTES
    {
        return Err(DecodeError::new(
            16,
            "compressed segment image length",
            ZSEG_MAX_IMAGE_BYTES,
            image_len,
        ));
    }
    let count = u32_at(buf, 24);
    let want = image_len.div_ceil(u64::from(block_raw));
    if u64::from(count) != want {
        return Err(DecodeError::new(
            24,
            "compressed segment block count",
            want,
            count.into(),
        ));
    }
    Ok((image_len, block_raw, count, u32_at(buf, 28)))
}

/// Decodes and checks the whole layout of a compressed segment file held in `buf`.
pub fn decode_zseg(buf: &[u8]) -> Result<ZsegLayout, DecodeError> {
    let (image_len, block_raw, count, table_crc) = decode_zseg_header(buf)?;
    if buf.len() < ZSEG_PREFIX_BYTES {
        return Err(DecodeError::new(
            0,
            "compressed segment length",
            ZSEG_PREFIX_BYTES as u64,
            buf.len() as u64,
        ));
    }
    let table_len = count as usize * ZSEG_BLOCK_ENTRY_BYTES;
    let table_end = ZSEG_PREFIX_BYTES + table_len;
    if buf.len() < table_end {
        return Err(DecodeError::new(
            ZSEG_PREFIX_BYTES,
            "compressed segment block table length",
            table_end as u64,
            buf.len() as u64,
        ));
    }
    let table = &buf[ZSEG_PREFIX_BYTES..table_end];
    let crc = crc32fast::hash(table);
    if crc != table_crc {
        return Err(DecodeError::new(
            28,
            "compressed segment block table checksum",
            table_crc.into(),
            crc.into(),
        ));
    }
    let mut blocks = Vec::with_capacity(count as usize);
    let mut offset = table_end as u64;
    for i in 0..count as usize {
        let e = ZSEG_PREFIX_BYTES + i * ZSEG_BLOCK_ENTRY_BYTES;
        let compressed_len = u32_at(buf, e);
        let image_offset = i as u64 * u64::from(block_raw);
        let raw_len = (image_len - image_offset).min(u64::from(block_raw)) as u32;
        let end = offset + u64::from(compressed_len);
        if compressed_len == 0 || end > buf.len() as u64 {
            return Err(DecodeError::new(
                e,
                "compressed segment block extent",
                buf.len() as u64,
                end,
            ));
        }
        blocks.push(ZsegBlock {
            offset,
            compressed_len,
            compressed_crc: u32_at(buf, e + 4),
            image_offset,
            raw_len,
        });
        offset = end;
    }
    if offset != buf.len() as u64 {
        return Err(DecodeError::new(
            offset as usize,
            "compressed segment has bytes after its last block",
            offset,
            buf.len() as u64,
        ));
    }
    Ok(ZsegLayout {
        image_len,
        block_raw_bytes: block_raw,
        blocks,
    })
}

/// Decompresses block `b` of `buf` into `out` (exactly `b.raw_len` bytes), after checking its
/// CRC. Offsets in errors are file offsets.
pub fn decompress_block(
    buf: &[u8],
    b: &ZsegBlock,
    out: &mut [u8],
    dec: &mut zstd::bulk::Decompressor<'_>,
) -> Result<(), DecodeError> {
    let at = b.offset as usize;
    let bytes = &buf[at..at + b.compressed_len as usize];
    let crc = crc32fast::hash(bytes);
    if crc != b.compressed_crc {
        return Err(DecodeError::new(
            at,
            "compressed segment block checksum",
            b.compressed_crc.into(),
            crc.into(),
        ));
    }
    debug_assert_eq!(out.len(), b.raw_len as usize);
    match dec.decompress_to_buffer(bytes, out) {
        Ok(n) if n == out.len() => Ok(()),
        Ok(n) => Err(DecodeError::new(
            at,
            "compressed segment block decompresses to the wrong length",
            b.raw_len.into(),
            n as u64,
        )),
        Err(_) => Err(DecodeError::new(
            at,
            "compressed segment block does not decompress",
            b.raw_len.into(),
            0,
        )),
    }
}

/// Decompresses the whole image of the compressed segment in `buf`.
pub fn decompress_image(buf: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let layout = decode_zseg(buf)?;
    // The image grows block by block: a damaged or hostile header that claims a large image
    // costs memory only as far as its blocks really decompress.
    let mut image = Vec::with_capacity(layout.image_len.min(64 << 20) as usize);
    let mut dec = decompressor()?;
    for b in &layout.blocks {
        let at = image.len();
        debug_assert_eq!(at as u64, b.image_offset);
        image.resize(at + b.raw_len as usize, 0);
        decompress_block(buf, b, &mut image[at..], &mut dec)?;
    }
    check_image_ends(buf, &image)?;
    Ok(image)
}

/// Decompresses the image of the compressed segment in `buf`, whose checked layout is
/// `layout`, into `out`, which must be exactly `layout.image_len` bytes long, on the caller's
/// thread alone (`threads` 0 or 1) or with one more (2 or more: each takes half of the
/// blocks). Every block is written
/// straight into its place, so `out` needs no zeroing (for memory that costs nothing until
/// written, such as anonymous pages: a hostile header claiming a large image then costs no
/// more than with [`decompress_image`]). Returns the CRC-32 of the image without its last
/// [`FOOTER_BYTES`] (the segment's data, which its footer's `data_crc` covers), computed
/// block by block while each block is still in the processor's cache.
pub fn decompress_image_into(
    buf: &[u8],
    layout: &ZsegLayout,
    out: &mut [u8],
    threads: usize,
) -> Result<u32, DecodeError> {
    if out.len() as u64 != layout.image_len {
        return Err(DecodeError::new(
            0,
            "compressed segment image buffer length",
            layout.image_len,
            out.len() as u64,
        ));
    }
    let data_end = out.len() - FOOTER_BYTES;
    let blocks = &layout.blocks[..];
    let split = blocks.len() / threads.clamp(1, 2);
    let crc = if split == 0 || split == blocks.len() {
        decompress_blocks(buf, blocks, out, data_end)?
    } else {
        let at = blocks[split].image_offset as usize;
        let (head, tail) = out.split_at_mut(at);
        let (a, b) = std::thread::scope(|sc| {
            let other = sc.spawn(|| {
                decompress_blocks(buf, &blocks[split..], tail, data_end.saturating_sub(at))
            });
            let mine = decompress_blocks(buf, &blocks[..split], head, data_end);
            (mine, other.join())
        });
        let mut crc = a?;
        let b = match b {
            Ok(b) => b?,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        crc.combine(&b);
        crc
    };
    check_image_ends(buf, out)?;
    Ok(crc.finalize())
}

/// Decompresses `blocks` (a run of a layout's blocks) into `out`, which starts at the first
/// one's image offset and holds exactly them; returns the CRC state of `out[..data_end]`.
fn decompress_blocks(
    buf: &[u8],
    blocks: &[ZsegBlock],
    out: &mut [u8],
    data_end: usize,
) -> Result<crc32fast::Hasher, DecodeError> {
    let mut dec = decompressor()?;
    let mut crc = crc32fast::Hasher::new();
    let base = blocks.first().map_or(0, |b| b.image_offset as usize);
    for b in blocks {
        let at = b.image_offset as usize - base;
        let end = at + b.raw_len as usize;
        decompress_block(buf, b, &mut out[at..end], &mut dec)?;
        crc.update(&out[at..end.min(data_end.max(at))]);
    }
    Ok(crc)
}

fn decompressor() -> Result<zstd::bulk::Decompressor<'static>, DecodeError> {
    zstd::bulk::Decompressor::new().map_err(|_| DecodeError::new(0, "zstd decompressor", 0, 0))
}

/// The image's first and last 64 bytes must equal the copies of the segment header and
/// footer kept in the file's prefix.
fn check_image_ends(buf: &[u8], image: &[u8]) -> Result<(), DecodeError> {
    if image[..SEGMENT_HEADER_BYTES] != *ZsegLayout::segment_header(buf)
        || image[image.len() - FOOTER_BYTES..] != *ZsegLayout::segment_footer(buf)
    {
        return Err(DecodeError::new(
            ZSEG_HEADER_BYTES,
            "compressed segment's copies of the segment header and footer differ from the image",
            0,
            0,
        ));
    }
    Ok(())
}

/// Compresses the image of a sealed segment (the whole `.seg` file) into a compressed segment.
pub fn compress_image(image: &[u8]) -> std::io::Result<Vec<u8>> {
    assert!(image.len() >= SEGMENT_HEADER_BYTES + FOOTER_BYTES);
    assert!(image.len() as u64 <= ZSEG_MAX_IMAGE_BYTES);
    let block = ZSEG_BLOCK_RAW_BYTES as usize;
    let count = image.len().div_ceil(block);
    let mut comp = zstd::bulk::Compressor::new(ZSEG_ZSTD_LEVEL)?;
    let mut table = Vec::with_capacity(count * ZSEG_BLOCK_ENTRY_BYTES);
    let mut body = Vec::with_capacity(image.len() / 2);
    for chunk in image.chunks(block) {
        let c = comp.compress(chunk)?;
        table.extend_from_slice(&(c.len() as u32).to_le_bytes());
        table.extend_from_slice(&crc32fast::hash(&c).to_le_bytes());
        body.extend_from_slice(&c);
    }
    let mut out = Vec::with_capacity(ZSEG_PREFIX_BYTES + table.len() + body.len());
    let mut h = [0u8; ZSEG_HEADER_BYTES];
    h[0..8].copy_from_slice(&ZSEG_MAGIC);
    h[8..10].copy_from_slice(&ZSEG_VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&ZSEG_BLOCK_RAW_BYTES.to_le_bytes());
    h[16..24].copy_from_slice(&(image.len() as u64).to_le_bytes());
    h[24..28].copy_from_slice(&(count as u32).to_le_bytes());
    h[28..32].copy_from_slice(&crc32fast::hash(&table).to_le_bytes());
    let crc = crc32fast::hash(&h[0..60]);
    h[60..64].copy_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(&image[..SEGMENT_HEADER_BYTES]);
    out.extend_from_slice(&image[image.len() - FOOTER_BYTES..]);
    out.extend_from_slice(&table);
    out.extend_from_slice(&body);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> Vec<u8> {
        (0..300_000u32)
            .map(|i| (i % 251) as u8 ^ (i / 7000) as u8)
            .collect()
    }

    #[test]
    fn a_compressed_image_decompresses_to_the_same_bytes() {
        let img = image();
        let z = compress_image(&img).unwrap();
        assert!(z.len() < img.len() / 2);
        assert_eq!(decompress_image(&z).unwrap(), img);
    }

    #[test]
    fn every_flipped_byte_is_caught_before_or_by_decompression() {
        let img = image();
        let z = compress_image(&img).unwrap();
        for at in (0..z.len()).step_by(97) {
            let mut bad = z.clone();
            bad[at] ^= 0x10;
            assert!(
                decompress_image(&bad).is_err(),
                "flip at {at} went unnoticed"
            );
        }
    }

    #[test]
    fn a_truncated_file_is_an_error() {
        let z = compress_image(&image()).unwrap();
        for len in [0, 10, 63, 64, 191, 192, 200, z.len() - 1] {
            assert!(decompress_image(&z[..len]).is_err(), "length {len}");
        }
    }

    /// `decompress_image_into` with `threads`, into a fresh zeroed buffer.
    fn into(z: &[u8], threads: usize) -> Result<(Vec<u8>, u32), DecodeError> {
        let layout = decode_zseg(z)?;
        let mut out = vec![0; layout.image_len as usize];
        let crc = decompress_image_into(z, &layout, &mut out, threads)?;
        Ok((out, crc))
    }

    #[test]
    fn decompressing_into_a_buffer_gives_the_image_and_the_crc_of_its_data() {
        let block = ZSEG_BLOCK_RAW_BYTES as usize;
        // One block, one short of two, exactly two, several with a short last one; the
        // footer's bytes within the last block, across the last two, or the last block all
        // footer.
        for len in [
            200,
            block + 30,
            2 * block - 1,
            2 * block,
            5 * block + 30,
            3 * block + 64,
        ] {
            let img: Vec<u8> = image().into_iter().cycle().take(len).collect();
            let z = compress_image(&img).unwrap();
            let data_crc = crc32fast::hash(&img[..len - FOOTER_BYTES]);
            for threads in [0, 1, 2, 3] {
                let (out, crc) = into(&z, threads).unwrap();
                assert!(out == img, "length {len}, {threads} threads");
                assert_eq!(crc, data_crc, "length {len}, {threads} threads");
            }
        }
    }

    #[test]
    fn a_damaged_block_is_caught_whichever_thread_decompresses_it() {
        let z = compress_image(&image()).unwrap();
        let layout = decode_zseg(&z).unwrap();
        assert!(layout.blocks.len() >= 4);
        for b in [layout.blocks[0], layout.blocks[layout.blocks.len() - 1]] {
            for at in [b.offset, b.offset + u64::from(b.compressed_len) - 1] {
                let mut bad = z.clone();
                bad[at as usize] ^= 0x01;
                for threads in [1, 2] {
                    let e = into(&bad, threads).unwrap_err();
                    assert_eq!(e.what, "compressed segment block checksum", "{threads}");
                }
            }
        }
    }

    #[test]
    fn a_buffer_of_another_length_is_refused() {
        let z = compress_image(&image()).unwrap();
        let layout = decode_zseg(&z).unwrap();
        for len in [
            0,
            layout.image_len as usize - 1,
            layout.image_len as usize + 1,
        ] {
            let mut out = vec![0; len];
            let e = decompress_image_into(&z, &layout, &mut out, 2).unwrap_err();
            assert_eq!(e.what, "compressed segment image buffer length");
        }
    }

    #[test]
    fn file_names_round_trip() {
        assert_eq!(parse_zseg_file_name(&zseg_file_name(42)), Some(42));
        assert_eq!(parse_zseg_file_name("00000000000000000042.seg"), None);
    }
}
