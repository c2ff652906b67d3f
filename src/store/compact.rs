//! Compaction: sealed segments are rewritten without the events that retention rules and
//! deletions hide (`format/FORMAT.md` §23).
//!
//! A dropped event leaves a placeholder record (record flag `FLAG_DROPPED`: version,
//! timestamp, id and stream; no type, metadata or payload) in a frame of version
//! `FRAME_VERSION_COMPACTED`, so positions, versions, frame boundaries and the idempotency
//! window stay exactly as they were and every other structure keeps its meaning. Frames without
//! a newly dropped event are copied byte for byte. The segment keeps its form: a `.seg` file is
//! rewritten as a `.seg` file, a `.zseg` file as a `.zseg` file.
//!
//! Replacing a segment, crash-safely and while reads and appends go on:
//! 1. build the new image and its index; check both (the index from the new frames, and for a
//!    compressed segment that the compressed file decompresses to the image);
//! 2. keep the old bytes for this process's readers (map or pinned image);
//! 3. write the new segment file (temp, fsync, rename over the old one, fsync directory);
//! 4. write its index the same way;
//! 5. swap the segment in the store's list.
//!
//! A crash before 3's rename leaves the old files (and a `.tmp` that open removes). A crash
//! between 3 and 4 leaves the new segment with the old index, whose covered checksum no longer
//! matches the footer: open rebuilds the index from the segment. Events dropped are hidden by
//! the settings file already, so no crash can make a read show a different set of events.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::error::{Error, Result};
use crate::io::write_file_atomic;
use crate::segment::{SealedSegment, build_index};
use crate::store::{Inner, Store, now_us};
use crate::wire::bytes::u32_at;
use crate::wire::frame::{
    FRAME_HEADER_BYTES, FRAME_VERSION_COMPACTED, begin_frame, check_frame, finish_frame_version,
    frame_body,
};
use crate::wire::record::{Records, encode_dropped_record};
use crate::wire::segment::{SEGMENT_HEADER_BYTES, SegmentFooter, index_file_name};
use crate::wire::settings::StreamSettings;

/// What [`Store::compact`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompactReport {
    /// Sealed segments examined.
    pub segments_examined: u64,
    /// Sealed segments rewritten (those holding at least one event to drop).
    pub segments_rewritten: u64,
    /// Events dropped.
    pub events_dropped: u64,
    /// Size of the rewritten segment files before, in bytes.
    pub bytes_before: u64,
    /// Their size after, in bytes.
    pub bytes_after: u64,
}

impl CompactReport {
    /// Bytes reclaimed on disk.
    pub fn bytes_reclaimed(&self) -> u64 {
        self.bytes_before.saturating_sub(self.bytes_after)
    }
}

type Settings = crate::index::FastMap<Arc<str>, StreamSettings>;

impl Inner {
    pub(crate) fn compact(&self) -> Result<CompactReport> {
        if self.read_only {
            return Err(Error::ReadOnly);
        }
        let _one_at_a_time = self.compress_lock.lock();
        let (segments, settings) = {
            let st = self.state.read();
            (st.sealed.clone(), st.settings.clone())
        };
        let mut rep = CompactReport::default();
        let now = now_us();
        for seg in segments {
            if self.closed.load(Ordering::Acquire) {
                return Err(Error::Closed);
            }
            rep.segments_examined += 1;
            if settings.is_empty() {
                continue;
            }
            let Some(new) = self.rewrite_image(&seg, &settings, now)? else {
                continue;
            };
            let (before, after) = self.replace_segment(&seg, new.image, new.footer)?;
            rep.segments_rewritten += 1;
            rep.events_dropped += new.dropped;
            rep.bytes_before += before;
            rep.bytes_after += after;
        }
        Ok(rep)
    }

    /// The image of `seg` without the events hidden now, or `None` when it hides none.
    fn rewrite_image(
        &self,
        seg: &SealedSegment,
        settings: &Settings,
        now: u64,
    ) -> Result<Option<Rewritten>> {
        let data = seg.data()?;
        let corrupted = |at: usize, e| Error::corrupted(&seg.path, at as u64, e);
        // Counted from the last durable version: what compaction drops is gone for good, so
        // not for a newer event a crash could still take back.
        let durable = self.durable_next.load(std::sync::atomic::Ordering::Acquire);
        let hidden = |stream: &str, version: u64, ts: u64| {
            settings.get(stream).is_some_and(|s| {
                let last = self.state.read().last_version_before(stream, durable);
                !s.visible(version, ts, last.unwrap_or(0), now)
            })
        };
        let mut out: Vec<u8> = Vec::new();
        let mut dropped = 0u64;
        let mut at = SEGMENT_HEADER_BYTES;
        while at < data.len() {
            let h = check_frame(&data[at..]).map_err(|e| corrupted(at, e))?;
            let frame = &data[at..at + h.frame_len()];
            let body = frame_body(frame, &h);
            let mut records = Vec::with_capacity(h.count as usize);
            for r in Records::new(body, h.count) {
                let (off, r) = r.map_err(|e| corrupted(at + FRAME_HEADER_BYTES, e))?;
                let drop = !r.dropped && hidden(r.stream, r.version, r.timestamp_us);
                records.push((off, r, drop));
            }
            if !records.iter().any(|(_, _, d)| *d) {
                if !out.is_empty() {
                    out.extend_from_slice(frame);
                }
                at += h.frame_len();
                continue;
            }
            if out.is_empty() {
                out.extend_from_slice(&data[..at]);
            }
            let start = begin_frame(&mut out);
            for (off, r, drop) in &records {
                if *drop {
                    encode_dropped_record(&mut out, r);
                    dropped += 1;
                } else {
                    let len = 4 + u32_at(body, *off) as usize;
                    out.extend_from_slice(&body[*off..off + len]);
                }
            }
            finish_frame_version(
                &mut out,
                start,
                h.first_position,
                h.count,
                h.end_position(),
                // A frame of several streams or with opaque metadata bytes keeps its version
                // (which allows placeholders too); any other becomes a compacted frame.
                h.version.max(FRAME_VERSION_COMPACTED),
            );
            at += h.frame_len();
        }
        if dropped == 0 {
            return Ok(None);
        }
        let footer = SegmentFooter {
            data_end: out.len() as u64,
            data_crc: crc32fast::hash(&out),
            ..seg.footer
        };
        out.extend_from_slice(&footer.encode());
        Ok(Some(Rewritten {
            image: out,
            footer,
            dropped,
        }))
    }

    /// Replaces the files of `seg` by `image` (in the segment's form) and its index, and swaps
    /// the segment in the store's list. Returns the file sizes before and after.
    fn replace_segment(
        &self,
        seg: &Arc<SealedSegment>,
        image: Vec<u8>,
        footer: SegmentFooter,
    ) -> Result<(u64, u64)> {
        let vfs = &*self.vfs;
        let first = seg.header.first_position;
        let data_end = footer.data_end as usize;
        let (index, next, frames) =
            build_index(&image[..data_end], first).map_err(|(at, e)| Error::Corrupted {
                file: seg.path.clone(),
                offset: at,
                what: e.what,
                expected: e.expected,
                found: e.found,
            })?;
        if next != first + footer.event_count || u64::from(frames) != footer.frame_count {
            return Err(Error::Corrupted {
                file: seg.path.clone(),
                offset: 0,
                what: "compacted segment does not hold the events of the segment; not replaced",
                expected: footer.event_count,
                found: next - first,
            });
        }
        let compressed = seg.is_compressed();
        let bytes = if compressed {
            let z = crate::wire::zseg::compress_image(&image)
                .map_err(Error::io("compress", &seg.path))?;
            if crate::wire::zseg::decompress_image(&z).ok().as_deref() != Some(&image[..]) {
                return Err(Error::Corrupted {
                    file: seg.path.clone(),
                    offset: 0,
                    what: "compressed segment did not decompress to the segment; not replaced",
                    expected: image.len() as u64,
                    found: 0,
                });
            }
            z
        } else {
            image
        };
        let before = vfs
            .open(&seg.path, false)
            .and_then(|f| f.len())
            .map_err(Error::io("stat", &seg.path))?;
        seg.pin_map()?;
        let name = seg
            .path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Error::InvalidArgument("segment file name".into()))?
            .to_owned();
        // The segment's own directory: the store's, or the archive.
        let seg_dir = seg.path.parent().unwrap_or(&self.dir).to_path_buf();
        write_file_atomic(vfs, &seg_dir, &name, &bytes)?;
        write_file_atomic(vfs, &seg_dir, &index_file_name(first), &index)?;
        self.swap_sealed(
            &seg.path,
            seg.header,
            footer,
            &seg_dir.join(index_file_name(first)),
        )?;
        Ok((before, bytes.len() as u64))
    }
}

struct Rewritten {
    image: Vec<u8>,
    footer: SegmentFooter,
    dropped: u64,
}

impl Store {
    /// Rewrites the sealed segments that hold events hidden by retention rules or deletions
    /// ([`Store::set_retention`], [`Store::truncate_before`], [`Store::delete_stream`],
    /// [`Store::tombstone_stream`]) without those events, and returns what it did. Surviving
    /// events keep their positions and versions; reads return exactly what they returned
    /// before. Reads and appends go on meanwhile; a crash at any step leaves a valid store.
    /// Events in the active segment are dropped once it is sealed and compacted.
    ///
    /// Errors: [`Error::ReadOnly`], [`Error::Closed`], [`Error::Io`], and
    /// [`Error::Corrupted`] for a segment that does not decode (it is left as it is).
    pub fn compact(&self) -> Result<CompactReport> {
        self.inner.compact()
    }
}
