//! Walking the frames of a segment's bytes: used by recovery, index rebuilds and verify.

use crate::wire::DecodeError;
use crate::wire::frame::{FRAME_MAGIC, FrameHeader, check_frame, frame_body};
use crate::wire::record::{RecordView, Records};

/// Where a scan stopped. The error's `at` is relative to the scanned buffer.
#[derive(Debug)]
pub struct ScanEnd {
    /// File offset just after the last good frame.
    pub good_end: u64,
    /// Position after the last good frame's last event.
    pub next_position: u64,
    /// Header checksum of the last good frame, if any frame was good.
    pub last_header_crc: Option<u32>,
    /// The problem that stopped the scan before the end of the buffer, if any.
    pub error: Option<DecodeError>,
}

/// Walks the frames of `buf[start..]`; `base` is the file offset of `buf[0]`. Every frame is
/// fully checked and its first position must be `next_position`, then the following one. For
/// every good frame `on_frame(file_offset, header, records)` is called with its decoded records
/// and their positions; if it returns an error (e.g. a version out of order), the scan stops at
/// that frame as at a damaged one. Offsets in the result are file offsets.
pub fn scan_frames<'a>(
    buf: &'a [u8],
    base: u64,
    start: usize,
    mut next_position: u64,
    mut on_frame: impl FnMut(u64, &FrameHeader, &[(u64, RecordView<'a>)]) -> Result<(), &'static str>,
) -> ScanEnd {
    let mut at = start;
    let mut last_header_crc = None;
    let mut records: Vec<(u64, RecordView<'a>)> = Vec::new();
    let stop = |at: usize, next_position, last_header_crc, e: DecodeError| ScanEnd {
        good_end: base + at as u64,
        next_position,
        last_header_crc,
        error: Some(e),
    };
    while at < buf.len() {
        let h = match check_frame(&buf[at..]) {
            Ok(h) => h,
            Err(e) => return stop(at, next_position, last_header_crc, shift(e, at)),
        };
        if h.first_position != next_position {
            let e = DecodeError::new(
                at + 16,
                "frame first position is not the next position",
                next_position,
                h.first_position,
            );
            return stop(at, next_position, last_header_crc, e);
        }
        let body = frame_body(&buf[at..], &h);
        let body_at = at + crate::wire::frame::FRAME_HEADER_BYTES;
        records.clear();
        for (pos, r) in (h.first_position..).zip(Records::new(body, h.count)) {
            match r {
                Ok((_, rec)) => records.push((pos, rec)),
                Err(e) => return stop(at, next_position, last_header_crc, shift(e, body_at)),
            }
        }
        if let Err(what) = on_frame(base + at as u64, &h, &records) {
            let e = DecodeError::new(at, what, 0, 0);
            return stop(at, next_position, last_header_crc, e);
        }
        last_header_crc = Some(h.header_crc);
        next_position = h.end_position();
        at += h.frame_len();
    }
    ScanEnd {
        good_end: base + at as u64,
        next_position,
        last_header_crc,
        error: None,
    }
}

fn shift(mut e: DecodeError, by: usize) -> DecodeError {
    e.at += by;
    e
}

/// Whether damage at `from` in `buf`, where the log should go on at `next_position`, hit data
/// that was durable. Returns the offset of the first complete, checksum-valid later frame
/// (positions at or after `next_position`) that was written when the damaged position was
/// already durable (its `durable_before` is past `next_position`); `None` means the damage lies
/// in writes that were never known durable: a torn tail, to be cut.
///
/// A power cut may keep some unsynced writes and lose others, so a valid frame after damage is
/// not proof of corruption by itself; a frame that says the damaged position was durable when
/// it was written is. An older frame (a copy inside a torn append's payload, say) never counts.
pub fn durable_frame_after(buf: &[u8], from: usize, next_position: u64) -> Option<usize> {
    let mut at = from + 1;
    while at + FRAME_MAGIC.len() <= buf.len() {
        // Zeros (a durable writer writes up to 1 MiB of them ahead of its frames) are passed a
        // block at a time: no magic starts in a block of zeros.
        while buf
            .get(at..at + 64)
            .is_some_and(|b| b.chunks_exact(8).all(|w| w == [0; 8]))
        {
            at += 64;
        }
        let i = buf[at..].windows(4).position(|w| w == FRAME_MAGIC)?;
        let cand = at + i;
        if let Ok(h) = check_frame(&buf[cand..])
            && h.first_position >= next_position
            && h.durable_before() > next_position
        {
            return Some(cand);
        }
        at = cand + 1;
    }
    None
}

/// Builds the index file of a sealed segment, with its name tables, from its frame bytes
/// `data` (header and frames, without the footer). On damage, returns the offset where the valid frames end and the
/// problem (offset relative to `data`).
pub fn build_index(
    data: &[u8],
    first_position: u64,
) -> Result<(Vec<u8>, u64, u32), (u64, DecodeError)> {
    use crate::wire::bytes::stream_hash;
    use crate::wire::index_file::{FrameEntry, IdEntry, StreamEntry, encode_index};
    use crate::wire::index_names::{EventAt, NamesBuilder};
    let mut frames = Vec::new();
    let mut names = NamesBuilder::new();
    let mut entries = Vec::new();
    let mut ids = Vec::new();
    let end = scan_frames(
        data,
        0,
        crate::wire::segment::SEGMENT_HEADER_BYTES,
        first_position,
        |off, h, recs| {
            frames.push(FrameEntry {
                rel_first: (h.first_position - first_position) as u32,
                offset: off as u32,
            });
            for (pos, r) in recs {
                let rel_pos = (pos - first_position) as u32;
                entries.push(StreamEntry {
                    hash: stream_hash(r.stream),
                    version: r.version,
                    rel_pos,
                    frame_offset: off as u32,
                });
                ids.push(IdEntry {
                    id: *r.id.as_bytes(),
                    rel_pos,
                });
                let at = EventAt {
                    rel_pos,
                    frame_offset: off as u32,
                };
                names.push(r.stream, r.event_type, at);
            }
            Ok(())
        },
    );
    if let Some(e) = end.error {
        return Err((end.good_end, e));
    }
    entries.sort_unstable();
    ids.sort_unstable();
    let crc = crc32fast::hash(data);
    let bytes = encode_index(
        first_position,
        data.len() as u32,
        crc,
        &frames,
        &entries,
        &ids,
        Some(&names),
    );
    Ok((bytes, end.next_position, frames.len() as u32))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventData;
    use crate::wire::frame::{begin_frame, finish_frame};
    use crate::wire::record::encode_record;

    /// A one-event frame at `position` that says everything before `durable_next` was durable.
    fn frame(position: u64, durable_next: u64) -> Vec<u8> {
        let mut out = Vec::new();
        let start = begin_frame(&mut out);
        let e = EventData::new("T", b"{}".to_vec());
        encode_record(&mut out, "s", 0, 1, &e);
        finish_frame(&mut out, start, position, 1, durable_next);
        out
    }

    #[test]
    fn a_durable_frame_after_any_run_of_zeros_is_found_at_its_offset() {
        for zeros in [0usize, 1, 3, 63, 64, 65, 127, 128, 129, 4096, 100_003] {
            for lead in [0usize, 1, 7, 40] {
                // Damage at `lead`, then zeros, then a frame that says position 5 was durable.
                let mut buf = vec![0xEE; lead + 1];
                buf.extend(std::iter::repeat_n(0, zeros));
                let at = buf.len();
                buf.extend(frame(9, 7));
                assert_eq!(
                    durable_frame_after(&buf, lead, 5),
                    Some(at),
                    "{zeros} zeros"
                );
                // A frame written while position 5 was not yet durable: a torn tail.
                buf.truncate(at);
                buf.extend(frame(9, 5));
                assert_eq!(durable_frame_after(&buf, lead, 5), None, "{zeros} zeros");
                // Only zeros after the damage.
                buf.truncate(at);
                assert_eq!(durable_frame_after(&buf, lead, 5), None);
            }
        }
    }
}
