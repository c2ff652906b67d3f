//! Anonymous memory for large buffers that are written whole before they are read (the
//! decompressed image of a compressed segment, and the compressed file read into memory for
//! it), recycled within the process: a buffer let go returns to a small pool, and the next one
//! of about its size is taken from there instead of being mapped afresh. A fresh mapping costs
//! the kernel a page fault and a zeroed page every 4 KiB (about a third of a cold replay's
//! system time); a recycled one costs nothing. Pooled buffers are marked lazily free
//! (`MADV_FREE`), so the kernel takes their pages back under memory pressure without a swap
//! (they then come back as zero pages when written).

use std::io;
use std::ops::{Deref, DerefMut};

use parking_lot::Mutex;

/// Buffers kept for reuse, at most.
const POOL_BUFFERS_MAX: usize = 4;
/// Bytes of the buffers kept for reuse, at most (four 64 MiB images, or fewer larger ones).
const POOL_BYTES_MAX: usize = 256 << 20;

/// The length a fresh buffer for `len` bytes is mapped with: a little longer, to the next
/// multiple of a step of about 1/32 of it (a page at least, 1 MiB at most), because the images
/// and compressed files of one store differ by a few bytes and a buffer must fit the next one
/// to be reused for it. Never more than about 6 % longer: a store of many small segments may
/// hold an image of each.
fn mapped_len(len: usize) -> usize {
    let step = (len / 32).next_power_of_two().clamp(4096, 1 << 20);
    len.checked_next_multiple_of(step).unwrap_or(len)
}

static POOL: Mutex<Vec<memmap2::MmapMut>> = Mutex::new(Vec::new());

/// A buffer of [`reusable_pages`]: `len` bytes of anonymous memory whose contents are
/// unspecified until written (zeros, or what an earlier buffer of this process held). It
/// returns to the pool when dropped.
pub struct PageBuf {
    map: Option<memmap2::MmapMut>,
    len: usize,
}

impl Deref for PageBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.map.as_ref().expect("mapped until dropped")[..self.len]
    }
}

impl DerefMut for PageBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.map.as_mut().expect("mapped until dropped")[..self.len]
    }
}

impl Drop for PageBuf {
    fn drop(&mut self) {
        let Some(map) = self.map.take() else { return };
        if map.len() > POOL_BYTES_MAX {
            return;
        }
        super::real::lazy_free(&map);
        let mut pool = POOL.lock();
        let held: usize = pool.iter().map(|m| m.len()).sum();
        if pool.len() < POOL_BUFFERS_MAX && held + map.len() <= POOL_BYTES_MAX {
            pool.push(map);
        }
    }
}

/// `len` bytes for a buffer the caller writes whole before reading it: a pooled buffer of at
/// least `len` bytes (and not more than twice as many), or else fresh memory from
/// [`super::zeroed_pages`]. Its contents are unspecified: every byte must be written before
/// it is read.
pub fn reusable_pages(len: usize) -> io::Result<PageBuf> {
    let reused = {
        let mut pool = POOL.lock();
        let best = pool
            .iter()
            .enumerate()
            .filter(|(_, m)| m.len() >= len && m.len() <= len.saturating_mul(2).max(1 << 20))
            .min_by_key(|(_, m)| m.len())
            .map(|(i, _)| i);
        best.map(|i| pool.swap_remove(i))
    };
    let map = match reused {
        Some(m) => m,
        None => super::zeroed_pages(mapped_len(len))?,
    };
    Ok(PageBuf {
        map: Some(map),
        len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_is_as_long_as_asked_writable_and_recycled() {
        for len in [0, 1, 4096 * 3 + 5, (1 << 20) + 7] {
            let mut b = reusable_pages(len).unwrap();
            assert_eq!(b.len(), len);
            b.fill(0xA5);
            assert!(b.iter().all(|&x| x == 0xA5));
            drop(b);
            // Whether it is the pooled one or a fresh one, it has the length asked for and
            // takes what is written.
            let mut again = reusable_pages(len).unwrap();
            assert_eq!(again.len(), len);
            again.fill(1);
            assert!(again.iter().all(|&x| x == 1));
        }
    }

    #[test]
    fn fresh_buffers_are_mapped_at_most_a_sixteenth_longer() {
        for len in [1, 4096, 5000, 64 << 10, (26 << 20) + 12345, (64 << 20) + 45] {
            let m = mapped_len(len);
            assert!(m >= len);
            assert!(m - len <= (len / 16).max(4095), "{len} -> {m}");
        }
        assert_eq!(mapped_len(4096), 4096);
        // Two images a few bytes apart get the same length.
        assert_eq!(mapped_len((64 << 20) + 45), mapped_len((64 << 20) + 900));
    }

    #[test]
    fn the_pool_stays_within_its_bounds() {
        let bufs: Vec<_> = (0..POOL_BUFFERS_MAX + 3)
            .map(|_| reusable_pages(2 << 20).unwrap())
            .collect();
        drop(bufs);
        let pool = POOL.lock();
        assert!(pool.len() <= POOL_BUFFERS_MAX);
        assert!(pool.iter().map(|m| m.len()).sum::<usize>() <= POOL_BYTES_MAX);
    }
}
