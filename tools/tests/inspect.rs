//! `evlog inspect` on store directories and single files.

mod common;

use common::*;
use serde_json::Value;

#[test]
fn inspect_store_summarizes_segments_indexes_and_checkpoint() {
    let t = tempfile::tempdir().unwrap();
    make_store(t.path(), 100);
    let segs = segments(t.path());
    assert!(segs.len() >= 3, "{segs:?}");

    let o = evlog(&["inspect", path(t.path())]);
    assert_code(&o, 0, "inspect a clean store");
    let out = stdout(&o);
    assert!(
        out.contains(&format!(
            "segments: {} ({} sealed, 1 active), 100 event(s)",
            segs.len(),
            segs.len() - 1
        )),
        "{out}"
    );
    assert!(out.contains("compression none"), "{out}");
    for (i, s) in segs.iter().enumerate() {
        let state = if i + 1 == segs.len() {
            "active"
        } else {
            "sealed"
        };
        assert!(
            out.contains(&format!("{s}  {state}")),
            "{s} {state} in\n{out}"
        );
        if i + 1 < segs.len() {
            let idx = s.replace(".seg", ".idx");
            assert!(
                out.contains(&format!("{idx}: first position")),
                "{idx}\n{out}"
            );
        }
    }
    assert!(
        out.contains("checkpoint.idx: next position 100, 3 stream(s)"),
        "{out}"
    );
    assert!(out.contains("body checksum ok"), "{out}");
    assert!(out.contains("no problems found"), "{out}");

    let o = evlog(&["inspect", "--json", path(t.path())]);
    assert_code(&o, 0, "inspect --json");
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["clean"], true);
    assert_eq!(v["events"], 100);
    assert_eq!(v["compression"], "none");
    let jsegs = v["segments"].as_array().unwrap();
    assert_eq!(jsegs.len(), segs.len());
    let mut next = 0u64;
    for (i, s) in jsegs.iter().enumerate() {
        let last = i + 1 == segs.len();
        assert_eq!(s["state"], if last { "active" } else { "sealed" });
        assert_eq!(s["header"]["first_position"], next);
        assert_eq!(s["header"]["seq"], i as u64);
        assert_eq!(s["footer"].is_null(), last);
        assert_eq!(s["counted_from_footer"], !last);
        next += s["event_count"].as_u64().unwrap();
        let len = std::fs::metadata(t.path().join(&segs[i])).unwrap().len();
        assert_eq!(s["bytes"], len);
    }
    assert_eq!(next, 100);
    assert_eq!(v["indexes"].as_array().unwrap().len(), segs.len() - 1);
    assert_eq!(v["checkpoint"]["checkpoint"]["next_position"], 100);
    assert_eq!(v["checkpoint"]["checkpoint"]["streams"], 3);
}

#[test]
fn inspect_segment_lists_every_frame() {
    let t = tempfile::tempdir().unwrap();
    make_store(t.path(), 100);
    let segs = segments(t.path());
    let seg = t.path().join(&segs[1]);
    let lib = evlog::inspect::inspect_segment(&seg).unwrap();
    let footer = lib.footer.expect("sealed");

    let o = evlog(&["inspect", path(&seg)]);
    assert_code(&o, 0, "inspect a sealed segment");
    let out = stdout(&o);
    assert!(out.contains("sealed)"), "{out}");
    assert!(
        out.contains(&format!("first position {}", footer.first_position)),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "{} event(s), {} frame(s)",
            footer.event_count, footer.frame_count
        )),
        "{out}"
    );
    let rows: Vec<&str> = out.lines().filter(|l| l.ends_with("  ok")).collect();
    assert_eq!(rows.len() as u64, footer.frame_count, "{out}");
    // Each row: offset, length, count, first position, unsynced_before.
    let mut offset = 64u64;
    let mut pos = footer.first_position;
    for r in &rows {
        let f: Vec<u64> = r
            .split_whitespace()
            .take(5)
            .map(|x| x.parse().unwrap())
            .collect();
        assert_eq!(f[0], offset, "{r}");
        assert_eq!(f[3], pos, "{r}");
        offset += f[1];
        pos += f[2];
    }
    assert_eq!(offset, footer.data_end);
    assert!(!out.contains("stop:"), "{out}");

    let o = evlog(&["inspect", "--json", path(&seg)]);
    assert_code(&o, 0, "inspect --json segment");
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let frames = v["frames"].as_array().unwrap();
    assert_eq!(frames.len(), lib.frames.len());
    for (j, f) in frames.iter().zip(&lib.frames) {
        assert_eq!(j["offset"], f.offset);
        assert_eq!(j["length"], f.len);
        assert_eq!(j["count"], f.count);
        assert_eq!(j["first_position"], f.first_position);
        assert_eq!(j["unsynced_before"], f.unsynced_before);
        assert_eq!(j["checksum"], "ok");
    }
    assert!(v["stop"].is_null());
}

#[test]
fn inspect_segment_stops_at_a_flipped_bit_and_says_where() {
    let t = tempfile::tempdir().unwrap();
    make_store(t.path(), 100);
    let segs = segments(t.path());
    let seg = t.path().join(&segs[0]);
    let before = evlog::inspect::inspect_segment(&seg).unwrap();
    let mut b = std::fs::read(&seg).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 0x10;
    std::fs::write(&seg, &b).unwrap();
    // The damaged frame: the last one starting at or before the flipped byte.
    let damaged = before
        .frames
        .iter()
        .rev()
        .find(|f| f.offset <= mid as u64)
        .unwrap();

    let o = evlog(&["inspect", path(&seg)]);
    assert_code(&o, 1, "inspect a damaged segment");
    let out = stdout(&o);
    let stop = out
        .lines()
        .find(|l| l.contains("stop:"))
        .unwrap_or_else(|| panic!("no stop line in\n{out}"));
    assert!(
        stop.trim_start()
            .starts_with(&format!("{} ", damaged.offset)),
        "{stop}"
    );
    assert!(stop.contains("damage"), "{stop}");
    // Only the frames before the damaged one are listed.
    let rows = out.lines().filter(|l| l.ends_with("  ok")).count();
    let good = before
        .frames
        .iter()
        .filter(|f| f.offset < damaged.offset)
        .count();
    assert_eq!(rows, good, "{out}");
    assert!(out.contains("problem: frames stop at byte"), "{out}");

    let o = evlog(&["inspect", "--json", path(&seg)]);
    assert_code(&o, 1, "inspect --json a damaged segment");
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["stop"]["frame_offset"], damaged.offset);
    assert_eq!(v["stop"]["torn_tail"], false);
    let at = v["stop"]["offset"].as_u64().unwrap();
    assert!(
        at >= damaged.offset && at < damaged.offset + damaged.len,
        "{v}"
    );
}

#[test]
fn inspect_reports_a_torn_tail_as_a_note() {
    let t = tempfile::tempdir().unwrap();
    make_store(t.path(), 30);
    let segs = segments(t.path());
    let active = t.path().join(segs.last().unwrap());
    // A durable writer leaves zeros after the frames at close: the torn write lands right
    // after the frames.
    let len = cut_zeros_after_frames(&active);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&active)
        .unwrap();
    std::io::Write::write_all(&mut f, b"EVFR\x01\x00garbage that is no frame").unwrap();
    drop(f);

    let o = evlog(&["inspect", path(t.path())]);
    assert_code(&o, 0, "a torn tail is not damage");
    let out = stdout(&o);
    assert!(out.contains(&format!("frames stop at byte {len}")), "{out}");
    assert!(out.contains("a torn tail"), "{out}");

    let o = evlog(&["inspect", path(&active)]);
    assert_code(&o, 0, "a torn tail is not damage");
    let out = stdout(&o);
    assert!(out.contains("stop:"), "{out}");
    assert!(out.contains("a torn tail: open cuts it"), "{out}");
}

#[test]
fn inspect_names_the_zeros_a_durable_writer_writes_ahead() {
    let t = tempfile::tempdir().unwrap();
    let s = evlog::StoreOptions::new()
        .durability(evlog::Durability::Always)
        .open(t.path())
        .unwrap();
    for i in 0..5 {
        let e = evlog::EventData::new(TYPES[0], format!("{{\"i\":{i}}}"));
        s.append("order-1", evlog::ExpectedVersion::Any, &[e])
            .unwrap();
    }
    // The writer is still open: its active segment has zeros after the frames.
    let segs = segments(t.path());
    let active = t.path().join(segs.last().unwrap());
    let len = std::fs::metadata(&active).unwrap().len();
    // Five small frames take well under 1 KiB; right after an open the writer writes at least
    // 4 KiB of zeros ahead of them (more as it writes more).
    assert!(len >= 4 << 10, "zeros are written ahead ({len} bytes)");

    let o = evlog(&["inspect", path(&active)]);
    assert_code(&o, 0, "zeros ahead of the frames are not damage");
    let out = stdout(&o);
    assert!(
        out.contains("zeros after the frames, as a durable writer writes ahead"),
        "{out}"
    );
    assert!(!out.contains("torn tail"), "{out}");

    let o = evlog(&["inspect", "--json", path(&active)]);
    assert_code(&o, 0, "zeros ahead of the frames are not damage");
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let stop = &v["stop"];
    assert_eq!(stop["zeros"], true, "{v}");
    assert_eq!(stop["torn_tail"], true, "{v}");
    assert_eq!(v["event_count"], 5, "{v}");
    drop(s);
}

#[test]
fn inspect_index_and_checkpoint_files() {
    let t = tempfile::tempdir().unwrap();
    make_store(t.path(), 100);
    let segs = segments(t.path());
    let idx = t.path().join(segs[0].replace(".seg", ".idx"));
    let o = evlog(&["inspect", path(&idx)]);
    assert_code(&o, 0, "inspect an index");
    let out = stdout(&o);
    assert!(out.contains("first position 0,"), "{out}");
    assert!(out.contains("body checksum ok"), "{out}");

    let ck = t.path().join("checkpoint.idx");
    let o = evlog(&["inspect", "--json", path(&ck)]);
    assert_code(&o, 0, "inspect the checkpoint");
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["checkpoint"]["next_position"], 100);

    // A damaged index body is a problem.
    let mut b = std::fs::read(&idx).unwrap();
    let last = b.len() - 1;
    b[last] ^= 1;
    std::fs::write(&idx, &b).unwrap();
    let o = evlog(&["inspect", path(&idx)]);
    assert_code(&o, 1, "inspect a damaged index");
    assert!(stdout(&o).contains("body checksum BAD"), "{}", stdout(&o));
}

#[test]
fn inspect_a_missing_path_exits_2() {
    let t = tempfile::tempdir().unwrap();
    let o = evlog(&["inspect", path(&t.path().join("nope"))]);
    assert_code(&o, 2, "missing path");
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("nope"));
}
