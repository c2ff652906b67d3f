//! Pins the code to `format/FORMAT.md`: every constant in the spec's tables equals the one in
//! `evlog::wire`, and every field of every fixed-layout structure is at the offset, with the
//! size, the spec's tables give, checked byte by byte on encoded values.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use evlog::wire::checkpoint::{self, decode_checkpoint, encode_checkpoint};
use evlog::wire::frame::{self, FrameHeader, begin_frame, check_frame, finish_frame};
use evlog::wire::index_file::{
    self, FrameEntry, IdEntry, IndexHeader, StreamEntry, check_index_body, encode_index,
};
use evlog::wire::index_names::{self, EventAt, NamesBuilder};
use evlog::wire::limits;
use evlog::wire::record::encode_record;
use evlog::wire::segment::{self, SegmentFooter, SegmentHeader};
use evlog::wire::stream_hash;
use evlog::wire::{archive, zseg};
use evlog::{EventData, Metadata, Uuid};

// ---------------------------------------------------------------------------------------------
// Reading the spec.

fn spec() -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("format/FORMAT.md");
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

/// The rows (cells trimmed, header and separator rows dropped) of the table between
/// `<!-- spec:NAME -->` and `<!-- /spec:NAME -->`.
fn table(name: &str) -> Vec<Vec<String>> {
    let s = spec();
    let open = format!("<!-- spec:{name} -->");
    let close = format!("<!-- /spec:{name} -->");
    let a = s
        .find(&open)
        .unwrap_or_else(|| panic!("FORMAT.md has no {open}"))
        + open.len();
    let b = a + s[a..]
        .find(&close)
        .unwrap_or_else(|| panic!("FORMAT.md has no {close}"));
    let rows: Vec<Vec<String>> = s[a..b]
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with('|'))
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect::<Vec<_>>()
        })
        .filter(|r| !r.iter().all(|c| c.chars().all(|ch| "-: ".contains(ch))))
        .skip(1)
        .collect();
    assert!(!rows.is_empty(), "table {name} is empty");
    rows
}

/// A field row of a fixed-layout table: `| offset | size | field | type | meaning |`.
#[derive(Debug)]
struct Field {
    offset: usize,
    size: usize,
    name: String,
    ty: String,
}

fn fields(name: &str) -> Vec<Field> {
    let rows = table(name);
    let fields: Vec<Field> = rows
        .iter()
        .map(|r| Field {
            offset: r[0]
                .parse()
                .unwrap_or_else(|_| panic!("{name}: offset {:?}", r[0])),
            size: r[1]
                .parse()
                .unwrap_or_else(|_| panic!("{name}: size {:?}", r[1])),
            name: r[2].clone(),
            ty: r[3].clone(),
        })
        .collect();
    // The rows tile the structure: no gap, no overlap, and each type has its size.
    let mut at = 0;
    for f in &fields {
        assert_eq!(
            f.offset, at,
            "{name}: field {} does not follow the previous one",
            f.name
        );
        let want = match f.ty.as_str() {
            "u8" => Some(1),
            "u16" => Some(2),
            "u32" => Some(4),
            "u64" => Some(8),
            "-" => None,
            t => Some(
                t.strip_prefix("[u8; ")
                    .and_then(|t| t.strip_suffix(']'))
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("{name}: unknown type {t}")),
            ),
        };
        if let Some(w) = want {
            assert_eq!(f.size, w, "{name}: field {} of type {}", f.name, f.ty);
        }
        at += f.size;
    }
    fields
}

fn total(fields: &[Field]) -> usize {
    fields.iter().map(|f| f.size).sum()
}

/// Checks `bytes` against a field table: every named field holds `values[name]` (little-endian,
/// of the field's size), every `reserved` field is zero, and every named field has a value.
fn check_fields(table: &str, bytes: &[u8], values: &HashMap<&str, Vec<u8>>) {
    let fs = fields(table);
    assert_eq!(total(&fs), bytes.len(), "{table}: size");
    for f in &fs {
        let got = &bytes[f.offset..f.offset + f.size];
        if f.name == "reserved" {
            assert!(
                got.iter().all(|b| *b == 0),
                "{table}: reserved bytes at {}",
                f.offset
            );
            continue;
        }
        let want = values
            .get(f.name.as_str())
            .unwrap_or_else(|| panic!("{table}: the test has no value for field {}", f.name));
        assert_eq!(
            got,
            &want[..],
            "{table}: field {} at offset {}",
            f.name,
            f.offset
        );
    }
    let named: Vec<&str> = fs.iter().map(|f| f.name.as_str()).collect();
    for k in values.keys() {
        assert!(named.contains(k), "{table}: the spec has no field {k}");
    }
}

fn le(v: u64, size: usize) -> Vec<u8> {
    v.to_le_bytes()[..size].to_vec()
}

fn crc(b: &[u8]) -> u32 {
    crc32fast::hash(b)
}

// ---------------------------------------------------------------------------------------------
// Constants.

enum Val {
    Bytes(Vec<u8>),
    Num(u128),
}

fn code_constants() -> BTreeMap<&'static str, Val> {
    use Val::{Bytes, Num};
    let n = |v: u64| Num(u128::from(v));
    let z = |v: usize| Num(v as u128);
    BTreeMap::from([
        ("SEGMENT_MAGIC", Bytes(segment::SEGMENT_MAGIC.to_vec())),
        ("FOOTER_MAGIC", Bytes(segment::FOOTER_MAGIC.to_vec())),
        ("SEGMENT_VERSION", n(segment::SEGMENT_VERSION.into())),
        ("SEGMENT_HEADER_BYTES", z(segment::SEGMENT_HEADER_BYTES)),
        ("FOOTER_BYTES", z(segment::FOOTER_BYTES)),
        ("FLAG_HAS_PREV", n(segment::FLAG_HAS_PREV.into())),
        ("FRAME_MAGIC", Bytes(frame::FRAME_MAGIC.to_vec())),
        ("FRAME_VERSION", n(frame::FRAME_VERSION.into())),
        ("FRAME_HEADER_BYTES", z(frame::FRAME_HEADER_BYTES)),
        ("FRAME_TRAILER_BYTES", z(frame::FRAME_TRAILER_BYTES)),
        ("FRAME_OVERHEAD_BYTES", z(frame::FRAME_OVERHEAD_BYTES)),
        ("INDEX_MAGIC", Bytes(index_file::INDEX_MAGIC.to_vec())),
        ("INDEX_VERSION", n(index_file::INDEX_VERSION.into())),
        ("INDEX_HEADER_BYTES", z(index_file::INDEX_HEADER_BYTES)),
        ("FRAME_ENTRY_BYTES", z(index_file::FRAME_ENTRY_BYTES)),
        ("STREAM_ENTRY_BYTES", z(index_file::STREAM_ENTRY_BYTES)),
        ("ID_ENTRY_BYTES", z(index_file::ID_ENTRY_BYTES)),
        ("BLOOM_BLOCK_BYTES", z(index_file::BLOOM_BLOCK_BYTES)),
        ("BLOOM_BITS_PER_ID", z(index_file::BLOOM_BITS_PER_ID)),
        ("BLOOM_BITS_SET", n(index_file::BLOOM_BITS_SET.into())),
        ("INDEX_FLAG_NAMES", n(index_names::INDEX_FLAG_NAMES.into())),
        ("TYPE_ENTRY_BYTES", z(index_names::TYPE_ENTRY_BYTES)),
        (
            "TYPE_EVENT_ENTRY_BYTES",
            z(index_names::TYPE_EVENT_ENTRY_BYTES),
        ),
        (
            "STREAM_NAME_ENTRY_BYTES",
            z(index_names::STREAM_NAME_ENTRY_BYTES),
        ),
        (
            "CHECKPOINT_MAGIC",
            Bytes(checkpoint::CHECKPOINT_MAGIC.to_vec()),
        ),
        (
            "CHECKPOINT_VERSION",
            n(checkpoint::CHECKPOINT_VERSION.into()),
        ),
        (
            "CHECKPOINT_HEADER_BYTES",
            z(checkpoint::CHECKPOINT_HEADER_BYTES),
        ),
        (
            "CHECKPOINT_STREAM_ENTRY_BYTES",
            z(checkpoint::CHECKPOINT_STREAM_ENTRY_BYTES),
        ),
        (
            "CHECKPOINT_FILE_NAME",
            Bytes(checkpoint::CHECKPOINT_FILE_NAME.as_bytes().to_vec()),
        ),
        (
            "LOCK_FILE_NAME",
            Bytes(evlog::store::LOCK_FILE_NAME.as_bytes().to_vec()),
        ),
        ("MAX_STREAM_ID_BYTES", z(limits::MAX_STREAM_ID_BYTES)),
        ("MAX_EVENT_TYPE_BYTES", z(limits::MAX_EVENT_TYPE_BYTES)),
        ("MAX_EVENT_BYTES", z(limits::MAX_EVENT_BYTES)),
        ("MAX_BATCH_EVENTS", z(limits::MAX_BATCH_EVENTS)),
        ("MAX_BATCH_BYTES", z(limits::MAX_BATCH_BYTES)),
        ("MAX_METADATA_ENTRIES", z(limits::MAX_METADATA_ENTRIES)),
        ("MAX_METADATA_KEY_BYTES", z(limits::MAX_METADATA_KEY_BYTES)),
        ("SEGMENT_BYTES_DEFAULT", n(limits::SEGMENT_BYTES_DEFAULT)),
        ("SEGMENT_BYTES_MIN", n(limits::SEGMENT_BYTES_MIN)),
        ("SEGMENT_BYTES_MAX", n(limits::SEGMENT_BYTES_MAX)),
        ("MAX_SEGMENT_FRAMES", n(limits::MAX_SEGMENT_FRAMES)),
        ("MAX_CHECKPOINT_BYTES", n(limits::MAX_CHECKPOINT_BYTES)),
        (
            "FRAME_VERSION_COMPACTED",
            n(frame::FRAME_VERSION_COMPACTED.into()),
        ),
        ("FRAME_VERSION_MULTI", n(frame::FRAME_VERSION_MULTI.into())),
        ("ZSEG_MAGIC", Bytes(zseg::ZSEG_MAGIC.to_vec())),
        ("ZSEG_VERSION", n(zseg::ZSEG_VERSION.into())),
        ("ZSEG_HEADER_BYTES", z(zseg::ZSEG_HEADER_BYTES)),
        ("ZSEG_PREFIX_BYTES", z(zseg::ZSEG_PREFIX_BYTES)),
        ("ZSEG_BLOCK_ENTRY_BYTES", z(zseg::ZSEG_BLOCK_ENTRY_BYTES)),
        ("ZSEG_BLOCK_RAW_BYTES", n(zseg::ZSEG_BLOCK_RAW_BYTES.into())),
        ("ZSEG_BLOCK_RAW_MIN", n(zseg::ZSEG_BLOCK_RAW_MIN.into())),
        ("ZSEG_BLOCK_RAW_MAX", n(zseg::ZSEG_BLOCK_RAW_MAX.into())),
        ("ZSEG_MAX_IMAGE_BYTES", n(zseg::ZSEG_MAX_IMAGE_BYTES)),
        ("ZSEG_ZSTD_LEVEL", n(zseg::ZSEG_ZSTD_LEVEL as u64)),
        ("ARCHIVE_MAGIC", Bytes(archive::ARCHIVE_MAGIC.to_vec())),
        ("ARCHIVE_VERSION", n(archive::ARCHIVE_VERSION.into())),
        (
            "ARCHIVE_FILE_NAME",
            Bytes(archive::ARCHIVE_FILE_NAME.as_bytes().to_vec()),
        ),
        ("MAX_ARCHIVE_PATH_BYTES", z(archive::MAX_ARCHIVE_PATH_BYTES)),
    ])
}

#[test]
fn spec_constants_equal_the_code() {
    let code = code_constants();
    let rows = table("constants");
    let mut seen = Vec::new();
    for r in &rows {
        let (name, value) = (r[0].as_str(), r[1].as_str());
        let c = code
            .get(name)
            .unwrap_or_else(|| panic!("FORMAT.md names {name}, which the test does not know"));
        match c {
            Val::Bytes(b) => {
                let s = value
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or_else(|| panic!("{name}: expected a quoted string, got {value}"));
                assert_eq!(s.as_bytes(), &b[..], "{name}");
            }
            Val::Num(n) => {
                let v: u128 = value
                    .parse()
                    .unwrap_or_else(|_| panic!("{name}: expected a decimal number, got {value}"));
                assert_eq!(v, *n, "{name}");
            }
        }
        seen.push(name);
    }
    for name in code.keys() {
        assert!(
            seen.contains(name),
            "FORMAT.md's constants table lacks {name}"
        );
    }
}

#[test]
fn spec_structure_sizes_equal_the_code() {
    assert_eq!(
        total(&fields("segment-header")),
        segment::SEGMENT_HEADER_BYTES
    );
    assert_eq!(total(&fields("segment-footer")), segment::FOOTER_BYTES);
    assert_eq!(total(&fields("frame-header")), frame::FRAME_HEADER_BYTES);
    assert_eq!(total(&fields("frame-trailer")), frame::FRAME_TRAILER_BYTES);
    assert_eq!(
        total(&fields("index-header")),
        index_file::INDEX_HEADER_BYTES
    );
    assert_eq!(
        total(&fields("index-frame-entry")),
        index_file::FRAME_ENTRY_BYTES
    );
    assert_eq!(
        total(&fields("index-stream-entry")),
        index_file::STREAM_ENTRY_BYTES
    );
    assert_eq!(total(&fields("index-id-entry")), index_file::ID_ENTRY_BYTES);
    assert_eq!(
        total(&fields("checkpoint-header")),
        checkpoint::CHECKPOINT_HEADER_BYTES
    );
}

#[test]
fn crc_is_crc32_ieee_and_not_zero_for_zeros() {
    assert_eq!(crc(b"123456789"), 0xCBF4_3926);
    assert_eq!(crc(&[0; 28]), 0x8070_77e9);
    assert_eq!(crc(&[0; 60]), 0x0412_8908);
}

#[test]
fn spec_stream_hash_vectors() {
    for r in table("stream-hash") {
        let input = r[0].trim_matches('"');
        let want = u64::from_str_radix(r[1].trim_start_matches("0x"), 16).unwrap();
        assert_eq!(stream_hash(input), want, "{input:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Segment header and footer.

#[test]
fn segment_header_fields_are_where_the_spec_says() {
    for prev in [Some(0x0102_0304_0506_0707u64), None] {
        let h = SegmentHeader {
            seq: 0x1122_3344_5566_7788,
            first_position: 0x0102_0304_0506_0708,
            prev_last_position: prev,
            created_us: 0x1718_191a_1b1c_1d1e,
        };
        let b = h.encode();
        let values = HashMap::from([
            ("magic", b"EVLOGSEG".to_vec()),
            ("version", le(1, 2)),
            ("flags", le(u64::from(prev.is_some()), 2)),
            ("seq", le(h.seq, 8)),
            ("first_position", le(h.first_position, 8)),
            ("prev_last_position", le(prev.unwrap_or(0), 8)),
            ("created_us", le(h.created_us, 8)),
            ("header_crc", le(crc(&b[0..60]).into(), 4)),
        ]);
        check_fields("segment-header", &b, &values);
        assert_eq!(SegmentHeader::decode(&b).unwrap(), h);
    }
}

#[test]
fn segment_footer_fields_are_where_the_spec_says() {
    let f = SegmentFooter {
        first_position: 0x0102_0304_0506_0708,
        event_count: 0x0000_0000_0001_0203,
        frame_count: 0x0000_0000_0000_0405,
        data_end: 0x0000_0000_0607_0809,
        data_crc: 0x0a0b_0c0d,
    };
    let b = f.encode();
    let values = HashMap::from([
        ("magic", b"EVLOGEND".to_vec()),
        ("first_position", le(f.first_position, 8)),
        ("event_count", le(f.event_count, 8)),
        ("frame_count", le(f.frame_count, 8)),
        ("data_end", le(f.data_end, 8)),
        ("data_crc", le(f.data_crc.into(), 4)),
        ("footer_crc", le(crc(&b[0..60]).into(), 4)),
    ]);
    check_fields("segment-footer", &b, &values);
    assert_eq!(SegmentFooter::decode(&b).unwrap(), f);
    assert_eq!(f.last_position(), f.first_position + f.event_count - 1);
}

#[test]
fn segment_file_names_are_twenty_digits() {
    assert_eq!(segment::segment_file_name(42), "00000000000000000042.seg");
    assert_eq!(segment::index_file_name(42), "00000000000000000042.idx");
    assert_eq!(
        segment::segment_file_name(u64::MAX),
        format!("{}.seg", u64::MAX)
    );
    assert_eq!(
        segment::parse_segment_file_name("00000000000000000042.seg"),
        Some(42)
    );
    for bad in [
        "42.seg",
        "00000000000000000042.idx",
        "0000000000000000004x.seg",
        "00000000000000000042.seg.tmp",
    ] {
        assert_eq!(segment::parse_segment_file_name(bad), None, "{bad}");
    }
}

// ---------------------------------------------------------------------------------------------
// Frames and records.

fn full_event() -> EventData {
    EventData::new("AIScoreCompleted", b"{\"score\":0.93}".to_vec())
        .with_id(Uuid::from_u128(0x0011_2233_4455_6677_8899_aabb_ccdd_eeff))
        .with_metadata(
            Metadata::new()
                .with_correlation_id(Uuid::from_u128(0xc0c0_c0c0_0000_4000_8000_0000_0000_0001))
                .with_causation_id(Uuid::from_u128(0xcaca_caca_0000_4000_8000_0000_0000_0002))
                .with("user", "ada")
                .with("source", "golden-ü"),
        )
}

fn bare_event() -> EventData {
    EventData::new("T", Vec::new()).with_id(Uuid::from_u128(7))
}

#[test]
fn frame_header_and_trailer_fields_are_where_the_spec_says() {
    let mut buf = vec![0xee; 5]; // a frame need not start at 0 of the buffer
    let start = begin_frame(&mut buf);
    encode_record(&mut buf, "order-1", 3, 0x0102_0304_0506_0708, &full_event());
    encode_record(&mut buf, "order-1", 4, 0x0102_0304_0506_0708, &bare_event());
    finish_frame(
        &mut buf,
        start,
        0x0a0b_0c0d_0e0f_1011,
        2,
        0x0a0b_0c0d_0e0f_1011 - 3,
    );
    let f = &buf[start..];
    let body = &f[32..f.len() - 8];
    let header_crc = crc(&f[0..28]);
    let values = HashMap::from([
        ("magic", b"EVFR".to_vec()),
        ("version", vec![1]),
        ("flags", vec![0]),
        ("unsynced_before", le(3, 2)),
        ("body_len", le(body.len() as u64, 4)),
        ("count", le(2, 4)),
        ("first_position", le(0x0a0b_0c0d_0e0f_1011, 8)),
        ("body_crc", le(crc(body).into(), 4)),
        ("header_crc", le(header_crc.into(), 4)),
    ]);
    check_fields("frame-header", &f[0..32], &values);
    let trailer = HashMap::from([
        ("frame_len", le(f.len() as u64, 4)),
        ("header_crc", le(header_crc.into(), 4)),
    ]);
    check_fields("frame-trailer", &f[f.len() - 8..], &trailer);
    assert_eq!(f.len(), frame::FRAME_OVERHEAD_BYTES + body.len());
    let h = check_frame(f).unwrap();
    assert_eq!(h, FrameHeader::decode(f).unwrap());
    assert_eq!(
        (h.count, h.first_position, h.header_crc),
        (2, 0x0a0b_0c0d_0e0f_1011, header_crc)
    );
    assert_eq!(h.durable_before(), 0x0a0b_0c0d_0e0f_1011 - 3);
}

/// Walks an encoded record along the spec's record table and checks every field.
fn check_record(rec: &[u8], stream: &str, version: u64, ts: u64, e: &EventData) {
    let rows = table("record");
    let m = &e.metadata;
    let flags = u8::from(m.correlation_id.is_some())
        | (u8::from(m.causation_id.is_some()) << 1)
        | (u8::from(!m.bytes.is_empty()) << 3);
    let value = |name: &str| -> Vec<u8> {
        match name {
            "record_len" => le((rec.len() - 4) as u64, 4),
            "version" => le(version, 8),
            "timestamp_us" => le(ts, 8),
            "id" => e.id.as_bytes().to_vec(),
            "flags" => vec![flags],
            "correlation_id" => m.correlation_id.unwrap().as_bytes().to_vec(),
            "causation_id" => m.causation_id.unwrap().as_bytes().to_vec(),
            "stream_len" => le(stream.len() as u64, 2),
            "stream" => stream.as_bytes().to_vec(),
            "type_len" => le(e.event_type.len() as u64, 2),
            "type" => e.event_type.as_bytes().to_vec(),
            "meta_count" => le(m.extra.len() as u64, 2),
            "meta_bytes_len" => le(m.bytes.len() as u64, 4),
            "meta_bytes" => m.bytes.clone(),
            "payload_len" => le(e.payload.len() as u64, 4),
            "payload" => e.payload.clone(),
            other => panic!("record table: unknown field {other}"),
        }
    };
    let size = |r: &[String], v: &[u8]| -> usize {
        match r[2].parse::<usize>() {
            Ok(n) => n,
            Err(_) => v.len(), // a length named by an earlier field
        }
    };
    let mut at = 0;
    let mut i = 0;
    while i < rows.len() {
        let r = &rows[i];
        let name = r[0].as_str();
        if name == "key_len" {
            // The four per-entry rows, once per metadata entry, in key order.
            let group: Vec<&str> = rows[i..i + 4].iter().map(|r| r[0].as_str()).collect();
            assert_eq!(group, ["key_len", "key", "value_len", "value"]);
            for (k, v) in &m.extra {
                for (field, want) in [
                    ("key_len", le(k.len() as u64, 2)),
                    ("key", k.as_bytes().to_vec()),
                    ("value_len", le(v.len() as u64, 4)),
                    ("value", v.as_bytes().to_vec()),
                ] {
                    assert_eq!(&rec[at..at + want.len()], &want[..], "record field {field}");
                    at += want.len();
                }
            }
            i += 4;
            continue;
        }
        let present = match r[3].as_str() {
            p if p.starts_with("if flags & 1") => flags & 1 != 0,
            p if p.starts_with("if flags & 2") => flags & 2 != 0,
            p if p.starts_with("if flags & 8") => flags & 8 != 0,
            p => {
                assert!(p.starts_with("always"), "record table: {p}");
                true
            }
        };
        if present {
            let want = value(name);
            let n = size(r, &want);
            assert_eq!(n, want.len(), "record field {name}: size");
            assert_eq!(&rec[at..at + n], &want[..], "record field {name} at {at}");
            at += n;
        }
        i += 1;
    }
    assert_eq!(at, rec.len(), "the record table covers the whole record");
}

#[test]
fn record_fields_are_where_the_spec_says() {
    let flags: BTreeMap<String, u8> = table("record-flags")
        .into_iter()
        .map(|r| (r[0].clone(), r[1].parse().unwrap()))
        .collect();
    assert_eq!(flags["FLAG_CORRELATION"], 1);
    assert_eq!(flags["FLAG_CAUSATION"], 2);
    assert_eq!(flags["FLAG_DROPPED"], evlog::wire::record::FLAG_DROPPED);
    assert_eq!(
        flags["FLAG_META_BYTES"],
        evlog::wire::record::FLAG_META_BYTES
    );
    let with_bytes = EventData::new("T", b"x".to_vec())
        .with_metadata(Metadata::new().with("k", "v").with_bytes(vec![0, 0xff, 7]));
    let only_corr = EventData::new("T", b"x".to_vec())
        .with_metadata(Metadata::new().with_correlation_id(Uuid::from_u128(9)));
    let only_cause = EventData::new("T", b"x".to_vec())
        .with_metadata(Metadata::new().with_causation_id(Uuid::from_u128(9)));
    for (stream, e) in [
        ("saga-ai-scoring-ü", full_event()),
        ("s", bare_event()),
        ("s", only_corr),
        ("s", only_cause),
        ("s", with_bytes),
    ] {
        let mut rec = Vec::new();
        encode_record(&mut rec, stream, 17, 0x1122_3344_5566_7788, &e);
        check_record(&rec, stream, 17, 0x1122_3344_5566_7788, &e);
        let (view, n) = evlog::wire::record::decode_record(&rec, 0).unwrap();
        assert_eq!(n, rec.len());
        assert!(view.same_content(&e));
        assert_eq!((view.stream, view.version), (stream, 17));
    }
}

// ---------------------------------------------------------------------------------------------
// Index files and the checkpoint.

/// Three events in two frames: rel 0 and 1 of stream "b" (types "Paid", "Placed") in the frame
/// at 64, rel 2 of stream "a" (type "Paid") in the frame at 0x01020304; with the name tables
/// when `names`.
fn sample_index(names: bool) -> (Vec<u8>, Vec<FrameEntry>, Vec<StreamEntry>, Vec<IdEntry>) {
    let frames = vec![
        FrameEntry {
            rel_first: 0,
            offset: 64,
        },
        FrameEntry {
            rel_first: 2,
            offset: 0x0102_0304,
        },
    ];
    let mut entries = vec![
        StreamEntry {
            hash: stream_hash("b"),
            version: 0,
            rel_pos: 0,
            frame_offset: 64,
        },
        StreamEntry {
            hash: stream_hash("b"),
            version: 1,
            rel_pos: 1,
            frame_offset: 64,
        },
        StreamEntry {
            hash: stream_hash("a"),
            version: 0x0506_0708_090a_0b0c,
            rel_pos: 2,
            frame_offset: 0x0102_0304,
        },
    ];
    entries.sort();
    let mut ids = vec![
        IdEntry {
            id: [0xff; 16],
            rel_pos: 0,
        },
        IdEntry {
            id: [0x01; 16],
            rel_pos: 1,
        },
        IdEntry {
            id: *Uuid::from_u128(0x77).as_bytes(),
            rel_pos: 2,
        },
    ];
    ids.sort();
    let mut nb = NamesBuilder::new();
    for (stream, event_type, rel_pos, frame_offset) in [
        ("b", "Paid", 0, 64),
        ("b", "Placed", 1, 64),
        ("a", "Paid", 2, 0x0102_0304),
    ] {
        let at = EventAt {
            rel_pos,
            frame_offset,
        };
        nb.push(stream, event_type, at);
    }
    let b = encode_index(
        0x1112_1314_1516_1718,
        0x2122_2324,
        0x3132_3334,
        &frames,
        &entries,
        &ids,
        names.then_some(&nb),
    );
    (b, frames, entries, ids)
}

#[test]
fn index_file_fields_are_where_the_spec_says() {
    let (b, frames, entries, ids) = sample_index(true);
    let h = &b[0..64];
    let values = HashMap::from([
        ("magic", b"EVLOGIDX".to_vec()),
        ("version", le(2, 2)),
        ("flags", le(1, 2)),
        ("type_count", le(2, 4)),
        ("typed_count", le(3, 4)),
        ("stream_count", le(2, 4)),
        ("names_len", le(12, 4)),
        ("frame_count", le(2, 4)),
        ("first_position", le(0x1112_1314_1516_1718, 8)),
        ("event_count", le(3, 4)),
        ("covered_len", le(0x2122_2324, 4)),
        ("covered_crc", le(0x3132_3334, 4)),
        ("body_crc", le(crc(&b[64..]).into(), 4)),
        ("bloom_blocks", le(1, 4)),
        ("header_crc", le(crc(&h[0..60]).into(), 4)),
    ]);
    check_fields("index-header", h, &values);
    assert_eq!(
        b.len(),
        64 + 8 * 2 + 44 * 3 + 64 + 12 * 2 + 8 * 3 + 8 * 2 + 12,
        "64 + 8·frame_count + 44·event_count + 64·bloom_blocks \
         + 12·type_count + 8·typed_count + 8·stream_count + names_len"
    );
    let mut at = 64;
    for f in &frames {
        let v = HashMap::from([
            ("rel_first", le(f.rel_first.into(), 4)),
            ("offset", le(f.offset.into(), 4)),
        ]);
        check_fields("index-frame-entry", &b[at..at + 8], &v);
        at += 8;
    }
    for e in &entries {
        let v = HashMap::from([
            ("hash", le(e.hash, 8)),
            ("version", le(e.version, 8)),
            ("rel_pos", le(e.rel_pos.into(), 4)),
            ("frame_offset", le(e.frame_offset.into(), 4)),
        ]);
        check_fields("index-stream-entry", &b[at..at + 24], &v);
        at += 24;
    }
    for i in &ids {
        let v = HashMap::from([("id", i.id.to_vec()), ("rel_pos", le(i.rel_pos.into(), 4))]);
        check_fields("index-id-entry", &b[at..at + 20], &v);
        at += 20;
    }
    assert_eq!(
        &b[at..at + 64],
        &spec_bloom_filter(&ids, 1)[..],
        "the Bloom filter, per § 8.3"
    );
    at += 64;
    // § 8.4: types sorted by name, each with its run; then the runs; then the stream ids
    // sorted; then the names back to back.
    for (name_at, name_len, first) in [(0u64, 4u64, 0u64), (4, 6, 2)] {
        let v = HashMap::from([
            ("name_at", le(name_at, 4)),
            ("name_len", le(name_len, 4)),
            ("first", le(first, 4)),
        ]);
        check_fields("index-type-entry", &b[at..at + 12], &v);
        at += 12;
    }
    for (rel_pos, frame_offset) in [(0u64, 64u64), (2, 0x0102_0304), (1, 64)] {
        let v = HashMap::from([
            ("rel_pos", le(rel_pos, 4)),
            ("frame_offset", le(frame_offset, 4)),
        ]);
        check_fields("index-type-event-entry", &b[at..at + 8], &v);
        at += 8;
    }
    for (name_at, name_len) in [(10u64, 1u64), (11, 1)] {
        let v = HashMap::from([("name_at", le(name_at, 4)), ("name_len", le(name_len, 4))]);
        check_fields("index-stream-name-entry", &b[at..at + 8], &v);
        at += 8;
    }
    assert_eq!(&b[at..], b"PaidPlacedab", "the name area");
    let hd = IndexHeader::decode(&b).unwrap();
    assert_eq!(hd.file_len(), b.len());
    check_index_body(&b, &hd).unwrap();
    let v = index_file::IndexView::new(&b).unwrap();
    assert!(v.has_names());
    let paid = v.find_type(b"Paid").unwrap();
    let at: Vec<u32> = v
        .type_events(paid)
        .map(|j| v.type_event(j).rel_pos)
        .collect();
    assert_eq!(at, [0, 2]);
    assert_eq!(v.find_type(b"Pai"), None);
    assert_eq!(v.streams_with_prefix(b"").len(), 2);
    assert_eq!(v.stream_name(v.streams_with_prefix(b"b").start), b"b");
    // Sorted as the spec says: stream entries by (hash, version, rel_pos), ids by bytes.
    assert!(
        entries
            .windows(2)
            .all(|w| (w[0].hash, w[0].version, w[0].rel_pos)
                < (w[1].hash, w[1].version, w[1].rel_pos))
    );
    assert!(ids.windows(2).all(|w| w[0].id < w[1].id));
}

#[test]
fn checkpoint_fields_are_where_the_spec_says() {
    let (index, ..) = sample_index(false);
    let streams = [("order-1", 0x0102_0304_0506_0708u64), ("saga-ü", 0)];
    let filter: Vec<u8> = (0..128u8).collect();
    let b = encode_checkpoint(
        0x4142_4344_4546_4748,
        0x5152_5354,
        streams.iter().copied(),
        &index,
        Some(checkpoint::IdFilter {
            segment_first_position: 0x6162_6364_6566_6768,
            blocks: &filter,
        }),
    );
    let h = &b[0..64];
    let names_len: usize = streams.iter().map(|(s, _)| s.len()).sum();
    let values = HashMap::from([
        ("magic", b"EVLOGCKP".to_vec()),
        ("version", le(3, 2)),
        ("stream_count", le(2, 4)),
        ("names_len", le(names_len as u64, 8)),
        ("next_position", le(0x4142_4344_4546_4748, 8)),
        ("last_frame_header_crc", le(0x5152_5354, 4)),
        ("id_filter_blocks", le(2, 4)),
        ("id_filter_segment", le(0x6162_6364_6566_6768, 8)),
        ("body_len", le((b.len() - 64) as u64, 8)),
        ("body_crc", le(crc(&b[64..]).into(), 4)),
        ("header_crc", le(crc(&h[0..60]).into(), 4)),
    ]);
    check_fields("checkpoint-header", h, &values);
    // The stream table: fixed entries sorted by (hash, id) as the spec's table says, then the
    // ids in that order, the filter, and the index file to the end.
    let mut sorted: Vec<(u64, &str, u64)> = streams
        .iter()
        .map(|&(s, v)| (stream_hash(s), s, v))
        .collect();
    sorted.sort_by(|a, b| (a.0, a.1.as_bytes()).cmp(&(b.0, b.1.as_bytes())));
    let mut name_at = 0u64;
    for (i, &(hash, s, v)) in sorted.iter().enumerate() {
        let e = &b[64 + 24 * i..64 + 24 * (i + 1)];
        let values = HashMap::from([
            ("stream_hash", le(hash, 8)),
            ("last_version", le(v, 8)),
            ("name_offset", le(name_at, 4)),
            ("name_len", le(s.len() as u64, 2)),
        ]);
        check_fields("checkpoint-stream-entry", e, &values);
        name_at += s.len() as u64;
    }
    let mut at = 64 + 24 * sorted.len();
    for &(_, s, _) in &sorted {
        assert_eq!(&b[at..at + s.len()], s.as_bytes());
        at += s.len();
    }
    assert_eq!(&b[at..at + 128], &filter[..]);
    assert_eq!(&b[at + 128..], &index[..]);
    let c = decode_checkpoint(&b).unwrap();
    let mut got: Vec<(&str, u64)> = c.streams.iter().collect();
    got.sort();
    assert_eq!(got, streams.to_vec());
    for (s, v) in streams {
        assert_eq!(c.streams.get(s), Some(v));
    }
    assert_eq!(c.streams.get("order-2"), None);
    assert_eq!(c.index, &index[..]);
    // Version 2: the list of the spec's older table, in the order given, no stream ids region.
    let v2 = checkpoint::encode_checkpoint_v2(1, 2, streams.iter().copied(), &index, None);
    assert_eq!(&v2[8..10], &le(2, 2)[..]);
    let rows = table("checkpoint-stream-entry-v2");
    let names: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(names, ["stream_len", "stream", "last_version"]);
    let mut at = 64;
    for (s, v) in streams {
        assert_eq!(&v2[at..at + 2], &le(s.len() as u64, 2)[..]);
        assert_eq!(&v2[at + 2..at + 2 + s.len()], s.as_bytes());
        assert_eq!(&v2[at + 2 + s.len()..at + 10 + s.len()], &le(v, 8)[..]);
        at += 10 + s.len();
    }
    assert_eq!(&v2[at..], &index[..]);
    let c2 = decode_checkpoint(&v2).unwrap();
    assert_eq!(c2.streams.iter().collect::<Vec<_>>(), streams.to_vec());
    assert_eq!(c2.streams.get("saga-ü"), Some(0));
    let f = c.id_filter.unwrap();
    assert_eq!(
        (f.segment_first_position, f.blocks),
        (0x6162_6364_6566_6768, &filter[..])
    );
    // Version 1 (no filter: its bytes 28..32 and 44..52 are reserved) is still read.
    let v1 = checkpoint::encode_checkpoint_v2(1, 2, streams.iter().copied(), &index, None);
    let mut old = v1.clone();
    old[8..10].copy_from_slice(&1u16.to_le_bytes());
    let crc_h = crc(&old[0..60]);
    old[60..64].copy_from_slice(&crc_h.to_le_bytes());
    let c = decode_checkpoint(&old).unwrap();
    assert_eq!((c.id_filter, c.index), (None, &index[..]));
    // A filter longer than the body is refused.
    let mut bad = b.clone();
    bad[28..32].copy_from_slice(&u32::MAX.to_le_bytes());
    let crc_h = crc(&bad[0..60]);
    bad[60..64].copy_from_slice(&crc_h.to_le_bytes());
    assert_eq!(
        decode_checkpoint(&bad).unwrap_err().what,
        "checkpoint id filter blocks"
    );
}

/// Recomputes a checkpoint's body and header checksums after a test changed its bytes.
fn reseal_checkpoint(b: &mut [u8]) {
    let body = crc(&b[64..]);
    b[40..44].copy_from_slice(&body.to_le_bytes());
    let h = crc(&b[0..60]);
    b[60..64].copy_from_slice(&h.to_le_bytes());
}

#[test]
fn checkpoint_stream_tables_that_break_the_spec_are_refused() {
    let (index, ..) = sample_index(false);
    let streams = [("order-1", 4u64), ("saga-ü", 0), ("payment-7", 9)];
    let good = encode_checkpoint(9, 1, streams.iter().copied(), &index, None);
    let c = decode_checkpoint(&good).unwrap();
    let order: Vec<&str> = c.streams.iter().map(|(s, _)| s).collect();
    let cut = order.iter().position(|s| *s == "saga-ü").unwrap();
    let entry = |i: usize| 64 + 24 * i;
    type Damage = Box<dyn Fn(&mut Vec<u8>)>;
    let cases: Vec<(&str, Damage)> = vec![
        (
            "checkpoint stream table order",
            Box::new(move |b: &mut Vec<u8>| {
                // The first two entries swapped, with their ids (offsets written anew).
                let names_at = entry(3);
                let parts: Vec<(Vec<u8>, Vec<u8>)> = [1, 0, 2]
                    .iter()
                    .map(|&i| {
                        let e = b[entry(i)..entry(i) + 24].to_vec();
                        let at = u32::from_le_bytes(e[16..20].try_into().unwrap()) as usize;
                        let len = u16::from_le_bytes(e[20..22].try_into().unwrap()) as usize;
                        (e, b[names_at + at..names_at + at + len].to_vec())
                    })
                    .collect();
                let mut name_at = 0u32;
                for (i, (e, name)) in parts.iter().enumerate() {
                    b[entry(i)..entry(i) + 24].copy_from_slice(e);
                    b[entry(i) + 16..entry(i) + 20].copy_from_slice(&name_at.to_le_bytes());
                    let at = names_at + name_at as usize;
                    b[at..at + name.len()].copy_from_slice(name);
                    name_at += name.len() as u32;
                }
            }),
        ),
        (
            "checkpoint stream hash",
            Box::new(move |b: &mut Vec<u8>| b[entry(1)] ^= 1),
        ),
        (
            "checkpoint stream entry reserved",
            Box::new(move |b: &mut Vec<u8>| b[entry(2) + 22] = 1),
        ),
        (
            "checkpoint stream name offset",
            Box::new(move |b: &mut Vec<u8>| b[entry(1) + 16] += 1),
        ),
        (
            "checkpoint stream id length",
            Box::new(move |b: &mut Vec<u8>| b[entry(0) + 20..entry(0) + 22].fill(0)),
        ),
        (
            "checkpoint stream id (UTF-8)",
            // The id "saga-ü" cut inside the ü.
            Box::new(move |b: &mut Vec<u8>| b[entry(cut) + 20] -= 1),
        ),
        (
            "checkpoint stream names length",
            Box::new(move |b: &mut Vec<u8>| b[52] += 1),
        ),
        (
            "checkpoint stream count",
            Box::new(move |b: &mut Vec<u8>| b[12..16].copy_from_slice(&u32::MAX.to_le_bytes())),
        ),
    ];
    for (what, damage) in cases {
        let mut b = good.clone();
        damage(&mut b);
        reseal_checkpoint(&mut b);
        assert_eq!(decode_checkpoint(&b).unwrap_err().what, what);
    }
}

/// The id Bloom filter as § 8.3 describes it, written independently of the code.
fn spec_bloom_filter(ids: &[IdEntry], blocks: u32) -> Vec<u8> {
    fn mix(mut z: u64) -> u64 {
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    let mut f = vec![0u8; 64 * blocks as usize];
    for i in ids {
        let lo = u64::from_le_bytes(i.id[0..8].try_into().unwrap());
        let hi = u64::from_le_bytes(i.id[8..16].try_into().unwrap());
        let h1 = mix(lo ^ mix(hi));
        let h2 = mix(h1 ^ 0x9e37_79b9_7f4a_7c15);
        let block = (h1 % u64::from(blocks)) as usize;
        for k in 0..6 {
            let bit = ((h2 >> (9 * k)) & 511) as usize;
            f[64 * block + bit / 8] |= 1 << (bit % 8);
        }
    }
    f
}

#[test]
fn bloom_filter_is_sized_and_filled_as_the_spec_says() {
    for n in [0usize, 1, 51, 52, 53, 1000] {
        let want = (n * 10).div_ceil(512).max(1) as u32;
        assert_eq!(index_file::bloom_blocks_for(n), want, "{n} ids");
    }
    // 120 ids: 3 blocks, so the block choice matters.
    let mut ids: Vec<IdEntry> = (0..120u32)
        .map(|k| IdEntry {
            id: *Uuid::from_u128(
                0x6576_6c6f_6700_4000_8000_0000_0000_0000 + u128::from(k) * 0x1_0001,
            )
            .as_bytes(),
            rel_pos: k,
        })
        .collect();
    ids.sort();
    let mut entries: Vec<StreamEntry> = (0..120u32)
        .map(|k| StreamEntry {
            hash: 1,
            version: u64::from(k),
            rel_pos: k,
            frame_offset: 64,
        })
        .collect();
    entries.sort();
    let frames = [FrameEntry {
        rel_first: 0,
        offset: 64,
    }];
    let b = encode_index(0, 64, 0, &frames, &entries, &ids, None);
    let h = IndexHeader::decode(&b).unwrap();
    assert_eq!(h.bloom_blocks, 3);
    let at = 64 + 8 + 44 * 120;
    assert_eq!(&b[at..], &spec_bloom_filter(&ids, 3)[..]);
    let v = index_file::IndexView::new(&b).unwrap();
    for i in &ids {
        assert_eq!(v.find_id(&i.id), Some(i.rel_pos));
    }
}

#[test]
fn an_index_without_bloom_filter_still_decodes() {
    // The layout written before the filter existed (§ 19): bloom_blocks = 0, no filter bytes.
    let (b, _, _, ids) = sample_index(false);
    let mut old = b[..b.len() - 64].to_vec();
    old[40..44].fill(0);
    let body_crc = crc(&old[64..]);
    old[36..40].copy_from_slice(&body_crc.to_le_bytes());
    let header_crc = crc(&old[0..60]);
    old[60..64].copy_from_slice(&header_crc.to_le_bytes());
    let v = index_file::IndexView::new(&old).unwrap();
    assert_eq!(v.header.bloom_blocks, 0);
    check_index_body(&old, &v.header).unwrap();
    for i in &ids {
        assert_eq!(v.find_id(&i.id), Some(i.rel_pos));
    }
}

// ---------------------------------------------------------------------------------------------
// Claims of the spec's prose.

#[test]
fn all_zero_regions_never_decode() {
    let z = vec![0u8; 4096];
    assert!(SegmentHeader::decode(&z).is_err());
    assert!(SegmentFooter::decode(&z[..64]).is_err());
    assert!(FrameHeader::decode(&z).is_err());
    assert!(check_frame(&z).is_err());
    assert!(IndexHeader::decode(&z[..64]).is_err());
    assert!(decode_checkpoint(&z[..64]).is_err());
    // Even with the right magic, zeros fail the header checksum.
    let mut f = z.clone();
    f[0..4].copy_from_slice(b"EVFR");
    let e = FrameHeader::decode(&f).unwrap_err();
    assert_eq!((e.at, e.what), (28, "frame header checksum"));
}

#[test]
fn frame_checks_report_the_offsets_the_spec_gives() {
    let mut buf = Vec::new();
    let start = begin_frame(&mut buf);
    encode_record(&mut buf, "s", 0, 1, &bare_event());
    finish_frame(&mut buf, start, 0, 1, 0);
    let len = buf.len();
    let damage = |at: usize| {
        let mut b = buf.clone();
        b[at] ^= 1;
        check_frame(&b).unwrap_err()
    };
    assert_eq!(damage(0).at, 0); // magic
    for at in [4, 8, 12, 16, 24, 28] {
        assert_eq!(damage(at).what, "frame header checksum", "byte {at}");
        assert_eq!(damage(at).at, 28);
    }
    assert_eq!(
        (damage(40).at, damage(40).what),
        (24, "frame body checksum")
    );
    assert_eq!(
        (damage(len - 8).at, damage(len - 8).what),
        (len - 8, "frame trailer length")
    );
    assert_eq!(
        (damage(len - 2).at, damage(len - 2).what),
        (len - 4, "frame trailer checksum copy")
    );
    let e = check_frame(&buf[..len - 1]).unwrap_err();
    assert_eq!((e.at, e.what), (0, "frame extends past end of data"));
}

#[test]
fn frames_of_an_image_checked_whole_skip_only_their_checksums() {
    // § 10: a reader of a decompressed image checked against `data_crc` does not check the
    // frames' `header_crc` and `body_crc` again; every other check still runs.
    let mut buf = Vec::new();
    let start = begin_frame(&mut buf);
    encode_record(&mut buf, "s", 0, 1, &bare_event());
    finish_frame(&mut buf, start, 0, 1, 0);
    let len = buf.len();
    let damaged = |at: usize| {
        let mut b = buf.clone();
        b[at] ^= 1;
        b
    };
    // A body byte: only the body checksum sees it.
    let b = damaged(40);
    assert_eq!(check_frame(&b).unwrap_err().what, "frame body checksum");
    assert!(frame::check_frame_with(&b, false).is_ok());
    // A header byte the header checksum covers, and that no other check reads.
    let b = damaged(16);
    assert_eq!(check_frame(&b).unwrap_err().what, "frame header checksum");
    assert!(frame::check_frame_with(&b, false).is_ok());
    // The magic, the trailer's length and its copy of the header checksum are still checked.
    for (at, what) in [
        (0, "frame magic"),
        (len - 8, "frame trailer length"),
        (len - 2, "frame trailer checksum copy"),
    ] {
        let e = frame::check_frame_with(&damaged(at), false).unwrap_err();
        assert_eq!(e.what, what, "byte {at}");
    }
}

#[test]
fn spec_checksum_coverage_table_names_every_checksum_field() {
    // Every `*_crc` field of the field tables appears in the coverage table of § 10.
    let s = spec();
    let a = s.find("## 10. Checksums").unwrap();
    let b = a + s[a..].find("## 11.").unwrap();
    let coverage = &s[a..b];
    for t in [
        "segment-header",
        "segment-footer",
        "frame-header",
        "index-header",
        "checkpoint-header",
        "zseg-header",
    ] {
        for f in fields(t) {
            if f.name.ends_with("_crc") {
                assert!(
                    coverage.contains(&format!("`{}`", f.name)),
                    "§ 10 lacks {} of {t}",
                    f.name
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Compressed segments (§ 22).

#[test]
fn zseg_header_fields_are_where_the_spec_says() {
    let image: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    let z = zseg::compress_image(&image).unwrap();
    let layout = zseg::decode_zseg(&z).unwrap();
    let count = layout.blocks.len() as u64;
    let table_end = zseg::ZSEG_PREFIX_BYTES + count as usize * zseg::ZSEG_BLOCK_ENTRY_BYTES;
    let values = HashMap::from([
        ("magic", b"EVLOGZSG".to_vec()),
        ("version", le(1, 2)),
        ("block_raw_bytes", le(65536, 4)),
        ("image_len", le(image.len() as u64, 8)),
        ("block_count", le(image.len().div_ceil(65536) as u64, 4)),
        (
            "table_crc",
            le(crc(&z[zseg::ZSEG_PREFIX_BYTES..table_end]).into(), 4),
        ),
        ("header_crc", le(crc(&z[0..60]).into(), 4)),
    ]);
    check_fields("zseg-header", &z[..64], &values);
    // The copies of the segment header and footer, then the table, then the blocks.
    assert_eq!(&z[64..128], &image[..64]);
    assert_eq!(&z[128..192], &image[image.len() - 64..]);
    let mut at = table_end;
    for (i, b) in layout.blocks.iter().enumerate() {
        let e = zseg::ZSEG_PREFIX_BYTES + i * 8;
        let len = u32::from_le_bytes(z[e..e + 4].try_into().unwrap()) as usize;
        assert_eq!(b.offset as usize, at);
        assert_eq!(
            u32::from_le_bytes(z[e + 4..e + 8].try_into().unwrap()),
            crc(&z[at..at + len])
        );
        at += len;
    }
    assert_eq!(at, z.len());
    assert_eq!(zseg::decompress_image(&z).unwrap(), image);
}
