//! Git's long-running filter protocol, version 2 (gitattributes(5),
//! "Long Running Filter Process"): handshake, then `clean` and `smudge`
//! requests until Git closes our standard input. Only protocol goes to
//! stdout; messages go to stderr.

use std::io::{self, BufReader, BufWriter, Read, Write};

use super::pktline;
use super::Filter;
use crate::repo::Oid;

fn protocol_error(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

fn expect_list(r: &mut impl Read, expected: &[&str], what: &str) -> io::Result<Vec<String>> {
    let lines = pktline::read_text_list(r)?
        .ok_or_else(|| protocol_error(format!("git closed the pipe during {what}")))?;
    for want in expected {
        if !lines.iter().any(|l| l == want) {
            return Err(protocol_error(format!(
                "{what}: git did not send {want:?} (got {lines:?})"
            )));
        }
    }
    Ok(lines)
}

/// Serve one Git command's worth of filter requests.
pub fn serve(input: impl Read, output: impl Write, filter: &mut Filter) -> io::Result<()> {
    let mut r = BufReader::with_capacity(1 << 16, input);
    let mut w = BufWriter::with_capacity(1 << 16, output);

    expect_list(&mut r, &["git-filter-client", "version=2"], "handshake")?;
    pktline::write_text(&mut w, "git-filter-server")?;
    pktline::write_text(&mut w, "version=2")?;
    pktline::write_flush(&mut w)?;
    w.flush()?;
    let offered = expect_list(&mut r, &[], "capability negotiation")?;
    for cap in ["capability=clean", "capability=smudge"] {
        if offered.iter().any(|c| c == cap) {
            pktline::write_text(&mut w, cap)?;
        }
    }
    pktline::write_flush(&mut w)?;
    w.flush()?;

    while let Some(headers) = pktline::read_text_list(&mut r)? {
        let value = |key: &str| {
            headers
                .iter()
                .find_map(|h| h.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
        };
        let command = value("command").unwrap_or_default().to_owned();
        let path = value("pathname").unwrap_or_default().to_owned();
        let blob = value("blob").and_then(|b| Oid::from_str(b).ok());
        let mut content = Vec::new();
        pktline::read_until_flush(&mut r, &mut content)?;
        let result = match command.as_str() {
            "clean" => filter.clean(&path, content),
            "smudge" => {
                let smudged = filter.smudge(&path, content, blob);
                if let Some(error) = smudged.error {
                    eprintln!("git-seal: error: {error}");
                }
                Ok(smudged.bytes)
            }
            other => Err(format!("{path}: unsupported filter command {other:?}")),
        };
        match result {
            Ok(bytes) => {
                pktline::write_text(&mut w, "status=success")?;
                pktline::write_flush(&mut w)?;
                pktline::write_content(&mut w, &bytes)?;
                drop(bytes);
                // An empty list keeps "status=success".
                pktline::write_flush(&mut w)?;
            }
            Err(message) => {
                eprintln!("git-seal: error: {message}");
                pktline::write_text(&mut w, "status=error")?;
                pktline::write_flush(&mut w)?;
            }
        }
        w.flush()?;
    }
    if let Some(summary) = filter.finish() {
        eprintln!("{summary}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_refuses_other_protocols() {
        let mut input = Vec::new();
        pktline::write_text(&mut input, "git-filter-client").unwrap();
        pktline::write_text(&mut input, "version=3").unwrap();
        pktline::write_flush(&mut input).unwrap();
        let mut filter = Filter::from_env();
        let err = serve(&input[..], Vec::new(), &mut filter).unwrap_err();
        assert!(err.to_string().contains("version=2"), "{err}");
    }
}
