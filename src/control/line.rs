//! Reading newline-terminated lines with a length cap, without ever buffering more than the cap.

use std::io;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt};

/// What [`LineReader::next_line`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A complete line (without its `\n`).
    Complete(Vec<u8>),
    /// A line longer than the cap; it was read and thrown away up to its end.
    TooLong,
    /// The peer closed the stream (a partial last line is dropped).
    Eof,
}

/// Splits a byte stream into lines of at most `max` bytes. Cancel-safe: dropping a pending
/// `next_line` future loses nothing, so it can sit in a `select!`.
#[derive(Debug)]
pub struct LineReader<R> {
    reader: R,
    max: usize,
    buf: Vec<u8>,
    discarding: bool,
}

impl<R: AsyncBufRead + Unpin> LineReader<R> {
    /// Lines from `reader`, each at most `max` bytes.
    pub fn new(reader: R, max: usize) -> Self {
        LineReader { reader, max, buf: Vec::new(), discarding: false }
    }

    /// Exactly `out.len()` raw bytes (what follows a picture header), from where the last line
    /// ended. Not cancel-safe.
    pub async fn read_exact(&mut self, out: &mut [u8]) -> io::Result<()> {
        self.reader.read_exact(out).await.map(drop)
    }

    /// The next line.
    pub async fn next_line(&mut self) -> io::Result<Line> {
        loop {
            let available = self.reader.fill_buf().await?;
            if available.is_empty() {
                self.buf.clear();
                return Ok(Line::Eof);
            }
            let newline = available.iter().position(|&b| b == b'\n');
            let take = newline.map_or(available.len(), |i| i);
            if !self.discarding {
                if self.buf.len() + take > self.max {
                    self.discarding = true;
                    self.buf.clear();
                } else {
                    self.buf.extend_from_slice(&available[..take]);
                }
            }
            let consumed = newline.map_or(take, |i| i + 1);
            self.reader.consume(consumed);
            if newline.is_some() {
                if std::mem::take(&mut self.discarding) {
                    return Ok(Line::TooLong);
                }
                let mut line = std::mem::take(&mut self.buf);
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(Line::Complete(line));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn long_lines_are_skipped_and_the_next_line_still_reads() {
        let input: &[u8] = b"short\r\nxxxxxxxxxxxxxxxxxxxx\nok\npartial";
        let mut r = LineReader::new(input, 8);
        assert_eq!(r.next_line().await.unwrap(), Line::Complete(b"short".to_vec()));
        assert_eq!(r.next_line().await.unwrap(), Line::TooLong);
        assert_eq!(r.next_line().await.unwrap(), Line::Complete(b"ok".to_vec()));
        assert_eq!(r.next_line().await.unwrap(), Line::Eof);
    }
}
