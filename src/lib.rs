//! git-seal: customer-managed-key encryption for Git repositories.
//!
//! Sensitive files are stored in Git only as sealed JSON envelopes
//! (X25519 + HKDF-SHA-256 + AES-256-GCM) under a key-encryption key whose
//! private half the customer holds. This library holds everything; the
//! `git-seal` binary (`src/main.rs` and `src/cli/`) only parses arguments,
//! prints, and maps errors to exit codes.

#![forbid(unsafe_code)]

pub mod atomic_file;
pub mod audit;
pub mod check;
pub mod drivers;
pub mod envelope;
pub mod filter;
pub mod hooks;
pub mod init;
pub mod keys;
pub mod kid;
pub mod kms;
pub mod lifecycle;
pub mod lock;
pub mod merge;
pub mod migrate;
pub mod policy;
pub mod printable;
pub mod progress;
pub mod repo;
pub mod review;
pub mod secret;
pub mod workspace;

/// The current time as RFC 3339 UTC with seconds (`2026-11-23T09:30:00Z`).
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}
