//! The floor for any long-running filter: Git's filter protocol (version 2,
//! clean and smudge) answered by returning each file's content unchanged.
//! What Git spends talking to it is what every filter costs; what git-seal
//! spends beyond it is git-seal's own. Built by benches/floor.sh with
//! `rustc -O`; not shipped.

use std::io::{self, BufReader, BufWriter, Read, Write};

const MAX_DATA: usize = 65516;

/// One pkt-line's payload, or `None` for a flush packet.
fn read_pkt(input: &mut impl Read, buf: &mut Vec<u8>) -> io::Result<Option<()>> {
    let mut len = [0u8; 4];
    input.read_exact(&mut len)?;
    let text = std::str::from_utf8(&len).map_err(|_| io::ErrorKind::InvalidData)?;
    let n = usize::from_str_radix(text, 16).map_err(|_| io::ErrorKind::InvalidData)?;
    if n == 0 {
        return Ok(None);
    }
    buf.resize(n - 4, 0);
    input.read_exact(buf)?;
    Ok(Some(()))
}

fn write_pkt(out: &mut impl Write, data: &[u8]) -> io::Result<()> {
    write!(out, "{:04x}", data.len() + 4)?;
    out.write_all(data)
}

fn flush(out: &mut impl Write) -> io::Result<()> {
    out.write_all(b"0000")
}

fn main() -> io::Result<()> {
    let mut input = BufReader::with_capacity(1 << 16, io::stdin().lock());
    let mut out = BufWriter::with_capacity(1 << 16, io::stdout().lock());
    let mut buf = Vec::new();
    // Handshake: welcome and version, then capabilities.
    while read_pkt(&mut input, &mut buf)?.is_some() {}
    write_pkt(&mut out, b"git-filter-server\n")?;
    write_pkt(&mut out, b"version=2\n")?;
    flush(&mut out)?;
    out.flush()?;
    while read_pkt(&mut input, &mut buf)?.is_some() {}
    write_pkt(&mut out, b"capability=clean\n")?;
    write_pkt(&mut out, b"capability=smudge\n")?;
    flush(&mut out)?;
    out.flush()?;
    let mut content = Vec::new();
    loop {
        // command=…, pathname=…, other keys, flush.
        match read_pkt(&mut input, &mut buf) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
        while read_pkt(&mut input, &mut buf)?.is_some() {}
        content.clear();
        while read_pkt(&mut input, &mut buf)?.is_some() {
            content.extend_from_slice(&buf);
        }
        write_pkt(&mut out, b"status=success\n")?;
        flush(&mut out)?;
        for chunk in content.chunks(MAX_DATA) {
            write_pkt(&mut out, chunk)?;
        }
        flush(&mut out)?;
        flush(&mut out)?; // status unchanged
        out.flush()?;
    }
}
