//! A small, blocking AWS KMS client: the Encrypt, Decrypt and DescribeKey
//! calls that let a customer's KMS key guard an X25519 KEK (custody `kms`,
//! SPEC §3), with credentials and region found as AWS tools find them.
//!
//! - `sigv4`: AWS Signature Version 4, a pure function of the request,
//!   credentials and time;
//! - `credentials`: environment, web identity, shared profile files;
//! - `transport`: blocking HTTPS with the system's roots and timeouts;
//! - `client`: the KMS JSON 1.1 calls, their errors and retries.
//!
//! This module does *not* create or manage KMS keys, and it is not a key
//! provider: it knows nothing of kids, envelopes or `.seal/`.

pub mod client;
pub mod credentials;
pub mod sigv4;
pub mod transport;

pub use client::{KeyDescription, KmsClient, KmsError, Retry};
pub use credentials::{AwsEnv, Credentials, CredentialsError};
pub use transport::Timeouts;
