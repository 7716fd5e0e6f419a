//! Git's pkt-line framing (gitprotocol-common): a 4-hex-digit length that
//! counts itself, then data; `0000` is a flush packet. Nothing else.

use std::io::{self, Read, Write};

/// Largest data payload in one packet (65520 - 4).
pub const MAX_DATA: usize = 65516;

#[derive(Debug, PartialEq, Eq)]
pub enum Packet {
    Flush,
    Data(Vec<u8>),
}

/// Read one packet; `Ok(None)` on a clean end of input before a packet.
pub fn read(r: &mut impl Read) -> io::Result<Option<Packet>> {
    let mut header = [0u8; 4];
    match r.read_exact(&mut header) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    match data_len(header)? {
        0 => Ok(Some(Packet::Flush)),
        len => {
            let mut data = vec![0u8; len];
            r.read_exact(&mut data)?;
            Ok(Some(Packet::Data(data)))
        }
    }
}

/// The data length a packet header announces (0: a flush).
fn data_len(header: [u8; 4]) -> io::Result<usize> {
    let len = std::str::from_utf8(&header)
        .ok()
        .and_then(|s| usize::from_str_radix(s, 16).ok())
        .ok_or_else(|| invalid(format!("bad pkt-line header {header:?}")))?;
    match len {
        0 => Ok(0),
        1..=4 => Err(invalid(format!("unsupported pkt-line length {len}"))),
        _ if len - 4 > MAX_DATA => Err(invalid(format!("pkt-line of {len} bytes is too long"))),
        _ => Ok(len - 4),
    }
}

/// Read packets up to a flush, appending their data to `out`.
pub fn read_until_flush(r: &mut impl Read, out: &mut Vec<u8>) -> io::Result<()> {
    loop {
        match read(r)? {
            Some(Packet::Flush) => return Ok(()),
            Some(Packet::Data(data)) => out.extend_from_slice(&data),
            None => return Err(io::ErrorKind::UnexpectedEof.into()),
        }
    }
}

/// Read packets into `out` until a flush (`true`) or until `out` holds at
/// least `limit` bytes (`false`: more is to come).
pub fn read_up_to(r: &mut impl Read, out: &mut Vec<u8>, limit: usize) -> io::Result<bool> {
    while out.len() < limit {
        match read(r)? {
            Some(Packet::Flush) => return Ok(true),
            Some(Packet::Data(data)) => out.extend_from_slice(&data),
            None => return Err(io::ErrorKind::UnexpectedEof.into()),
        }
    }
    Ok(false)
}

/// Read the next packet's data into `buf` (replacing what it held):
/// `false` at a flush.
pub fn read_data_into(r: &mut impl Read, buf: &mut Vec<u8>) -> io::Result<bool> {
    let mut header = [0u8; 4];
    r.read_exact(&mut header)?;
    match data_len(header)? {
        0 => Ok(false),
        len => {
            buf.resize(len, 0);
            r.read_exact(buf)?;
            Ok(true)
        }
    }
}

/// Content written as data packets of [`MAX_DATA`] bytes (the last one
/// shorter on [`Packets::finish`], which does not write the flush).
#[derive(Debug)]
pub struct Packets<W: Write> {
    w: W,
    buf: Vec<u8>,
}

impl<W: Write> Packets<W> {
    pub fn new(w: W) -> Packets<W> {
        Packets {
            w,
            buf: Vec::with_capacity(MAX_DATA),
        }
    }

    pub fn finish(mut self) -> io::Result<W> {
        if !self.buf.is_empty() {
            write_data(&mut self.w, &self.buf)?;
        }
        Ok(self.w)
    }
}

impl<W: Write> Write for Packets<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let take = data.len().min(MAX_DATA - self.buf.len());
        self.buf.extend_from_slice(&data[..take]);
        if self.buf.len() == MAX_DATA {
            write_data(&mut self.w, &self.buf)?;
            self.buf.clear();
        }
        Ok(take)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}

/// Read text packets (`key=value\n`) up to a flush, as text (bytes that
/// are not UTF-8 become U+FFFD); `None` at end of input.
pub fn read_text_list(r: &mut impl Read) -> io::Result<Option<Vec<String>>> {
    Ok(read_list(r)?.map(|lines| {
        lines
            .iter()
            .map(|line| String::from_utf8_lossy(line).into_owned())
            .collect()
    }))
}

/// Read text packets up to a flush, as the bytes Git sent without their
/// newline: Git's paths are bytes, and a `pathname=` that is not UTF-8
/// names a file all the same. `None` at end of input.
pub fn read_list(r: &mut impl Read) -> io::Result<Option<Vec<Vec<u8>>>> {
    let mut lines = Vec::new();
    loop {
        match read(r)? {
            Some(Packet::Flush) => return Ok(Some(lines)),
            Some(Packet::Data(mut line)) => {
                if line.last() == Some(&b'\n') {
                    line.pop();
                }
                lines.push(line);
            }
            None if lines.is_empty() => return Ok(None),
            None => return Err(io::ErrorKind::UnexpectedEof.into()),
        }
    }
}

pub fn write_data(w: &mut impl Write, data: &[u8]) -> io::Result<()> {
    debug_assert!(data.len() <= MAX_DATA);
    write!(w, "{:04x}", data.len() + 4)?;
    w.write_all(data)
}

pub fn write_text(w: &mut impl Write, line: &str) -> io::Result<()> {
    writeln!(w, "{:04x}{line}", line.len() + 5)
}

pub fn write_flush(w: &mut impl Write) -> io::Result<()> {
    w.write_all(b"0000")
}

/// Write `content` as as many packets as it needs, then a flush.
pub fn write_content(w: &mut impl Write, content: &[u8]) -> io::Result<()> {
    for chunk in content.chunks(MAX_DATA) {
        write_data(w, chunk)?;
    }
    write_flush(w)
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_chunking() {
        let mut buf = Vec::new();
        write_text(&mut buf, "version=2").unwrap();
        write_flush(&mut buf).unwrap();
        let big = vec![7u8; MAX_DATA * 2 + 3];
        write_content(&mut buf, &big).unwrap();
        assert!(buf.starts_with(b"000eversion=2\n0000"));
        let mut r = &buf[..];
        assert_eq!(
            read_text_list(&mut r).unwrap(),
            Some(vec!["version=2".to_owned()])
        );
        let mut out = Vec::new();
        read_until_flush(&mut r, &mut out).unwrap();
        assert_eq!(out, big);
        assert_eq!(read(&mut r).unwrap(), None);
    }

    #[test]
    fn packets_writer_chunks_like_write_content() {
        let big: Vec<u8> = (0..MAX_DATA * 2 + 3).map(|i| i as u8).collect();
        let mut expected = Vec::new();
        write_content(&mut expected, &big).unwrap();
        let mut packets = Packets::new(Vec::new());
        for piece in big.chunks(1000) {
            packets.write_all(piece).unwrap();
        }
        let mut out = packets.finish().unwrap();
        write_flush(&mut out).unwrap();
        assert_eq!(out, expected);
        let (mut r, mut buf, mut all) = (&out[..], Vec::new(), Vec::new());
        assert!(!read_up_to(&mut r, &mut all, 10).unwrap());
        while read_data_into(&mut r, &mut buf).unwrap() {
            all.extend_from_slice(&buf);
        }
        assert_eq!(all, big);
    }

    #[test]
    fn refuses_bad_headers() {
        for bad in [&b"zzzz"[..], b"0003", b"fff0"] {
            let mut r = bad;
            assert!(read(&mut r).is_err(), "{bad:?}");
        }
        let mut truncated = &b"0010abc"[..];
        assert!(read(&mut truncated).is_err());
    }
}
