//! Video streams as they arrive (`src/media/video/record_reader.rs`): a GOP's QUIC stream from the
//! peer, in whatever chunks QUIC delivers, reassembled into records within a per-call byte budget.
//!
//! Input: `budget (1) || chunk (1) || stream`. The budget is 1 to 128 KiB (8 MiB, the call's, when
//! its top bit is set); the stream is pushed `chunk % 64 + 1` bytes at a time, keeping every record
//! (so the budget fills). Checks, against a plain parse of the whole stream: the records come out
//! whole, in order, equal to the parse's; a header or length error is the parse's error; the budget is never passed, a record's buffer never outgrows its announced length, and
//! every byte counted is given back once the records and the reader are gone; a stream that ends
//! between records finishes cleanly, and one that ends inside a record does not.
#![no_main]

use hail::media::video::record_reader::{RecordBudget, RecordError, RecordReader};
use hail::media::video::wire::{STREAM_HEADER_LEN, VideoWireError, parse_stream_header, record_len};
use hail_fuzz::Input;
use libfuzzer_sys::fuzz_target;

/// The records a whole stream holds, and how it ends: `Ok(true)` between records, `Ok(false)`
/// inside one, or the error that stops it.
fn parse(stream: &[u8]) -> (Vec<&[u8]>, Result<bool, VideoWireError>) {
    let mut records = Vec::new();
    let Some(header) = stream.get(..STREAM_HEADER_LEN) else { return (records, Ok(false)) };
    if let Err(e) = parse_stream_header(header.try_into().unwrap()) {
        return (records, Err(e));
    }
    let mut rest = &stream[STREAM_HEADER_LEN..];
    loop {
        if rest.is_empty() {
            return (records, Ok(true));
        }
        let Some(prefix) = rest.get(..4) else { return (records, Ok(false)) };
        let len = match record_len(prefix.try_into().unwrap()) {
            Ok(len) => len,
            Err(e) => return (records, Err(e)),
        };
        let Some(body) = rest.get(4..4 + len) else { return (records, Ok(false)) };
        records.push(body);
        rest = &rest[4 + len..];
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let b = input.u8();
    let cap = if b & 0x80 != 0 { 8 << 20 } else { (b as usize + 1) * 1024 };
    let chunk = (input.u8() % 64) as usize + 1;
    let stream = input.rest();
    let (expected, end) = parse(stream);

    let budget = RecordBudget::new(cap);
    let mut reader = RecordReader::new(budget.clone());
    let mut got = Vec::new();
    let mut error = None;
    for piece in stream.chunks(chunk) {
        match reader.push(piece) {
            Ok(records) => got.extend(records),
            Err(e) => {
                error = Some(e);
                break;
            }
        }
        assert!(budget.held() <= cap);
        if let Some(len) = expected.get(got.len()).map(|r| r.len()) {
            assert!(reader.buffer_capacity() <= len.max(1), "a buffer past its record's length");
        }
    }
    assert!(got.len() <= expected.len());
    for (g, e) in got.iter().zip(&expected) {
        assert_eq!(g.body(), *e);
    }
    match (&error, &end) {
        (None, Ok(between)) => {
            assert_eq!(got.len(), expected.len());
            assert_eq!(reader.finish().is_ok(), *between && stream.len() >= STREAM_HEADER_LEN);
        }
        (Some(RecordError::Wire(e)), Err(expected_error)) => {
            // Records completed by the chunk that carries the error go with the stream, which is
            // stopped: fewer records, never other ones.
            assert_eq!(e, expected_error);
        }
        (Some(RecordError::OverBudget { cap: c }), _) => assert_eq!(*c, cap),
        (e, end) => panic!("the reader ended with {e:?}, the parse with {end:?}"),
    }
    drop(got);
    drop(reader);
    assert_eq!(budget.held(), 0, "every byte counted is given back");
});
