//! Control-socket lines (`src/control/line.rs`, `src/control/proto.rs`, `protocols/control-v1.md`):
//! the daemon reads request lines from any local client, the client reads the daemon's lines.
//!
//! Input: `max (1) || chunk (1) || stream`. The stream is split into lines by `LineReader` (cap
//! `max + 1`, delivered `chunk % 16 + 1` bytes at a time), each line is parsed as a request and as a
//! daemon line; the whole stream is parsed too. Checks: the line splitter agrees with a plain model
//! (lines over the cap are skipped whole, `\r\n` ends a line, a partial last line is dropped); a
//! request that parses prints as a request line that parses back equal; a refused request's error
//! line reads back, on the client, as the same error for the same id.
#![no_main]

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use hail::control::line::{Line, LineReader};
use hail::control::proto::{ServerLine, err_line, parse_request, parse_server_line};
use hail_fuzz::Input;
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncBufRead, AsyncRead, ReadBuf};

/// A reader that hands out at most `chunk` bytes per read, as a socket may.
struct Chunked<'a> {
    data: &'a [u8],
    chunk: usize,
}

impl AsyncRead for Chunked<'_> {
    fn poll_read(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let n = self.chunk.min(self.data.len()).min(buf.remaining());
        buf.put_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Poll::Ready(Ok(()))
    }
}

impl AsyncBufRead for Chunked<'_> {
    fn poll_fill_buf(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        let n = this.chunk.min(this.data.len());
        Poll::Ready(Ok(&this.data[..n]))
    }
    fn consume(mut self: Pin<&mut Self>, amt: usize) {
        self.data = &self.data[amt..];
    }
}

/// What the splitter should yield.
fn model(stream: &[u8], max: usize) -> Vec<Line> {
    let mut out = Vec::new();
    let mut rest = stream;
    while let Some(i) = rest.iter().position(|&b| b == b'\n') {
        let raw = &rest[..i];
        out.push(if raw.len() > max {
            Line::TooLong
        } else {
            Line::Complete(raw.strip_suffix(b"\r").unwrap_or(raw).to_vec())
        });
        rest = &rest[i + 1..];
    }
    out.push(Line::Eof);
    out
}

fn check_request(line: &[u8]) {
    match parse_request(line) {
        Ok((id, command)) => {
            let printed = command.to_line(id);
            assert_eq!(parse_request(printed.as_bytes()), Ok((id, command)), "{printed}");
        }
        Err(bad) => {
            let reply = err_line(bad.id, &bad.error);
            match parse_server_line(reply.as_bytes()) {
                Ok(ServerLine::Reply { id, result: Err(body), .. }) => {
                    assert_eq!(id, bad.id);
                    assert_eq!(body, bad.error);
                }
                other => panic!("our error line {reply} reads back as {other:?}"),
            }
        }
    }
    let _ = parse_server_line(line);
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let max = input.u8() as usize + 1;
    let chunk = (input.u8() % 16) as usize + 1;
    let stream = input.rest();
    let mut reader = LineReader::new(Chunked { data: stream, chunk }, max);
    let mut lines = Vec::new();
    loop {
        let line = futures::executor::block_on(reader.next_line()).expect("reading a slice cannot fail");
        let end = line == Line::Eof;
        if let Line::Complete(l) = &line {
            assert!(l.len() <= max);
            check_request(l);
        }
        lines.push(line);
        if end {
            break;
        }
    }
    assert_eq!(lines, model(stream, max));
    check_request(stream);
});
