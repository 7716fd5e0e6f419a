//! Envelope text that arrives in pieces (a large file from Git's pipe or
//! from disk), parsed as it comes: the base64 ciphertext is decoded piece
//! by piece, so the text is never held whole, only the ciphertext's bytes
//! (three quarters of the text).
//!
//! A small JSON tokenizer finds the top-level `"ciphertext"` string. Everything
//! else, the head before that string and the tail after it (a few hundred
//! bytes), is parsed at the end by the strict [`parse`] with an empty
//! ciphertext in its place, so what is accepted and what is refused is what
//! [`parse`] decides for the whole text. Text in which the tokenizer finds
//! no such string (a key spelled with escapes, no ciphertext at all) is
//! kept whole and given to [`parse`] as it is.

use std::io::{self, Read};
use std::sync::mpsc;

use super::format::{parse, Envelope, FormatError};

/// A push parser: [`Reader::push`] each piece, then [`Reader::finish`].
pub struct Reader {
    stage: Stage,
    /// The text up to and including the ciphertext's opening quote (all of
    /// it while the ciphertext has not been found).
    head: Vec<u8>,
    /// The text from the ciphertext's closing quote on.
    tail: Vec<u8>,
    tokens: Tokens,
    ciphertext: Vec<u8>,
    /// Base64 characters not decoded yet: less than a group, or a padded
    /// group that must be the last.
    carry: Vec<u8>,
    /// An escape sequence inside the ciphertext string, after its `\`.
    escape: Option<Vec<u8>>,
    /// The ciphertext is not canonical base64 (reported by `finish`, in
    /// the order [`parse`] checks fields).
    bad_base64: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    Head,
    Ciphertext,
    Tail,
}

/// Where the tokenizer is in the head.
#[derive(Default)]
struct Tokens {
    depth: usize,
    in_string: bool,
    escaped: bool,
    /// Where the current string's characters start in the head.
    string_start: usize,
    after: After,
}

/// What follows a top-level `"ciphertext"` string so far.
#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum After {
    #[default]
    Nothing,
    /// The key; a `:` is next.
    Key,
    /// The key and its colon; the value's opening quote is next.
    Colon,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("ciphertext_len", &self.ciphertext.len())
            .finish_non_exhaustive()
    }
}

impl Default for Reader {
    fn default() -> Reader {
        Reader::new(0)
    }
}

impl Reader {
    /// `text_len`: the text's expected length, if known (0 if not), to size
    /// the ciphertext once.
    pub fn new(text_len: usize) -> Reader {
        Reader {
            stage: Stage::Head,
            head: Vec::new(),
            tail: Vec::new(),
            tokens: Tokens::default(),
            ciphertext: Vec::with_capacity(text_len / 4 * 3),
            carry: Vec::new(),
            escape: None,
            bad_base64: false,
        }
    }

    /// The next piece of the text.
    pub fn push(&mut self, mut piece: &[u8]) {
        while !piece.is_empty() {
            piece = match self.stage {
                Stage::Head => self.push_head(piece),
                Stage::Ciphertext => self.push_ciphertext(piece),
                Stage::Tail => {
                    self.tail.extend_from_slice(piece);
                    &[]
                }
            };
        }
    }

    /// Once the ciphertext has begun: the fields before it, as an envelope
    /// with an empty ciphertext and a zero tag, enough to unwrap the DEK
    /// while the ciphertext is still arriving; or why they do not parse
    /// alone (a field the envelope needs comes after the ciphertext).
    /// `None` before then. [`Reader::finish`] still decides what the whole
    /// text is.
    pub fn head(&self) -> Option<Result<Envelope, FormatError>> {
        if self.stage == Stage::Head {
            return None;
        }
        // The head ends inside the ciphertext's string: close it, and
        // stand in for the tag (a tag already in the head is a duplicate,
        // which `parse` refuses).
        let mut text = self.head.clone();
        text.extend_from_slice(br#"", "tag": "AAAAAAAAAAAAAAAAAAAAAA=="}"#);
        Some(parse(&text))
    }

    /// The ciphertext decoded so far, to be taken away piece by piece
    /// (emptied, not freed, so the next piece reuses its memory): what is
    /// still in it at [`Reader::finish`] is the envelope's ciphertext.
    pub fn decoded(&mut self) -> &mut Vec<u8> {
        &mut self.ciphertext
    }

    /// The envelope, or why the whole text is not one.
    pub fn finish(mut self) -> Result<Envelope, FormatError> {
        match self.stage {
            Stage::Head => parse(&self.head),
            // Cut inside the ciphertext string: what `parse` says of the
            // text with the ciphertext left out.
            Stage::Ciphertext => parse(&self.head),
            Stage::Tail => {
                let mut skeleton = std::mem::take(&mut self.head);
                skeleton.extend_from_slice(&self.tail);
                let mut env = parse(&skeleton)?;
                let carry = std::mem::take(&mut self.carry);
                self.decode(&carry);
                if self.bad_base64 {
                    return Err(FormatError::Base64 {
                        field: "ciphertext".to_owned(),
                    });
                }
                env.ciphertext = self.ciphertext;
                Ok(env)
            }
        }
    }

    /// Tokenize head text up to the ciphertext's opening quote; returns
    /// what follows it.
    fn push_head<'p>(&mut self, piece: &'p [u8]) -> &'p [u8] {
        for (i, &b) in piece.iter().enumerate() {
            self.head.push(b);
            let t = &mut self.tokens;
            if t.in_string {
                if t.escaped {
                    t.escaped = false;
                } else if b == b'\\' {
                    t.escaped = true;
                } else if b == b'"' {
                    t.in_string = false;
                    let chars = &self.head[t.string_start..self.head.len() - 1];
                    if t.depth == 1 && chars == b"ciphertext" {
                        t.after = After::Key;
                    }
                }
                continue;
            }
            match (t.after, b) {
                (After::Key | After::Colon, b' ' | b'\t' | b'\n' | b'\r') => continue,
                (After::Key, b':') => {
                    t.after = After::Colon;
                    continue;
                }
                (After::Colon, b'"') => {
                    self.stage = Stage::Ciphertext;
                    return &piece[i + 1..];
                }
                _ => t.after = After::Nothing,
            }
            match b {
                b'"' => {
                    t.in_string = true;
                    t.string_start = self.head.len();
                }
                b'{' | b'[' => t.depth += 1,
                b'}' | b']' => t.depth = t.depth.saturating_sub(1),
                _ => {}
            }
        }
        &[]
    }

    /// Decode ciphertext characters up to the closing quote; returns what
    /// follows the string (the quote itself goes to the tail).
    fn push_ciphertext<'p>(&mut self, mut piece: &'p [u8]) -> &'p [u8] {
        if let Some(mut escape) = self.escape.take() {
            let (taken, rest) = take_escape(&mut escape, piece);
            piece = rest;
            match taken {
                Some(ch) => self.take_base64(&[ch]),
                None if escape_done(&escape) => self.bad_base64 = true,
                None => {
                    self.escape = Some(escape);
                    return piece;
                }
            }
        }
        match memchr::memchr2(b'"', b'\\', piece) {
            None => {
                self.take_base64(piece);
                &[]
            }
            Some(at) => {
                self.take_base64(&piece[..at]);
                if piece[at] == b'"' {
                    self.stage = Stage::Tail;
                    return &piece[at..];
                }
                self.escape = Some(Vec::new());
                &piece[at + 1..]
            }
        }
    }

    /// Base64 characters in order: whole groups are decoded now, a padded
    /// group only at the end.
    fn take_base64(&mut self, mut chars: &[u8]) {
        if self.bad_base64 || chars.is_empty() {
            return;
        }
        if !self.carry.is_empty() {
            let take = ((4 - self.carry.len() % 4) % 4).min(chars.len());
            self.carry.extend_from_slice(&chars[..take]);
            chars = &chars[take..];
            if self.carry.len() % 4 != 0 || chars.is_empty() {
                self.check_carry();
                return;
            }
            if self.carry.contains(&b'=') {
                // Padding, then more characters.
                self.fail_base64();
                return;
            }
            let carry = std::mem::take(&mut self.carry);
            self.decode(&carry);
        }
        let whole = match memchr::memchr(b'=', chars) {
            Some(at) => at / 4 * 4,
            None => chars.len() / 4 * 4,
        };
        self.decode(&chars[..whole]);
        self.carry.extend_from_slice(&chars[whole..]);
        self.check_carry();
    }

    /// The carry may hold one padded group, and nothing after it.
    fn check_carry(&mut self) {
        if self.carry.len() > 4 && self.carry.contains(&b'=') {
            self.fail_base64();
        }
    }

    fn decode(&mut self, chars: &[u8]) {
        if self.bad_base64 || chars.is_empty() {
            return;
        }
        if chars.len() % 4 != 0
            || base64_simd::STANDARD
                .decode_append(chars, &mut self.ciphertext)
                .is_err()
        {
            self.fail_base64();
        }
    }

    fn fail_base64(&mut self) {
        self.bad_base64 = true;
        self.ciphertext = Vec::new();
        self.carry = Vec::new();
    }
}

/// Read an envelope from `r` to its end (`text_len`: its length if known),
/// reading ahead on a second thread ([`read_ahead`]) so that copying the
/// text in (a quarter of a large file's decryption) and decoding its
/// base64 overlap.
pub fn read(
    r: &mut (dyn Read + Send),
    text_len: usize,
) -> io::Result<Result<Envelope, FormatError>> {
    let mut reader = Reader::new(text_len);
    read_ahead(r, 1 << 18, |piece| {
        reader.push(piece);
        Ok(())
    })?;
    Ok(reader.finish())
}

/// Read `r` to its end on a second thread, in pieces of up to `size`
/// bytes, and hand each to `each` on this one: reading the next piece
/// overlaps with what `each` does. Pieces go back to the reading thread to
/// be filled again, and are wiped at the end (they may hold plaintext).
pub fn read_ahead(
    r: &mut (dyn Read + Send),
    size: usize,
    mut each: impl FnMut(&mut [u8]) -> io::Result<()>,
) -> io::Result<()> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use zeroize::Zeroize;
    let (filled, full) = mpsc::sync_channel::<io::Result<(Vec<u8>, usize)>>(4);
    let (emptied, empty) = mpsc::channel::<Vec<u8>>();
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                let mut piece = empty.try_recv().unwrap_or_else(|_| vec![0; size]);
                let read = match r.read(&mut piece) {
                    Ok(0) => {
                        piece.zeroize();
                        break;
                    }
                    Ok(n) => Ok((piece, n)),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        piece.zeroize();
                        Err(e)
                    }
                };
                let last = read.is_err();
                if filled.send(read).is_err() || last {
                    break;
                }
            }
            // The loop below ends once `filled` is dropped.
            drop(filled);
            for mut piece in empty {
                piece.zeroize();
            }
        });
        let mut result = Ok(());
        for read in &full {
            match read {
                Ok((mut piece, n)) => {
                    if result.is_ok() {
                        result = each(&mut piece[..n]);
                        stop.store(result.is_err(), Ordering::Relaxed);
                    }
                    // Wiped there, at the end, if not filled again.
                    let _ = emptied.send(piece);
                }
                Err(e) => result = result.and(Err(e)),
            }
        }
        drop(emptied);
        result
    })
}

/// Continue a JSON escape (the bytes after its `\`) from `piece`: the
/// character it stands for once complete, and the rest of `piece`.
fn take_escape<'p>(escape: &mut Vec<u8>, piece: &'p [u8]) -> (Option<u8>, &'p [u8]) {
    let mut piece = piece;
    while !escape_done(escape) {
        let Some((&b, rest)) = piece.split_first() else {
            return (None, piece);
        };
        escape.push(b);
        piece = rest;
    }
    let ch = match escape.as_slice() {
        [b'/'] => Some(b'/'),
        [b'u', hex @ ..] => std::str::from_utf8(hex)
            .ok()
            .filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()))
            .and_then(|h| u16::from_str_radix(h, 16).ok())
            .and_then(|c| u8::try_from(c).ok())
            .filter(u8::is_ascii),
        // `\"`, `\\` and the control escapes are never base64.
        _ => None,
    };
    (ch, piece)
}

/// Has the escape all its bytes (`u` and four more, or one)?
fn escape_done(escape: &[u8]) -> bool {
    match escape.first() {
        None => false,
        Some(b'u') => escape.len() == 5,
        Some(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::format::write;
    use proptest::prelude::*;

    /// Reads at most a few bytes at a time, then fails if told to.
    struct Trickle {
        data: Vec<u8>,
        at: usize,
        fail_at_end: bool,
    }

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.at == self.data.len() && self.fail_at_end {
                return Err(io::Error::other("disk gone"));
            }
            let n = buf
                .len()
                .min(self.data.len() - self.at)
                .min(1 + self.at % 7);
            buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    /// What is read ahead arrives whole and in order, however short the
    /// reads; an error from either side stops it and is returned.
    #[test]
    fn read_ahead_hands_over_everything_in_order_and_stops_on_errors() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        let trickle = |fail_at_end| Trickle {
            data: data.clone(),
            at: 0,
            fail_at_end,
        };
        let mut got = Vec::new();
        read_ahead(&mut trickle(false), 64, |piece| {
            got.extend_from_slice(piece);
            Ok(())
        })
        .unwrap();
        assert!(got == data);

        let mut seen = 0;
        let err = read_ahead(&mut trickle(true), 64, |piece| {
            seen += piece.len();
            Ok(())
        })
        .unwrap_err();
        assert_eq!((err.to_string().as_str(), seen), ("disk gone", data.len()));

        let mut calls = 0;
        let err = read_ahead(&mut trickle(false), 64, |_| {
            calls += 1;
            Err(io::Error::other("pipe closed"))
        })
        .unwrap_err();
        assert_eq!((err.to_string().as_str(), calls), ("pipe closed", 1));
    }

    fn vectors() -> Vec<(String, Vec<u8>)> {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/envelope-v1");
        ["valid", "invalid"]
            .iter()
            .flat_map(|dir| std::fs::read_dir(format!("{root}/{dir}")).unwrap())
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "envelope"))
            .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
            .collect()
    }

    fn in_pieces(text: &[u8], cuts: &[usize]) -> Result<Envelope, FormatError> {
        let mut cuts: Vec<usize> = cuts.iter().map(|&c| c % (text.len() + 1)).collect();
        cuts.push(0);
        cuts.push(text.len());
        cuts.sort_unstable();
        let mut reader = Reader::new(0);
        for w in cuts.windows(2) {
            reader.push(&text[w[0]..w[1]]);
        }
        reader.finish()
    }

    /// The same verdict as `parse`: the same envelope, or an error.
    fn agrees(text: &[u8], cuts: &[usize]) -> Result<(), String> {
        match (parse(text), in_pieces(text, cuts)) {
            (Ok(a), Ok(b)) if a == b => Ok(()),
            (Err(_), Err(_)) => Ok(()),
            (a, b) => Err(format!(
                "parse: {:?}\nreader: {:?}",
                a.map(|e| e.ciphertext.len()),
                b.map(|e| e.ciphertext.len())
            )),
        }
    }

    #[test]
    fn every_vector_reads_as_parse_reads_it_in_any_pieces() {
        for (name, text) in vectors() {
            for step in [1, 2, 3, 5, 7, 64, 1000, 65516] {
                let cuts: Vec<usize> = (step..text.len()).step_by(step).collect();
                agrees(&text, &cuts)
                    .map_err(|e| format!("{name} step {step}: {e}"))
                    .unwrap();
            }
        }
    }

    #[test]
    fn ciphertext_with_escapes_padding_in_the_middle_and_cut_strings() {
        let (_, text) = vectors()
            .into_iter()
            .find(|(n, _)| n.ends_with("valid/binary-64k.envelope"))
            .unwrap();
        let text = String::from_utf8(text).unwrap();
        let start = text.find("\"ciphertext\": \"").unwrap() + 15;
        let end = start + text[start..].find('"').unwrap();
        let b64 = &text[start..end];
        let with = |value: &str| format!("{}{value}{}", &text[..start], &text[end..]);
        assert!(b64.contains('A') && b64.contains('/'));
        let escaped = b64.replacen('A', "\\u0041", 3).replacen('/', "\\/", 2);
        let padded_early = format!("AA=={b64}");
        let variants = [
            with(&escaped),
            with(&padded_early),
            with(&format!("{b64}\\n")),
            with(&format!("{b64}\\\"")),
            with(&format!("{b64}=")),
            with(&b64[..b64.len() - 1]),
            with(""),
            text[..start + 3].to_owned(),
            text.replacen("\"ciphertext\"", "\"ciph\\u0065rtext\"", 1),
            format!(
                "{}, \"ciphertext\": \"\"}}",
                text.trim_end().trim_end_matches('}')
            ),
        ];
        for v in &variants {
            for step in [1, 3, 4, 17] {
                let cuts: Vec<usize> = (step..v.len()).step_by(step).collect();
                agrees(v.as_bytes(), &cuts)
                    .map_err(|e| format!("{v}: {e}"))
                    .unwrap();
            }
        }
        assert!(in_pieces(with(&escaped).as_bytes(), &[]).is_ok());
    }

    proptest! {
        #[test]
        fn written_envelopes_read_back_in_any_pieces(
            content in proptest::collection::vec(any::<u8>(), 0..3000),
            aad in proptest::option::of(".{0,20}"),
            cuts in proptest::collection::vec(any::<usize>(), 0..8),
        ) {
            let (_, text) = vectors().into_iter().find(|(n, _)| n.ends_with("valid/text.envelope")).unwrap();
            let mut env = parse(&text).unwrap();
            env.ciphertext = content;
            env.aad = aad;
            let text = write(&env);
            prop_assert_eq!(in_pieces(&text, &cuts), Ok(env));
        }

        #[test]
        fn altered_text_reads_as_parse_reads_it(
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
            cuts in proptest::collection::vec(any::<usize>(), 0..8),
        ) {
            let (_, text) = vectors().into_iter().find(|(n, _)| n.ends_with("valid/with-aad.envelope")).unwrap();
            let mut text = text;
            for (at, b) in flips {
                let at = at % text.len();
                text[at] = b;
            }
            prop_assert!(agrees(&text, &cuts).is_ok(), "{}", agrees(&text, &cuts).unwrap_err());
        }
    }
}
