//! Blocking HTTPS for the KMS and STS calls: one `ureq` agent with TLS by
//! rustls (pure Rust: building needs no OpenSSL headers), certificates
//! checked against the operating system's roots, connect and overall
//! timeouts, no redirects (a redirect would carry a signed request and its
//! session token to another host) and a bounded answer size.
//!
//! It does *not* sign, retry or read AWS errors: the callers do.

use std::time::Duration;

use zeroize::Zeroizing;

/// The largest answer read; KMS and STS answers are a few kilobytes.
const MAX_ANSWER: u64 = 1 << 20;

/// How long a call may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// To open the TCP connection (DNS included).
    pub connect: Duration,
    /// For the whole call, from resolving the name to the last byte read.
    pub total: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(3),
            total: Duration::from_secs(15),
        }
    }
}

/// One HTTP answer, with any status. The body is zeroized on drop: KMS's
/// Decrypt answer holds the plaintext.
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The body bytes.
    pub body: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answer")
            .field("status", &self.status)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// Why no answer came. Messages name the URL, never headers or bodies.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// Name resolution, connection or the network failed.
    #[error("{url} is unreachable: {reason}")]
    Unreachable {
        /// The URL called.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The connect or overall timeout passed.
    #[error("{url} did not answer in time ({what} timeout)")]
    Timeout {
        /// The URL called.
        url: String,
        /// Which timeout.
        what: String,
    },
    /// The TLS handshake or certificate check failed.
    #[error("TLS with {url} failed: {reason}")]
    Tls {
        /// The URL called.
        url: String,
        /// What failed.
        reason: String,
    },
    /// Anything else (a malformed URL, an answer too large, a protocol
    /// error).
    #[error("calling {url} failed: {reason}")]
    Other {
        /// The URL called.
        url: String,
        /// What failed.
        reason: String,
    },
}

/// A blocking HTTP client. Cheap to share by reference; one per process is
/// enough.
pub struct Transport {
    agent: ureq::Agent,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport").finish_non_exhaustive()
    }
}

impl Transport {
    /// A client with these timeouts.
    pub fn new(timeouts: Timeouts) -> Transport {
        let tls = ureq::tls::TlsConfig::builder()
            .provider(ureq::tls::TlsProvider::Rustls)
            .root_certs(ureq::tls::RootCerts::PlatformVerifier)
            .build();
        let agent = ureq::Agent::config_builder()
            .tls_config(tls)
            .timeout_connect(Some(timeouts.connect))
            .timeout_global(Some(timeouts.total))
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(concat!("git-seal/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Transport { agent }
    }

    /// POST `body` to `url` with `headers` (sent as given: the caller sets
    /// `Host` when it signed one) and return the answer, whatever its status.
    pub fn post(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Answer, TransportError> {
        let mut request = self.agent.post(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let mut response = request.send(body).map_err(|e| classify(url, e))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER)
            .read_to_vec()
            .map_err(|e| classify(url, e))?;
        Ok(Answer {
            status,
            body: Zeroizing::new(body),
        })
    }
}

fn classify(url: &str, error: ureq::Error) -> TransportError {
    let url = url.to_owned();
    match error {
        ureq::Error::Timeout(what) => TransportError::Timeout {
            url,
            what: what.to_string(),
        },
        ureq::Error::HostNotFound => TransportError::Unreachable {
            url,
            reason: "the host name does not resolve".to_owned(),
        },
        ureq::Error::ConnectionFailed => TransportError::Unreachable {
            url,
            reason: "the connection failed".to_owned(),
        },
        // rustls reports a refused certificate as invalid data on the socket.
        ureq::Error::Io(e) if e.kind() == std::io::ErrorKind::InvalidData => TransportError::Tls {
            url,
            reason: e.to_string(),
        },
        ureq::Error::Io(e) => TransportError::Unreachable {
            url,
            reason: e.to_string(),
        },
        ureq::Error::Tls(_) | ureq::Error::Pem(_) | ureq::Error::TlsRequired => {
            TransportError::Tls {
                url,
                reason: error.to_string(),
            }
        }
        other => TransportError::Other {
            url,
            reason: other.to_string(),
        },
    }
}
