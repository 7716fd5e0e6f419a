//! Envelopes: the sealed form of one file. `format` owns the wire format,
//! `crypto` the sealing and opening.

pub mod crypto;
pub mod format;

pub use crypto::{open, seal, OpenError, SealError, WrapTarget};
pub use format::{
    is_envelope, might_be_envelope, parse, write, Envelope, FormatError, Recipient, Wrap,
};

/// Parse and open envelope text in one step.
pub fn open_bytes(text: &[u8], keys: &dyn crate::keys::KeyProvider) -> Result<Vec<u8>, OpenError> {
    open(parse(text)?, keys)
}

/// Seal plaintext and return canonical envelope text.
pub fn seal_bytes(
    plaintext: Vec<u8>,
    aad: Option<String>,
    targets: &[WrapTarget],
) -> Result<Vec<u8>, SealError> {
    Ok(write(&seal(plaintext, aad, targets)?))
}
