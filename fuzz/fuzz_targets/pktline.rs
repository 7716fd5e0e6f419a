//! The pkt-line readers over arbitrary bytes, until end of input or an
//! error: never a panic, and never an endless loop. The first byte picks
//! which reader reads next, so all three interleave as they do in the
//! filter protocol.

use git_seal::filter::pktline::{self, Packet};

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let Some((&choice, mut rest)) = data.split_first() else {
            return;
        };
        let mut choice = choice;
        // Every successful read consumes at least a 4-byte header, so this
        // loop ends; the bound only guards against a reader that doesn't.
        for _ in 0..=rest.len() {
            let before = rest.len();
            let done = match choice % 3 {
                0 => match pktline::read(&mut rest) {
                    Ok(Some(Packet::Data(d))) => {
                        assert!(!d.is_empty() && d.len() <= pktline::MAX_DATA);
                        false
                    }
                    Ok(Some(Packet::Flush)) => false,
                    Ok(None) | Err(_) => true,
                },
                1 => {
                    let mut out = Vec::new();
                    pktline::read_until_flush(&mut rest, &mut out).is_err()
                }
                _ => !matches!(pktline::read_text_list(&mut rest), Ok(Some(_))),
            };
            if done {
                return;
            }
            assert!(rest.len() < before, "a successful read consumed nothing");
            choice = choice.rotate_left(1) ^ (before as u8);
        }
        panic!("the readers did not reach the end of the input");
    });
}
