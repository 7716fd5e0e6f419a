//! Envelopes: the sealed form of one file. `format` owns the wire format,
//! `reader` parses text that arrives in pieces, `crypto` the content
//! encryption under a DEK.
//!
//! Nothing here knows which keys exist or how a DEK is wrapped to them: that
//! is `keys`, which depends on this module and never the reverse.

pub mod crypto;
pub mod format;
pub mod reader;

pub use crypto::{decrypt, seal, verify, Again, ContentError, OpenStream, SealStream};
pub use format::{
    claims_envelope, framed_len, is_envelope, might_be_envelope, parse, write, write_framed,
    written_as, Envelope, FormatError, Recipient, StreamWriter, Wrap,
};
pub use reader::Reader;
