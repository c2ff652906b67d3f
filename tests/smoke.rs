use evlog::*;

#[test]
fn append_read_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions::new().segment_bytes(4096);
    {
        let s = opts.open(dir.path()).unwrap();
        for i in 0..200u64 {
            let st = format!("s-{}", i % 7);
            let e = EventData::new("T", format!("payload {i}").into_bytes());
            s.append(&st, ExpectedVersion::Any, &[e]).unwrap();
        }
        let all: Vec<_> = s
            .read_all(0, Direction::Forward, ReadFilter::all())
            .collect::<Result<_>>()
            .unwrap();
        assert_eq!(all.len(), 200);
        assert!(all.iter().enumerate().all(|(i, e)| e.position == i as u64));
        let back: Vec<_> = s
            .read_all(u64::MAX, Direction::Backward, ReadFilter::all())
            .collect::<Result<_>>()
            .unwrap();
        assert_eq!(back.len(), 200);
        let st: Vec<_> = s
            .read_stream("s-3", 0, Direction::Forward, usize::MAX)
            .collect::<Result<_>>()
            .unwrap();
        assert_eq!(st.len(), 29);
        assert!(st.iter().enumerate().all(|(i, e)| e.version == i as u64));
        let rep = s.verify().unwrap();
        assert!(rep.is_clean(), "{rep:?}");
        s.close().unwrap();
    }
    let s = opts.open(dir.path()).unwrap();
    assert_eq!(s.head_position(), Some(199));
    assert_eq!(s.stream_version("s-3"), Some(28));
    let all: Vec<_> = s
        .read_all(0, Direction::Forward, ReadFilter::all())
        .collect::<Result<_>>()
        .unwrap();
    assert_eq!(all.len(), 200);
    let rep = s.verify().unwrap();
    assert!(rep.is_clean(), "{rep:?}");
}
