//! Audit entries and chain commits on arbitrary bytes. `Entry::parse` never
//! panics, and an entry it accepts writes (`to_text`) to canonical text that
//! parses to the same entry and writes to itself. `parse_commit` never
//! panics, and what it splits off as the signed payload is the commit
//! without its `gpgsig` header.

use git_seal::audit::chain;
use git_seal::audit::entry::Entry;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        if let Ok(entry) = Entry::parse(data) {
            let text = entry.to_text();
            let again = Entry::parse(text.as_bytes()).expect("written entry parses");
            assert_eq!(again, entry, "round trip changed the entry");
            assert_eq!(again.to_text(), text, "to_text is not canonical");
        }
        if let Ok(commit) = chain::parse_commit(data) {
            assert!(commit.payload.len() <= data.len());
            assert_eq!(
                commit.signature.is_some(),
                commit.payload.len() < data.len(),
                "payload must be the commit less exactly its gpgsig header"
            );
        }
    });
}
