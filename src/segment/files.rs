//! Segment files as the store reads them: sealed (memory-mapped) and active (read with pread).

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use crate::error::{Error, Result};
use crate::io::{FileBytes, Vfs, VfsFile};
use crate::wire::frame::{FRAME_HEADER_BYTES, FrameHeader, check_frame, check_frame_with};
use crate::wire::index_file::{IndexHeader, IndexView, check_index_body, check_index_tables};
use crate::wire::segment::{SegmentFooter, SegmentHeader};

/// The bytes of an immutable file (a memory map with the real file system).
pub fn map_file(vfs: &dyn Vfs, path: &Path) -> Result<FileBytes> {
    vfs.map(path).map_err(Error::io("map", path))
}

/// Maps of sealed segment and index files kept alive, oldest dropped first once there are more
/// than [`map_cache_maps`] (process-wide). A map nobody holds is unmapped, and mapped again on
/// its next use, so a store of any number of segments stays under the kernel's limit on maps
/// per process (`vm.max_map_count`, 65,530 by default).
static MAP_CACHE: parking_lot::Mutex<std::collections::VecDeque<Arc<FileBytes>>> =
    parking_lot::Mutex::new(std::collections::VecDeque::new());
static MAP_CACHE_LIMIT: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(DEFAULT_MAP_CACHE_MAPS);

/// Default number of file maps kept alive: 8,192.
pub const DEFAULT_MAP_CACHE_MAPS: usize = 8192;

/// How many file maps of sealed segments and their indexes are kept alive (process-wide).
pub fn map_cache_maps() -> usize {
    MAP_CACHE_LIMIT.load(std::sync::atomic::Ordering::Relaxed)
}

/// Sets how many file maps of sealed segments and their indexes are kept alive (0: none; each
/// use maps the file again).
pub fn set_map_cache_maps(maps: usize) {
    MAP_CACHE_LIMIT.store(maps, std::sync::atomic::Ordering::Relaxed);
    let mut c = MAP_CACHE.lock();
    while c.len() > maps {
        c.pop_front();
    }
}

/// A file's bytes, mapped on demand, kept alive by the map cache or by their readers, and
/// mapped again after the cache let them go.
struct LazyMap {
    slot: parking_lot::Mutex<std::sync::Weak<FileBytes>>,
    /// Bytes held for as long as this lives: pinned before the file is replaced or removed,
    /// and bytes that are not a file's (an index rebuilt in memory).
    pinned: OnceLock<Arc<FileBytes>>,
}

impl LazyMap {
    fn new() -> Self {
        LazyMap {
            slot: parking_lot::Mutex::new(std::sync::Weak::new()),
            pinned: OnceLock::new(),
        }
    }

    fn held(&self) -> Option<Arc<FileBytes>> {
        self.pinned
            .get()
            .cloned()
            .or_else(|| self.slot.lock().upgrade())
    }

    /// The bytes, loading (and checking) them with `load` when no one holds them.
    fn get(&self, load: impl FnOnce() -> Result<FileBytes>) -> Result<Arc<FileBytes>> {
        if let Some(p) = self.pinned.get() {
            return Ok(p.clone());
        }
        let mut slot = self.slot.lock();
        if let Some(m) = slot.upgrade() {
            return Ok(m);
        }
        let m = Arc::new(load()?);
        *slot = Arc::downgrade(&m);
        drop(slot);
        let limit = map_cache_maps();
        if limit > 0 {
            let mut c = MAP_CACHE.lock();
            c.push_back(m.clone());
            while c.len() > limit {
                c.pop_front();
            }
        }
        Ok(m)
    }

    fn pin(&self, m: Arc<FileBytes>) {
        let _ = self.pinned.set(m);
    }
}

/// The index of a sealed segment. Its header is checked on open; its body checksum is checked
/// the first time it is used (reading every index on every open would make open cost grow with
/// the store). An index whose body fails the check is replaced by one rebuilt in memory from
/// the segment, so a damaged cache never makes data unreadable; verify reports it and a
/// repairing open rewrites it. The file is mapped on demand (see [`map_cache_maps`]).
pub struct SegmentIndex {
    path: PathBuf,
    header: IndexHeader,
    vfs: Arc<dyn Vfs>,
    map: LazyMap,
    /// `None` once the body checked out; `Some(bytes)` for an index rebuilt in memory.
    checked: OnceLock<Result<Option<Vec<u8>>, Error>>,
}

impl SegmentIndex {
    /// Wraps the bytes of the index file at `path` (whose header must decode). Bytes that are
    /// not the file's (an index rebuilt in memory) are held for as long as this lives.
    pub fn new(vfs: Arc<dyn Vfs>, path: PathBuf, bytes: FileBytes) -> Result<Self> {
        let header = IndexHeader::decode(&bytes).map_err(|e| Error::corrupted(&path, 0, e))?;
        let ix = SegmentIndex {
            path,
            header,
            vfs,
            map: LazyMap::new(),
            checked: OnceLock::new(),
        };
        match bytes {
            FileBytes::Owned(_) => ix.map.pin(Arc::new(bytes)),
            FileBytes::Mapped(_) => {
                ix.map.get(|| Ok(bytes))?;
            }
        }
        Ok(ix)
    }

    /// The header.
    pub fn header(&self) -> &IndexHeader {
        &self.header
    }

    /// The index file path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's bytes, mapped again if the map cache let them go; a file whose header is no
    /// longer the one read at open (replaced by compaction since) is an error.
    fn bytes(&self) -> Result<Arc<FileBytes>> {
        self.map.get(|| {
            let m = map_file(&*self.vfs, &self.path)?;
            if IndexHeader::decode(&m).ok() != Some(self.header) {
                return Err(Error::Corrupted {
                    file: self.path.clone(),
                    offset: 0,
                    what: "index file changed since the store was opened \
                           (rewritten by compaction: reopen the store)",
                    expected: 0,
                    found: 0,
                });
            }
            Ok(m)
        })
    }
}

/// An index as a reader holds it: the file's bytes or an index rebuilt in memory.
pub enum IndexBytes<'a> {
    /// The index file.
    File(Arc<FileBytes>, IndexHeader),
    /// Rebuilt from the segment because the file was damaged.
    Rebuilt(&'a [u8], IndexHeader),
}

impl IndexBytes<'_> {
    /// The index for lookups.
    pub fn view(&self) -> IndexView<'_> {
        match self {
            IndexBytes::File(b, h) => IndexView::with_header(b, *h),
            IndexBytes::Rebuilt(b, h) => IndexView::with_header(b, *h),
        }
    }
}

/// Decompressed images of compressed segments kept in memory, oldest dropped first once they
/// hold more than [`image_cache_bytes`] (process-wide). A reader that still holds an image keeps
/// it alive; the cache only decides which ones stay after their readers are done.
struct ImageCache {
    held: std::collections::VecDeque<Arc<Image>>,
    bytes: usize,
}

static IMAGE_CACHE: parking_lot::Mutex<ImageCache> = parking_lot::Mutex::new(ImageCache {
    held: std::collections::VecDeque::new(),
    bytes: 0,
});
static IMAGE_CACHE_LIMIT: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(DEFAULT_IMAGE_CACHE_BYTES);

/// Default budget of the decompressed-image cache: 512 MiB.
pub const DEFAULT_IMAGE_CACHE_BYTES: usize = 512 << 20;

static READ_AHEAD_THREADS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Threads this process started to read and decompress compressed segments ahead of forward
/// reads (`Store::replay`, `Store::read_all`), since it started: a counter, for monitoring.
pub fn read_ahead_threads() -> u64 {
    READ_AHEAD_THREADS.load(std::sync::atomic::Ordering::Relaxed)
}

static INDEX_CHECKS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Index files of sealed segments this process has read and checked whole (body checksum and
/// tables, on a segment's first index lookup), since it started: a counter, for monitoring.
pub fn index_checks() -> u64 {
    INDEX_CHECKS.load(std::sync::atomic::Ordering::Relaxed)
}

/// Counts a thread started by a read-ahead.
pub(crate) fn count_read_ahead_thread() {
    READ_AHEAD_THREADS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// The budget of the process-wide cache of decompressed segment images, in bytes.
pub fn image_cache_bytes() -> usize {
    IMAGE_CACHE_LIMIT.load(std::sync::atomic::Ordering::Relaxed)
}

/// Sets the budget of the process-wide cache of decompressed segment images (0 keeps none:
/// each read of a compressed segment then decompresses it again).
pub fn set_image_cache_bytes(bytes: usize) {
    IMAGE_CACHE_LIMIT.store(bytes, std::sync::atomic::Ordering::Relaxed);
    trim_image_cache(&mut IMAGE_CACHE.lock(), bytes);
}

fn trim_image_cache(c: &mut ImageCache, limit: usize) {
    while c.bytes > limit {
        let Some(old) = c.held.pop_front() else { break };
        c.bytes -= old.len();
    }
}

/// The bytes of a sealed segment as a reader holds them: a map of the `.seg` file, or the
/// decompressed image of its `.zseg` file. Cloning it clones an `Arc`.
#[derive(Clone)]
pub enum SegBytes {
    /// Mapped `.seg` bytes and the length of their data (without the footer).
    Mapped(Arc<FileBytes>, usize),
    /// A decompressed image and the length of its data (without the footer).
    Image(Arc<Image>, usize),
}

impl SegBytes {
    /// True when these bytes were checked as a whole against the footer's `data_crc` when they
    /// were decompressed into memory, so frame checksums (header and body) need not be checked
    /// again.
    /// (Mapped bytes come from the disk on every page fault and are always checked.)
    pub fn checked_whole(&self) -> bool {
        matches!(self, SegBytes::Image(..))
    }
}

impl std::ops::Deref for SegBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            SegBytes::Mapped(m, end) => &m[..*end],
            SegBytes::Image(v, end) => &v[..*end],
        }
    }
}

/// Reads and decompresses the compressed segment at `path` into the image of its `.seg` file.
pub fn read_zseg_image(vfs: &dyn Vfs, path: &Path) -> Result<Vec<u8>> {
    // One read of the whole file: sequential I/O, where faulting in a map would go page by
    // page (with read-ahead) when the file is not cached.
    let bytes = crate::io::read_file(vfs, path)?;
    crate::wire::zseg::decompress_image(&bytes).map_err(|e| Error::corrupted(path, 0, e))
}

/// Threads that decompress one segment's image (the reader's and one more, each taking half
/// of the blocks): a reader that meets a compressed segment not in memory waits for half as
/// long, with both processors of a small machine busy. (Forward reads also read ahead, see
/// `store::read_ahead`.)
const DECOMPRESS_THREADS: usize = 2;

/// The decompressed image of a compressed segment, as the image cache and readers hold it:
/// in anonymous memory recycled from earlier images or populated at once (see
/// [`crate::io::reusable_pages`]), so that decompressing a 64 MiB segment does not spend a
/// third of its time in page faults.
pub struct Image {
    map: crate::io::PageBuf,
}

impl std::ops::Deref for Image {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.map
    }
}

impl Image {
    /// Reads and decompresses the compressed segment at `path` (what [`read_zseg_image`]
    /// returns, in such memory; the compressed bytes are read into such memory too) with
    /// `threads` threads, and returns it with the CRC-32 of its data (all but the footer).
    pub fn read_zseg(vfs: &dyn Vfs, path: &Path, threads: usize) -> Result<(Image, u32)> {
        let f = vfs.open(path, false).map_err(Error::io("open", path))?;
        let len = f.len().map_err(Error::io("stat", path))? as usize;
        let mut file = crate::io::reusable_pages(len).map_err(Error::io("allocate", path))?;
        let got = crate::io::read_into_slice(&*f, path, 0, &mut file[..len])?;
        let file = &file[..got];
        let corrupted = |e| Error::corrupted(path, 0, e);
        let layout = crate::wire::zseg::decode_zseg(file).map_err(corrupted)?;
        let len = layout.image_len as usize;
        // Every byte of it is written: the blocks tile the image, and each must decompress
        // to exactly its length.
        let mut map = crate::io::reusable_pages(len).map_err(Error::io("allocate", path))?;
        let data_crc = crate::wire::zseg::decompress_image_into(file, &layout, &mut map, threads)
            .map_err(corrupted)?;
        Ok((Image { map }, data_crc))
    }
}

/// A sealed segment: immutable, with its footer and index. Its bytes are mapped on first use,
/// so opening a store costs no map per segment. It is stored as a `.seg` file or, once
/// compressed, as a `.zseg` file holding the same bytes; a segment whose `.seg` file went away
/// (compressed meanwhile, by this process or by the writer of another) is read from its `.zseg`.
pub struct SealedSegment {
    /// Segment file path (the `.seg` or the `.zseg` file it was found as).
    pub path: PathBuf,
    /// Decoded header.
    pub header: SegmentHeader,
    /// Decoded footer.
    pub footer: SegmentFooter,
    /// Its index.
    pub index: SegmentIndex,
    vfs: Arc<dyn Vfs>,
    map: LazyMap,
    compressed: std::sync::atomic::AtomicBool,
    image: parking_lot::Mutex<std::sync::Weak<Image>>,
    /// An image held for as long as this segment lives (see [`SealedSegment::pin_map`]).
    pinned: OnceLock<Arc<Image>>,
}

impl SealedSegment {
    /// A sealed segment whose header and footer were checked; `map`, if given, holds its bytes.
    pub fn new(
        vfs: Arc<dyn Vfs>,
        path: PathBuf,
        header: SegmentHeader,
        footer: SegmentFooter,
        index: SegmentIndex,
    ) -> Self {
        let compressed = path.extension().is_some_and(|e| e == "zseg");
        SealedSegment {
            path,
            header,
            footer,
            index,
            vfs,
            map: LazyMap::new(),
            compressed: compressed.into(),
            image: parking_lot::Mutex::new(std::sync::Weak::new()),
            pinned: OnceLock::new(),
        }
    }

    /// True when reading the segment's bytes costs no decompression: it is mapped (or can be),
    /// or its decompressed image is in memory. Never waits: an image whose lock is held (most
    /// likely by a reader decompressing it, which holds the lock throughout) is not at hand.
    pub fn bytes_at_hand(&self) -> bool {
        !self.is_compressed() || self.pinned.get().is_some() || self.image_in_memory() == Some(true)
    }

    /// [`SealedSegment::bytes_at_hand`], or its image's lock is held: being decompressed.
    pub fn bytes_at_hand_or_coming(&self) -> bool {
        !self.is_compressed()
            || self.pinned.get().is_some()
            || self.image_in_memory() != Some(false)
    }

    /// Whether the decompressed image is in memory, asked without waiting: `None` while its
    /// lock is held.
    fn image_in_memory(&self) -> Option<bool> {
        self.image.try_lock().map(|w| w.strong_count() > 0)
    }

    /// True when the segment is read from its compressed (`.zseg`) file.
    pub fn is_compressed(&self) -> bool {
        self.compressed.load(std::sync::atomic::Ordering::Relaxed) && self.map.held().is_none()
    }

    fn zseg_path(&self) -> PathBuf {
        self.path.with_file_name(crate::wire::zseg::zseg_file_name(
            self.header.first_position,
        ))
    }

    /// Maps the `.seg` file now (or decompresses the `.zseg` file and keeps its image), so that
    /// readers holding this segment keep its bytes after its file is replaced (by its
    /// compressed form, or by compaction).
    pub fn pin_map(&self) -> Result<()> {
        match self.data()? {
            SegBytes::Image(img, _) => {
                let _ = self.pinned.set(img);
            }
            SegBytes::Mapped(m, _) => self.map.pin(m),
        }
        if let Ok(IndexBytes::File(b, _)) = self.index() {
            self.index.map.pin(b);
        }
        Ok(())
    }

    /// The frame bytes: header and frames, without the footer (mapped on first use; for a
    /// compressed segment, decompressed on first use and kept in the image cache).
    pub fn data(&self) -> Result<SegBytes> {
        use std::sync::atomic::Ordering::Relaxed;
        let end = self.footer.data_end;
        if let Some(m) = self.map.held() {
            return Ok(SegBytes::Mapped(m, end as usize));
        }
        if let Some(img) = self.pinned.get() {
            return Ok(SegBytes::Image(img.clone(), end as usize));
        }
        if !self.compressed.load(Relaxed) {
            let mapped = self.map.get(|| {
                let m = map_file(&*self.vfs, &self.path)?;
                if (m.len() as u64) < end {
                    return Err(Error::Corrupted {
                        file: self.path.clone(),
                        offset: m.len() as u64,
                        what: "sealed segment is shorter than its footer says",
                        expected: end,
                        found: m.len() as u64,
                    });
                }
                if m[end as usize..] != self.footer.encode() {
                    return Err(Error::Corrupted {
                        file: self.path.clone(),
                        offset: end,
                        what: "sealed segment's footer changed since the store was opened \
                               (rewritten by compaction: reopen the store)",
                        expected: end,
                        found: m.len() as u64,
                    });
                }
                Ok(m)
            });
            match mapped {
                Ok(m) => return Ok(SegBytes::Mapped(m, end as usize)),
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                    self.compressed.store(true, Relaxed);
                }
                Err(e) => return Err(e),
            }
        }
        let mut slot = self.image.lock();
        if let Some(img) = slot.upgrade() {
            return Ok(SegBytes::Image(img, end as usize));
        }
        let path = self.zseg_path();
        let (img, crc) = Image::read_zseg(&*self.vfs, &path, DECOMPRESS_THREADS)?;
        if img.len() as u64 != end + crate::wire::segment::FOOTER_BYTES as u64
            || img[end as usize..] != self.footer.encode()
        {
            return Err(Error::Corrupted {
                file: path,
                offset: 0,
                what: "compressed segment does not hold the segment its footer names \
                       (rewritten by compaction since the store was opened: reopen it)",
                expected: end,
                found: img.len() as u64,
            });
        }
        // The whole data is checked against the footer once, here: readers of the image then
        // skip the per-frame checksums (see `SegBytes::checked_whole`).
        if crc != self.footer.data_crc {
            return Err(Error::Corrupted {
                file: path,
                offset: end + 40,
                what: "compressed segment's data does not match its footer checksum",
                expected: self.footer.data_crc.into(),
                found: crc.into(),
            });
        }
        let img = Arc::new(img);
        *slot = Arc::downgrade(&img);
        drop(slot);
        let limit = image_cache_bytes();
        if img.len() <= limit {
            let mut c = IMAGE_CACHE.lock();
            c.bytes += img.len();
            c.held.push_back(img.clone());
            trim_image_cache(&mut c, limit);
        }
        Ok(SegBytes::Image(img, end as usize))
    }

    /// The segment's index for lookups. The first call checks the index body; if it is damaged,
    /// the index is rebuilt in memory from the segment's frames.
    pub fn index(&self) -> Result<IndexBytes<'_>> {
        let ix = &self.index;
        let checked = match ix.checked.get() {
            Some(c) => c,
            None => {
                // Only what the bytes say is kept: an error reading or mapping them (a map
                // limit, a file replaced meanwhile) is returned, and the next use tries again.
                let bytes = ix.bytes()?;
                INDEX_CHECKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let c = if check_index_body(&bytes, &ix.header).is_ok()
                    && check_index_tables(&bytes, &ix.header).is_ok()
                {
                    Ok(None)
                } else {
                    let first = self.header.first_position;
                    match crate::segment::build_index(&self.data()?, first) {
                        Ok((bytes, _, _)) => Ok(Some(bytes)),
                        Err((_, e)) => Err(Error::corrupted(&self.path, 0, e)),
                    }
                };
                ix.checked.get_or_init(|| c)
            }
        };
        match checked {
            Ok(None) => Ok(IndexBytes::File(ix.bytes()?, ix.header)),
            Ok(Some(rebuilt)) => {
                let h =
                    IndexHeader::decode(rebuilt).map_err(|e| Error::corrupted(&ix.path, 0, e))?;
                Ok(IndexBytes::Rebuilt(rebuilt, h))
            }
            Err(e) => Err(Error::Corrupted {
                file: self.path.clone(),
                offset: match e {
                    Error::Corrupted { offset, .. } => *offset,
                    _ => 0,
                },
                what: "segment frames (while rebuilding a damaged index)",
                expected: 0,
                found: 0,
            }),
        }
    }
}

/// The active segment as readers see it. It is written with ordinary writes, never through a
/// map; readers read it through a read-only map of the frames that were written when they
/// mapped it (mapped again once another `ACTIVE_REMAP_BYTES` were appended), and the newest
/// bytes with pread. (Bytes below a reader's head were written before it saw the head, and the
/// writer never rewrites or truncates frames while the store is open. It does overwrite the
/// zeros it writes ahead of its frames, so a map serves only the frames written before it was
/// taken, as the writer publishes them in `frames_end`, never the file's whole length.)
pub struct ActiveFile {
    /// Segment file path.
    pub path: PathBuf,
    /// Decoded header.
    pub header: SegmentHeader,
    /// A read handle.
    pub file: Arc<dyn VfsFile>,
    /// End of the frames written to the file so far (set by the writer after each write).
    frames_end: std::sync::atomic::AtomicU64,
    /// A map and the end of the frames it holds.
    map: parking_lot::Mutex<Option<(Arc<FileBytes>, u64)>>,
}

/// Bytes appended to the active segment after which readers map it again.
const ACTIVE_REMAP_BYTES: u64 = 1 << 20;

impl ActiveFile {
    /// The active segment at `path`, read through `file`, whose frames end at `frames_end`.
    pub fn new(
        path: PathBuf,
        header: SegmentHeader,
        file: Arc<dyn VfsFile>,
        frames_end: u64,
    ) -> Self {
        ActiveFile {
            path,
            header,
            file,
            frames_end: frames_end.into(),
            map: parking_lot::Mutex::new(None),
        }
    }

    /// Records that the frames written to the file now end at `end` (the writer calls this
    /// after each write of frames, before the head moves past them).
    pub fn set_frames_end(&self, end: u64) {
        self.frames_end
            .store(end, std::sync::atomic::Ordering::Release);
    }

    /// End of the frames written to the file so far: every frame below a head a reader has
    /// seen ends before it.
    pub fn frames_end(&self) -> u64 {
        self.frames_end.load(std::sync::atomic::Ordering::Acquire)
    }

    /// A map and the end of the frames it holds, if they cover bytes `[0, end)` or it is time
    /// to map again; `None`: read these bytes with pread.
    fn map_covering(&self, end: u64) -> Option<(Arc<FileBytes>, u64)> {
        let mut m = self.map.lock();
        let have = m.as_ref().map_or(0, |(_, valid)| *valid);
        if end <= have {
            return m.clone();
        }
        if have > 0 && end - have < ACTIVE_REMAP_BYTES {
            return None;
        }
        // Loaded before mapping: every frame below it is in the map.
        let valid = self.frames_end.load(std::sync::atomic::Ordering::Acquire);
        if end > valid {
            return None;
        }
        // Through the handle: a path may have been renamed over since (compaction replaces a
        // sealed segment's file; this one may have been sealed meanwhile).
        match self.file.map(valid) {
            Ok(b) => {
                *m = Some((Arc::new(b), valid));
                m.clone()
            }
            Err(_) => None,
        }
    }
}

/// A segment a reader holds on to while it reads.
#[derive(Clone)]
pub enum SegRef {
    /// A sealed, mapped segment.
    Sealed(Arc<SealedSegment>),
    /// The active segment (or one that was active when the reader started).
    Active(Arc<ActiveFile>),
}

impl SegRef {
    /// First position of the segment.
    pub fn first_position(&self) -> u64 {
        match self {
            SegRef::Sealed(s) => s.header.first_position,
            SegRef::Active(a) => a.header.first_position,
        }
    }

    /// Path of the segment file.
    pub fn path(&self) -> &Path {
        match self {
            SegRef::Sealed(s) => &s.path,
            SegRef::Active(a) => &a.path,
        }
    }

    /// Reads and checks the whole frame at `offset` and gives its bytes to `f`. `scratch` holds
    /// the bytes of frames read from the active segment.
    pub fn with_frame<R>(
        &self,
        offset: u64,
        scratch: &mut Vec<u8>,
        f: impl FnOnce(&[u8], &FrameHeader) -> R,
    ) -> Result<R> {
        match self {
            SegRef::Sealed(s) => sealed_frame(&s.path, &s.data()?, offset, f),
            SegRef::Active(a) => {
                if let Some((m, valid)) = a.map_covering(offset + FRAME_HEADER_BYTES as u64) {
                    let m = &m[..valid as usize];
                    let at = offset as usize;
                    let h = FrameHeader::decode(&m[at..])
                        .map_err(|e| Error::corrupted(&a.path, offset, e))?;
                    if at + h.frame_len() <= m.len() {
                        let bytes = &m[at..at + h.frame_len()];
                        let h =
                            check_frame(bytes).map_err(|e| Error::corrupted(&a.path, offset, e))?;
                        return Ok(f(bytes, &h));
                    }
                }
                const FIRST_READ: usize = 1024;
                crate::io::read_into(&*a.file, &a.path, offset, FIRST_READ, scratch)?;
                let h = FrameHeader::decode(scratch)
                    .map_err(|e| Error::corrupted(&a.path, offset, e))?;
                let len = h.frame_len();
                if scratch.len() < len {
                    let have = scratch.len();
                    let mut rest = Vec::new();
                    crate::io::read_into(
                        &*a.file,
                        &a.path,
                        offset + have as u64,
                        len - have,
                        &mut rest,
                    )?;
                    scratch.extend_from_slice(&rest);
                }
                let h = check_frame(scratch).map_err(|e| Error::corrupted(&a.path, offset, e))?;
                debug_assert!(len >= FRAME_HEADER_BYTES);
                Ok(f(&scratch[..len], &h))
            }
        }
    }
}

/// The error for an index offset at or past the end of a sealed segment's `data_len` bytes.
pub(crate) fn points_past_data(file: &Path, offset: u64, data_len: usize) -> Error {
    Error::Corrupted {
        file: file.to_path_buf(),
        offset,
        what: "index points past the segment's data",
        expected: data_len as u64,
        found: offset,
    }
}

/// Checks the frame at `offset` of a sealed segment's `bytes` and gives its bytes to `f`.
pub(crate) fn sealed_frame<R>(
    path: &Path,
    bytes: &SegBytes,
    offset: u64,
    f: impl FnOnce(&[u8], &FrameHeader) -> R,
) -> Result<R> {
    let data = &**bytes;
    let at = offset as usize;
    if at >= data.len() {
        return Err(points_past_data(path, offset, data.len()));
    }
    // An image checked whole against its footer needs no frame checksums.
    let h = check_frame_with(&data[at..], !bytes.checked_whole())
        .map_err(|e| Error::corrupted(path, offset, e))?;
    Ok(f(&data[at..at + h.frame_len()], &h))
}

/// Bytes of each frame that [`prefetch_frame`] asks for.
const PREFETCH_FRAME_BYTES: usize = 512;

/// Asks the processor to fetch the first 512 bytes of the frame at `offset` of a sealed
/// segment's `bytes` into its caches, without waiting for them (a one-event frame of the
/// standard workload is ~420 bytes; the rest of a longer frame comes with the hardware's
/// sequential prefetching as it is read). Only a hint: bounds are checked, nothing is read.
pub(crate) fn prefetch_frame(bytes: &[u8], offset: u64) {
    let at = offset as usize & !63;
    for line in (at..at + PREFETCH_FRAME_BYTES).step_by(64) {
        crate::wire::bytes::prefetch(bytes, line);
    }
}

/// Reads the frames of index entries one after another (a stream's events, scattered through
/// the log). It holds the bytes of the sealed segment it read last, so that a run of frames in
/// one segment looks them up once, and it can ask the processor to fetch a list of frames into
/// its caches before they are read, so that their cache misses overlap instead of following
/// one another.
#[derive(Default)]
pub struct FrameReader {
    held: Option<(Arc<SealedSegment>, SegBytes)>,
    scratch: Vec<u8>,
}

impl FrameReader {
    /// A reader holding nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn bytes_of(&mut self, s: &Arc<SealedSegment>) -> Result<&SegBytes> {
        if !self.held.as_ref().is_some_and(|(h, _)| Arc::ptr_eq(h, s)) {
            self.held = Some((s.clone(), s.data()?));
        }
        Ok(&self.held.as_ref().expect("just set").1)
    }

    /// Reads and checks the whole frame at `offset` of `seg` and gives its bytes to `f` (as
    /// [`SegRef::with_frame`] does).
    pub fn with_frame<R>(
        &mut self,
        seg: &SegRef,
        offset: u64,
        f: impl FnOnce(&[u8], &FrameHeader) -> R,
    ) -> Result<R> {
        match seg {
            SegRef::Sealed(s) => {
                let bytes = self.bytes_of(s)?;
                sealed_frame(&s.path, bytes, offset, f)
            }
            SegRef::Active(_) => seg.with_frame(offset, &mut self.scratch, f),
        }
    }

    /// Asks the processor to fetch the start of each frame at `frames` (segment and offset)
    /// of sealed segments into its caches (see `prefetch_frame`). Only a hint: it skips
    /// what it cannot look up; frames of the active segment are read with pread or a map that
    /// may not cover them yet, and are left alone.
    pub fn prefetch<'a>(&mut self, frames: impl Iterator<Item = (&'a SegRef, u64)>) {
        // A segment whose bytes cannot be had is not asked for again for each of its frames
        // (the read itself reports the error), and a compressed one whose image is not in
        // memory is not decompressed for a hint (the read decompresses it when it gets there,
        // and an image cache too small for all of them would decompress each twice).
        let mut skip: Option<&Arc<SealedSegment>> = None;
        for (seg, offset) in frames {
            let SegRef::Sealed(s) = seg else { continue };
            if skip.is_some_and(|k| Arc::ptr_eq(k, s)) {
                continue;
            }
            let held = self.held.as_ref().is_some_and(|(h, _)| Arc::ptr_eq(h, s));
            if !held && !s.bytes_at_hand() {
                skip = Some(s);
                continue;
            }
            match self.bytes_of(s) {
                Ok(b) => prefetch_frame(b, offset),
                Err(_) => skip = Some(s),
            }
        }
    }
}
