//! Every command over compressed segments (`.zseg`), and `evlog compress`.

mod common;

use std::path::Path;

use common::*;
use evlog::{Direction, Durability, EventData, ExpectedVersion, ReadFilter, Store, StoreOptions};
use serde_json::Value;

const EVENTS: u64 = 3000;

/// A store of [`EVENTS`] events with 16 KiB segments (so, many sealed ones), over five streams.
fn make_small_segment_store(dir: &Path) {
    let s = StoreOptions::new()
        .segment_bytes(16 << 10)
        .durability(Durability::Never)
        .open(dir)
        .unwrap();
    for i in 0..EVENTS {
        let t = (i % 3) as usize;
        let e = EventData::new(
            TYPES[t],
            format!(
                "{{\"i\":{i},\"customer\":\"c-{}\",\"note\":\"{}\"}}",
                i % 17,
                "lorem ipsum ".repeat(3)
            ),
        );
        s.append(&format!("order-{}", i % 5), ExpectedVersion::Any, &[e])
            .unwrap();
    }
    s.close().unwrap();
}

fn names_ending(dir: &Path, suffix: &str) -> Vec<String> {
    let mut v: Vec<String> = listing(dir)
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| n.ends_with(suffix))
        .collect();
    v.sort();
    v
}

fn json_of(o: &std::process::Output) -> Value {
    serde_json::from_str(&stdout(o)).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

fn run_ok(args: &[&str]) -> std::process::Output {
    let o = evlog(args);
    assert_code(&o, 0, &args.join(" "));
    o
}

/// Builds a store and compresses it with `evlog compress`; returns the dump (jsonl) and the
/// stats (JSON) from before compression, and a copy of the first sealed `.seg` file.
fn compressed_store(dir: &Path) -> (String, Value, Vec<u8>) {
    make_small_segment_store(dir);
    let segs = segments(dir);
    assert!(segs.len() >= 10, "{segs:?}");
    let first_seg = std::fs::read(dir.join(&segs[0])).unwrap();
    let dump = stdout(&run_ok(&["dump", "--format", "jsonl", path(dir)]));
    let stats = json_of(&run_ok(&["stats", "--json", path(dir)]));
    assert_eq!(stats["compressed_segments"], 0, "{stats}");
    assert_eq!(stats["image_bytes"], stats["segment_bytes"], "{stats}");

    let o = run_ok(&["compress", "--json", path(dir)]);
    let rep = json_of(&o);
    let sealed = segs.len() as u64 - 1;
    assert_eq!(rep["segments"], sealed, "{rep}");
    assert_eq!(rep["sealed_segments"], sealed, "{rep}");
    assert_eq!(rep["compressed_segments"], sealed, "{rep}");
    let before = rep["bytes_before"].as_u64().unwrap();
    let after = rep["bytes_after"].as_u64().unwrap();
    assert!(after < before, "{rep}");
    assert_eq!(rep["bytes_reclaimed"], before - after, "{rep}");
    assert!(rep["ratio"].as_f64().unwrap() > 1.0, "{rep}");
    assert_eq!(names_ending(dir, ".zseg").len() as u64, sealed);
    assert_eq!(segments(dir).len(), 1, "only the active .seg is left");
    (dump, stats, first_seg)
}

#[test]
fn every_command_works_the_same_over_compressed_segments() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let (dump_before, stats_before, first_seg) = compressed_store(dir);
    let zsegs = names_ending(dir, ".zseg");

    // verify: clean, and says the segments are compressed.
    let o = run_ok(&["verify", path(dir)]);
    let out = stdout(&o);
    assert!(out.contains(": clean"), "{out}");
    assert!(
        out.contains(&format!("{} of them compressed (.zseg)", zsegs.len())),
        "{out}"
    );
    assert!(out.contains(&format!("{EVENTS} event(s)")), "{out}");
    let v = json_of(&run_ok(&["verify", "--json", path(dir)]));
    assert_eq!(v["clean"], true);
    assert_eq!(v["compressed_segments"], zsegs.len());

    // stats: the same events, the compressed segments counted, fewer bytes on disk.
    let s = json_of(&run_ok(&["stats", "--json", path(dir)]));
    for key in ["events", "streams", "raw_event_bytes", "head_position"] {
        assert_eq!(s[key], stats_before[key], "{key}: {s}");
    }
    assert_eq!(s["event_types"], stats_before["event_types"]);
    assert_eq!(s["segments"], stats_before["segments"], "{s}");
    assert_eq!(s["compressed_segments"], zsegs.len(), "{s}");
    let seg_bytes = s["segment_bytes"].as_u64().unwrap();
    assert!(
        seg_bytes < stats_before["segment_bytes"].as_u64().unwrap(),
        "{s}"
    );
    // The images are the .seg files byte for byte.
    assert_eq!(s["image_bytes"], stats_before["segment_bytes"], "{s}");
    assert_eq!(s["index_bytes"], stats_before["index_bytes"], "{s}");
    let on_disk: u64 = listing(dir).iter().map(|(_, l)| l).sum();
    assert_eq!(s["bytes_on_disk"], on_disk);
    let zseg_bytes: u64 = listing(dir)
        .iter()
        .filter(|(n, _)| n.ends_with(".seg") || n.ends_with(".zseg"))
        .map(|(_, l)| l)
        .sum();
    assert_eq!(seg_bytes, zseg_bytes);
    assert!(
        s["compression_ratio"].as_f64().unwrap()
            > stats_before["compression_ratio"].as_f64().unwrap()
    );
    let out = stdout(&run_ok(&["stats", path(dir)]));
    assert!(
        out.contains(&format!("{} compressed", zsegs.len())),
        "{out}"
    );
    assert!(out.contains("compression:    zstd"), "{out}");

    // dump and export: identical.
    let dump_after = stdout(&run_ok(&["dump", "--format", "jsonl", path(dir)]));
    assert_eq!(dump_after, dump_before);
    assert_eq!(dump_after.lines().count() as u64, EVENTS);
    let table = stdout(&run_ok(&["dump", "--stream", "order-3", path(dir)]));
    assert_eq!(table.lines().filter(|l| l.contains("order-3")).count(), 600);

    // inspect DIR: the compressed segments are listed as sealed, with their compressed form.
    let out = stdout(&run_ok(&["inspect", path(dir)]));
    for z in &zsegs {
        assert!(
            out.contains(&format!("{z}  sealed, compressed")),
            "{z}\n{out}"
        );
    }
    assert!(out.contains("compressed: zstd, image "), "{out}");
    assert!(out.contains("no problems found"), "{out}");
    let v = json_of(&run_ok(&["inspect", "--json", path(dir)]));
    assert_eq!(v["clean"], true);
    assert_eq!(v["events"], EVENTS);
    assert_eq!(v["compressed_segments"], zsegs.len());
    let jsegs = v["segments"].as_array().unwrap();
    assert_eq!(jsegs.len(), zsegs.len() + 1);
    for j in &jsegs[..zsegs.len()] {
        assert_eq!(j["state"], "sealed");
        assert_eq!(j["counted_from_footer"], true);
        assert_eq!(j["compressed"]["blocks_checked"], false);
        assert!(j["compressed"]["compressed_bytes"].as_u64().unwrap() > 0);
    }
    assert!(jsegs[zsegs.len()]["compressed"].is_null());

    // inspect FILE on a .zseg: its compressed header, its blocks, and the frames of its image,
    // which are those of the .seg file it replaced.
    let z0 = dir.join(&zsegs[0]);
    let o = run_ok(&["inspect", path(&z0)]);
    let out = stdout(&o);
    let zlen = std::fs::metadata(&z0).unwrap().len();
    assert!(
        out.contains(&format!(
            "compressed: zstd, image {} byte(s), block size 65536, 1 block(s)",
            first_seg.len()
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("file {zlen} byte(s), ratio ")),
        "{out}"
    );
    assert!(out.contains("blocks: all 1 checked"), "{out}");
    assert!(out.contains("offsets in the image"), "{out}");
    let seg_copy = t.path().join("copy.seg.corrupt");
    std::fs::write(&seg_copy, &first_seg).unwrap();
    let plain = evlog::inspect::inspect_segment(&seg_copy).unwrap();
    std::fs::remove_file(&seg_copy).unwrap();
    assert!(plain.frames.len() > 1);
    let rows: Vec<Vec<u64>> = out
        .lines()
        .filter(|l| l.ends_with("  ok"))
        .map(|r| {
            r.split_whitespace()
                .take(5)
                .map(|x| x.parse().unwrap())
                .collect()
        })
        .collect();
    assert_eq!(rows.len(), plain.frames.len(), "{out}");
    for (r, f) in rows.iter().zip(&plain.frames) {
        assert_eq!(
            r[..],
            [
                f.offset,
                f.len,
                u64::from(f.count),
                f.first_position,
                u64::from(f.unsynced_before)
            ]
        );
    }
    let lib = evlog::inspect::inspect_segment(&z0).unwrap();
    assert_eq!(lib.frames, plain.frames);
    assert_eq!(lib.footer, plain.footer);
    assert_eq!(lib.bytes, zlen);
    assert!(lib.problems.is_empty(), "{:?}", lib.problems);
    let v = json_of(&run_ok(&["inspect", "--json", path(&z0)]));
    assert_eq!(v["compressed"]["header"]["image_len"], first_seg.len());
    assert_eq!(v["compressed"]["blocks_checked"], true);
    assert_eq!(v["compressed"]["damaged_blocks"], Value::Array(vec![]));
    assert_eq!(v["frames"].as_array().unwrap().len(), plain.frames.len());
    assert!(v["stop"].is_null());

    // A second compress has nothing to do.
    let out = stdout(&run_ok(&["compress", path(dir)]));
    assert!(out.contains("compressed 0 segment(s)"), "{out}");
    assert!(
        out.contains(&format!(
            "sealed segments: {}, {} compressed",
            zsegs.len(),
            zsegs.len()
        )),
        "{out}"
    );
}

#[test]
fn a_damaged_block_is_found_reported_and_moved_aside() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    compressed_store(dir);
    let zsegs = names_ending(dir, ".zseg");
    let victim = &zsegs[3];
    let vpath = dir.join(victim);
    let first_lost: u64 = victim.strip_suffix(".zseg").unwrap().parse().unwrap();
    let mut b = std::fs::read(&vpath).unwrap();
    let layout = evlog::wire::zseg::decode_zseg(&b).unwrap();
    let block = layout.blocks[0];
    let flip = block.offset as usize + block.compressed_len as usize / 2;
    b[flip] ^= 0x20;
    std::fs::write(&vpath, &b).unwrap();

    // verify: exit 1, naming the file and the block's file offset.
    let o = evlog(&["verify", path(dir)]);
    assert_code(&o, 1, "verify a damaged block");
    let out = stdout(&o);
    assert!(
        out.contains(&format!(
            "problem: {} at byte {}: compressed segment block checksum",
            vpath.display(),
            block.offset
        )),
        "{out}"
    );

    // inspect FILE: the damaged block with its file offset; no frame is listed.
    let o = evlog(&["inspect", path(&vpath)]);
    assert_code(&o, 1, "inspect a damaged .zseg");
    let out = stdout(&o);
    assert!(
        out.contains(&format!(
            "damaged block 0 at file byte {} ({} compressed byte(s); image bytes 0..{}): compressed segment block checksum",
            block.offset, block.compressed_len, layout.image_len
        )),
        "{out}"
    );
    assert!(out.contains("blocks: 1 of 1 damaged"), "{out}");
    assert!(
        out.contains(&format!(
            "problem: compressed block 0 of 1 at file byte {}",
            block.offset
        )),
        "{out}"
    );
    assert!(
        out.contains("stop: the frame reaches a damaged compressed block"),
        "{out}"
    );
    assert_eq!(
        out.lines().filter(|l| l.ends_with("  ok")).count(),
        0,
        "{out}"
    );
    let o = evlog(&["inspect", "--json", path(&vpath)]);
    assert_code(&o, 1, "inspect --json a damaged .zseg");
    let v = json_of(&o);
    assert_eq!(v["compressed"]["damaged_blocks"][0]["offset"], block.offset);
    assert_eq!(v["stop"]["frame_offset"], 64);

    // repair: the damaged segment is moved aside whole, with every later one; the store opens.
    let o = evlog(&["repair", path(dir)]);
    assert_code(&o, 0, "repair a damaged block");
    let out = stdout(&o);
    assert!(
        out.contains(&format!(
            "moved {victim} (was {} bytes): the whole segment ({} bytes) moved to {victim}.corrupt: it holds the damage",
            b.len(),
            b.len()
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("moved {}", zsegs[4])) && out.contains("it lies after the cut"),
        "{out}"
    );
    assert!(!vpath.exists());
    assert_eq!(
        std::fs::read(dir.join(format!("{victim}.corrupt"))).unwrap(),
        b
    );
    for z in &zsegs[4..] {
        assert!(dir.join(format!("{z}.corrupt")).exists(), "{z}");
    }
    assert!(
        out.contains(&format!("after: clean ({first_lost} event(s)")),
        "{out}"
    );
    let v = json_of(&run_ok(&["repair", "--json", path(dir)]));
    assert_eq!(v["clean"], true);
    assert_eq!(v["changes"], Value::Array(vec![]), "{v}");
    let s = Store::open(dir).unwrap();
    assert_eq!(s.head_position(), Some(first_lost - 1));
    assert_eq!(
        s.read_all(0, Direction::Forward, ReadFilter::all()).count() as u64,
        first_lost
    );
    s.close().unwrap();
    assert_code(&evlog(&["verify", path(dir)]), 0, "verify after repair");

    // inspect FILE still reads the moved-aside file as a compressed segment.
    let o = evlog(&["inspect", path(&dir.join(format!("{victim}.corrupt")))]);
    assert_code(&o, 1, "inspect the .zseg.corrupt");
    assert!(stdout(&o).contains("damaged block 0"), "{}", stdout(&o));
}

#[test]
fn compress_refuses_a_locked_store_and_a_directory_without_a_store() {
    let t = tempfile::tempdir().unwrap();
    make_small_segment_store(t.path());
    let held = Store::open(t.path()).unwrap();
    let then = listing(t.path());
    let o = evlog(&["compress", path(t.path())]);
    assert_code(&o, 3, "compress while locked");
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("locked by a running writer"), "{err}");
    assert!(err.contains("nothing was changed"), "{err}");
    assert!(stdout(&o).is_empty());
    assert_eq!(listing(t.path()), then, "compress changed nothing");
    drop(held);
    run_ok(&["compress", path(t.path())]);
    assert!(!names_ending(t.path(), ".zseg").is_empty());

    let empty = tempfile::tempdir().unwrap();
    let o = evlog(&["compress", path(empty.path())]);
    assert_code(&o, 2, "compress an empty directory");
    assert!(stderr(&o).contains("not an evlog store"), "{}", stderr(&o));
    assert!(listing(empty.path()).is_empty(), "nothing was created");
    let o = evlog(&["compress", path(&empty.path().join("nope"))]);
    assert_code(&o, 2, "compress a missing directory");

    let o = run_ok(&["compress", "--help"]);
    let out = stdout(&o);
    assert!(out.contains("Exit codes:"), "{out}");
    assert!(out.contains("compress, import"), "{out}");
}

#[test]
fn a_zseg_left_next_to_its_seg_by_an_interrupted_compression() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let (dump_before, stats_before, first_seg) = compressed_store(dir);
    let zsegs = names_ending(dir, ".zseg");
    // A crash after the rename of the .zseg and before the .seg was removed leaves both.
    let seg = zsegs[0].replace(".zseg", ".seg");
    std::fs::write(dir.join(&seg), &first_seg).unwrap();
    let zlen = std::fs::metadata(dir.join(&zsegs[0])).unwrap().len();

    assert_code(&evlog(&["verify", path(dir)]), 0, "verify");
    let s = json_of(&run_ok(&["stats", "--json", path(dir)]));
    assert_eq!(s["compressed_segments"], zsegs.len() - 1, "{s}");
    assert_eq!(s["segments"], stats_before["segments"], "{s}");
    assert_eq!(s["image_bytes"], stats_before["segment_bytes"], "{s}");
    let out = stdout(&run_ok(&["inspect", path(dir)]));
    assert!(out.contains(&format!("{seg}  sealed  ")), "{out}");
    assert!(
        out.contains(&format!(
            "{}  {zlen} byte(s) (compressed copy left by an interrupted compression",
            zsegs[0]
        )),
        "{out}"
    );
    assert_eq!(
        stdout(&run_ok(&["dump", "--format", "jsonl", path(dir)])),
        dump_before
    );

    // A writable open (here, repair's) deletes the leftover copy.
    let out = stdout(&run_ok(&["repair", path(dir)]));
    assert!(
        out.contains(&format!(
            "removed {} (was {zlen} bytes): a compressed copy left by an interrupted compression",
            zsegs[0]
        )),
        "{out}"
    );
    assert!(!dir.join(&zsegs[0]).exists());
    assert!(
        out.contains(&format!("after: clean ({EVENTS} event(s)")),
        "{out}"
    );
    // compress compresses it again.
    let v = json_of(&run_ok(&["compress", "--json", path(dir)]));
    assert_eq!(v["segments"], 1, "{v}");
    assert!(!dir.join(&seg).exists());
}
