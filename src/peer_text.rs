//! Text that came from a peer, made safe to show on a terminal.
//!
//! A peer chooses some of the words a user reads: the reason it gives when it refuses a call, the
//! reason it closes a connection with. Printed raw, such text could carry terminal escape
//! sequences (clear the screen, move the cursor, paint a fake "verified" in green), bidirectional
//! overrides that make `evil` read as `live`, or invisible characters. [`sanitize`] keeps
//! ordinary text of any script and removes all of that:
//!
//! - escape sequences as a whole: `ESC [ … final` (CSI), `ESC ] … BEL/ST` (OSC), `ESC P/X/^/_ … ST`
//!   (DCS, SOS, PM, APC), two- and three-character escapes, and their 8-bit C1 forms (U+009B, …);
//! - every other C0 control, DEL and C1 control (a tab or line break becomes a space: a reason is
//!   one line);
//! - bidirectional controls: U+202A–U+202E, U+2066–U+2069, U+200E, U+200F, U+061C;
//! - zero-width and invisible characters: U+200B–U+200D, U+2060–U+2064, U+FEFF, U+180E;
//!
//! and caps the result at [`MAX_CHARS`] characters (then an ellipsis).
//!
//! Peer text is sanitized where it enters the daemon (the signalling decoders) and again where the
//! CLI prints it.

use serde::{Deserialize, Deserializer};

/// The most characters of peer text kept (an ellipsis marks a cut).
pub const MAX_CHARS: usize = 200;

/// The ellipsis appended to text that was cut at [`MAX_CHARS`].
pub const ELLIPSIS: char = '…';

/// `text` without escape sequences, control, bidirectional or invisible characters, trimmed and
/// at most [`MAX_CHARS`] characters (plus [`ELLIPSIS`] when it was longer).
pub fn sanitize(text: &str) -> String {
    let mut out = String::new();
    let mut count = 0;
    let mut cut = false;
    for c in Visible::new(text) {
        let c = if is_line_control(c) { ' ' } else { c };
        if c.is_control() || is_invisible(c) || (c == ' ' && (count == 0 || count == MAX_CHARS || out.ends_with(' '))) {
            continue;
        }
        if count == MAX_CHARS {
            cut = true;
            break;
        }
        out.push(c);
        count += 1;
    }
    let trimmed = out.trim_end().len();
    out.truncate(trimmed);
    if cut {
        out.push(ELLIPSIS);
    }
    out
}

/// `text` without escape sequences, control characters and bidirectional controls, line breaks
/// and tabs kept, no length cap: what the CLI applies to every line it prints for people, so that
/// no field it forgets to [`sanitize`] can drive the terminal or reorder what it shows.
/// (Zero-width characters stay: our own emoji may join with them.)
pub fn strip_escapes(text: &str) -> String {
    Visible::new(text).filter(|c| (!c.is_control() || *c == '\n' || *c == '\t') && !is_bidi(*c)).collect()
}

/// Whether [`sanitize`] would leave `text` as it is.
pub fn is_clean(text: &str) -> bool {
    sanitize(text) == text
}

/// A serde `deserialize_with` helper: a string field from a peer, sanitized as it is decoded.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    String::deserialize(deserializer).map(|s| sanitize(&s))
}

fn is_line_control(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{0b}' | '\u{0c}' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

/// Bidirectional controls: embeddings, overrides, isolates and marks.
fn is_bidi(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}')
}

/// Bidirectional controls, and zero-width or invisible characters.
fn is_invisible(c: char) -> bool {
    is_bidi(c) || matches!(c, '\u{200b}'..='\u{200d}' | '\u{2060}'..='\u{2064}' | '\u{feff}' | '\u{180e}')
}

/// The characters of a text with its escape sequences (7-bit and C1 forms) left out whole; other
/// control characters pass through for the caller to judge.
struct Visible<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
}

impl<'a> Visible<'a> {
    fn new(text: &'a str) -> Self {
        Visible { chars: text.chars().peekable() }
    }

    /// Skips a control sequence's parameters and intermediates, and its final byte if it has one.
    fn skip_csi(&mut self) {
        while let Some(&c) = self.chars.peek() {
            match c {
                '\u{20}'..='\u{3f}' => {
                    self.chars.next();
                }
                '\u{40}'..='\u{7e}' => {
                    self.chars.next();
                    return;
                }
                // Not part of a well-formed sequence: the sequence ends here, the character stays.
                _ => return,
            }
        }
    }

    /// Skips a control string (OSC, DCS, SOS, PM, APC) up to its terminator: BEL, ST (`ESC \` or
    /// U+009C), or the end of the text.
    fn skip_string(&mut self) {
        while let Some(c) = self.chars.next() {
            match c {
                '\u{07}' | '\u{9c}' => return,
                '\u{1b}' => {
                    if self.chars.peek() == Some(&'\\') {
                        self.chars.next();
                    }
                    return;
                }
                _ => {}
            }
        }
    }

    /// After ESC: skips the rest of the sequence.
    fn skip_escape(&mut self) {
        match self.chars.peek().copied() {
            Some('[') => {
                self.chars.next();
                self.skip_csi();
            }
            Some(']' | 'P' | 'X' | '^' | '_') => {
                self.chars.next();
                self.skip_string();
            }
            Some('\u{20}'..='\u{2f}') => {
                // Intermediates, then one final character.
                while self.chars.peek().is_some_and(|c| ('\u{20}'..='\u{2f}').contains(c)) {
                    self.chars.next();
                }
                if self.chars.peek().is_some_and(|c| ('\u{30}'..='\u{7e}').contains(c)) {
                    self.chars.next();
                }
            }
            Some('\u{30}'..='\u{7e}') => {
                self.chars.next();
            }
            _ => {}
        }
    }
}

impl Iterator for Visible<'_> {
    type Item = char;

    fn next(&mut self) -> Option<char> {
        loop {
            let c = self.chars.next()?;
            match c {
                '\u{1b}' => self.skip_escape(),
                '\u{9b}' => self.skip_csi(),
                '\u{9d}' | '\u{90}' | '\u{98}' | '\u{9e}' | '\u{9f}' => self.skip_string(),
                _ => return Some(c),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_text_of_any_script_is_kept() {
        for text in ["not accepting calls", "Zoë n'est pas là", "忙しい", "مشغول الآن", "busy 🙂 ✅", "a  b"]
        {
            assert_eq!(sanitize(text), text.replace("  ", " "), "{text}");
        }
        assert!(is_clean("the call was declined"));
    }

    #[test]
    fn escape_sequences_are_removed_whole() {
        let cases = [
            ("\x1b[2J\x1b[H\x1b[1;32mverified\x1b[0m", "verified"),
            ("a\x1b]0;pwned title\x07b", "ab"),
            ("a\x1b]8;;https://evil.example\x1b\\link\x1b]8;;\x1b\\b", "alinkb"),
            ("a\x1bPq#0;2;0;0;0\x1b\\b", "ab"),
            ("a\x1bcb", "ab"),
            ("a\x1b(Bb", "ab"),
            ("a\u{9b}31mred\u{9b}0m", "ared"),
            ("a\u{9d}0;title\u{9c}b", "ab"),
            ("a\u{90}payload\u{9c}b", "ab"),
            ("trailing\x1b", "trailing"),
            ("trailing\x1b[", "trailing"),
            ("unterminated\x1b]0;title", "unterminated"),
            ("\x1b[?1049h\x1b[?25l", ""),
        ];
        for (hostile, clean) in cases {
            assert_eq!(sanitize(hostile), clean, "{hostile:?}");
        }
    }

    #[test]
    fn controls_bidi_overrides_and_invisible_characters_are_removed() {
        assert_eq!(sanitize("a\0b\x07c\x08d\x7fe\u{85}f\u{8f}g"), "abcde fg");
        assert_eq!(sanitize("line one\r\nline two\ttab"), "line one line two tab");
        assert_eq!(sanitize("\u{202e}evil\u{202c} \u{2067}x\u{2069}\u{200f}"), "evil x");
        assert_eq!(sanitize("zero\u{200b}width\u{200d}join\u{feff}\u{2060}"), "zerowidthjoin");
        assert_eq!(sanitize("\n\n  padded  \r\n"), "padded");
        for c in (0u32..0x20).chain(0x7f..0xa0).filter_map(char::from_u32) {
            assert!(!sanitize(&format!("x{c}y")).chars().any(char::is_control), "{c:?}");
        }
    }

    #[test]
    fn long_text_is_cut_with_an_ellipsis() {
        let long = "é".repeat(10_000);
        let cut = sanitize(&long);
        assert_eq!(cut.chars().count(), MAX_CHARS + 1);
        assert!(cut.ends_with(ELLIPSIS));
        let exact = "x".repeat(MAX_CHARS);
        assert_eq!(sanitize(&exact), exact, "exactly the cap is kept whole");
        // Stripped characters do not count towards the cap.
        let padded = format!("{}{}", "\x1b[0m".repeat(1000), "y".repeat(MAX_CHARS));
        assert_eq!(sanitize(&padded), "y".repeat(MAX_CHARS));
    }

    #[test]
    fn whole_lines_keep_their_breaks_but_lose_their_escapes() {
        assert_eq!(strip_escapes("Call\x1b[2K ended:\n\tnext\x07"), "Call ended:\n\tnext");
        assert_eq!(strip_escapes("\u{202e}🦊 fox\u{200d}"), "🦊 fox\u{200d}", "zero-width characters stay");
    }
}
