//! AWS credentials: an access key pair, with a session token when it is
//! temporary. No `Debug` output shows any of it.

use zeroize::Zeroizing;

/// An access key pair, with a session token when it is temporary. `Debug`
/// prints none of it.
#[derive(Clone)]
pub struct Credentials {
    access_key_id: String,
    secret_access_key: Zeroizing<String>,
    session_token: Option<Zeroizing<String>>,
    expiration: Option<String>,
}

impl Credentials {
    /// Credentials from their parts.
    pub fn new(
        access_key_id: String,
        secret_access_key: Zeroizing<String>,
        session_token: Option<Zeroizing<String>>,
    ) -> Credentials {
        Credentials {
            access_key_id,
            secret_access_key,
            session_token,
            expiration: None,
        }
    }

    /// The access key id (`AKIA…` or `ASIA…`), which the signature names.
    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    /// The session token of temporary credentials.
    pub fn session_token(&self) -> Option<&str> {
        self.session_token.as_deref().map(String::as_str)
    }

    /// When temporary credentials expire (RFC 3339), if their source said.
    pub fn expiration(&self) -> Option<&str> {
        self.expiration.as_deref()
    }

    pub(crate) fn secret_access_key(&self) -> &str {
        &self.secret_access_key
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("temporary", &self.session_token.is_some())
            .field("expiration", &self.expiration)
            .finish_non_exhaustive()
    }
}
