//! `envelope::parse` on arbitrary bytes. It must never panic; what it
//! accepts must write back to text that parses to the same envelope, and
//! must hold canonical base64 (the writer's text for each field): the
//! parser promises to refuse anything else.

use git_seal::envelope;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let Ok(env) = envelope::parse(data) else {
            return;
        };
        let text = envelope::write(&env);
        let again = envelope::parse(&text).expect("written envelope parses");
        assert_eq!(again, env, "round trip changed the envelope");
        assert_eq!(envelope::write(&again), text, "writer is not canonical");
        // Every field the parser accepted is canonical: the input and the
        // canonical text agree field by field, whatever the whitespace.
        let given: serde_json::Value = serde_json::from_slice(data).expect("accepted JSON");
        let canonical: serde_json::Value = serde_json::from_slice(&text).expect("written JSON");
        assert_eq!(given, canonical, "accepted a non-canonical field");
    });
}
