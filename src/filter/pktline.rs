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
    let len = std::str::from_utf8(&header)
        .ok()
        .and_then(|s| usize::from_str_radix(s, 16).ok())
        .ok_or_else(|| invalid(format!("bad pkt-line header {header:?}")))?;
    match len {
        0 => Ok(Some(Packet::Flush)),
        1..=4 => Err(invalid(format!("unsupported pkt-line length {len}"))),
        _ if len - 4 > MAX_DATA => Err(invalid(format!("pkt-line of {len} bytes is too long"))),
        _ => {
            let mut data = vec![0u8; len - 4];
            r.read_exact(&mut data)?;
            Ok(Some(Packet::Data(data)))
        }
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

/// Read text packets (`key=value\n`) up to a flush; `None` at end of input.
pub fn read_text_list(r: &mut impl Read) -> io::Result<Option<Vec<String>>> {
    let mut lines = Vec::new();
    loop {
        match read(r)? {
            Some(Packet::Flush) => return Ok(Some(lines)),
            Some(Packet::Data(data)) => {
                // Git's paths are bytes: a `pathname=` that is not UTF-8
                // names a file all the same (invalid bytes become U+FFFD).
                let mut line = String::from_utf8_lossy(&data).into_owned();
                if line.ends_with('\n') {
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
    fn refuses_bad_headers() {
        for bad in [&b"zzzz"[..], b"0003", b"fff0"] {
            let mut r = bad;
            assert!(read(&mut r).is_err(), "{bad:?}");
        }
        let mut truncated = &b"0010abc"[..];
        assert!(read(&mut truncated).is_err());
    }
}
