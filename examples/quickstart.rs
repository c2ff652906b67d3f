//! Appends events to a few streams, reads them back, reopens the store and verifies it, then
//! seals, compresses, replays and verifies it again.
//! Usage: `cargo run --release --example quickstart [DIR]` (a temporary directory by default).

use evlog::{Direction, EventData, ExpectedVersion, Metadata, ReadFilter, Store, Uuid};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tmp;
    let dir = match std::env::args().nth(1) {
        Some(d) => std::path::PathBuf::from(d),
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let store = Store::open(&dir)?;
    let correlation = Uuid::new_v4();
    for i in 0..1000u32 {
        let stream = format!("ai-result-{}", i % 10);
        let expected = match store.stream_version(&stream) {
            Some(v) => ExpectedVersion::Exact(v),
            None => ExpectedVersion::NoStream,
        };
        let payload = format!(r#"{{"score":{},"model":"risk-v2"}}"#, i % 100);
        let event = EventData::new("AIResultCompletedEvent", payload.into_bytes())
            .with_metadata(Metadata::new().with_correlation_id(correlation));
        store.append(&stream, expected, &[event])?;
    }
    let stream: Vec<_> = store
        .read_stream("ai-result-3", 0, Direction::Forward, usize::MAX)
        .collect::<Result<_, _>>()?;
    println!(
        "stream ai-result-3: {} events, last version {}",
        stream.len(),
        stream.last().map_or(0, |e| e.version)
    );
    let all = store
        .read_all(0, Direction::Forward, ReadFilter::all())
        .count();
    println!("store: {all} events in {} streams", store.stream_count());
    store.close()?;

    let store = Store::open(&dir)?;
    let report = store.verify()?;
    println!(
        "verify: {} segments, {} frames, {} events, {} problems",
        report.segments,
        report.frames,
        report.events,
        report.problems.len()
    );
    if !report.is_clean() {
        return Err("verify found problems".into());
    }

    // Seal the active segment and compress it; replay everything without copies.
    store.seal_active()?;
    let c = store.compress_sealed()?;
    println!(
        "compressed {} segment(s): {} -> {} bytes",
        c.segments, c.bytes_before, c.bytes_after
    );
    let mut payload_bytes = 0;
    let end = store.replay(0, u64::MAX, &ReadFilter::all(), |e| {
        payload_bytes += e.payload.len();
        std::ops::ControlFlow::Continue(())
    })?;
    println!(
        "replayed {} events ({payload_bytes} payload bytes) from the compressed store",
        end.events
    );
    let report = store.verify()?;
    if !report.is_clean() || end.events != all as u64 {
        return Err("the compressed store does not hold what was written".into());
    }
    println!(
        "verify after compression: {} segments ({} compressed), {} problems",
        report.segments,
        report.compressed_segments,
        report.problems.len()
    );
    Ok(())
}
