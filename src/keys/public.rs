//! Public X25519 KEKs: what anyone may seal to without holding a private
//! half (the committed `.seal/keys/` records, or a `--to PUBLIC_KEY`). As a
//! provider it wraps but never unwraps.

use super::x25519;
use super::{KeyError, KeyProvider};
use crate::envelope::Recipient;
use crate::kid::Kid;
use crate::secret::Dek;

#[derive(Debug)]
pub struct PublicKeys {
    keys: Vec<(Kid, [u8; 32])>,
}

impl PublicKeys {
    pub fn new(publics: impl IntoIterator<Item = [u8; 32]>) -> PublicKeys {
        let keys = publics
            .into_iter()
            .map(|public| (Kid::of_x25519(&public), public))
            .collect();
        PublicKeys { keys }
    }

    fn get(&self, kid: &Kid) -> Option<&[u8; 32]> {
        self.keys.iter().find(|(k, _)| k == kid).map(|(_, p)| p)
    }
}

impl KeyProvider for PublicKeys {
    fn name(&self) -> &'static str {
        "public"
    }

    /// None: no private half is ever here.
    fn available(&self) -> Vec<Kid> {
        Vec::new()
    }

    fn wrap(&self, kid: &Kid, dek: &Dek) -> Option<Result<Recipient, KeyError>> {
        Some(x25519::wrap(kid, self.get(kid)?, dek))
    }

    fn unwrap(&self, _: &Recipient) -> Option<Result<Dek, KeyError>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::record::KekRecord;
    use crate::keys::software::SoftwareKeys;
    use crate::secret::KekSecret;

    #[test]
    fn wraps_for_its_kids_and_never_unwraps() {
        let secret = KekSecret::generate();
        let record = KekRecord::new_x25519(&secret.public(), 1);
        let public = PublicKeys::new([secret.public()]);
        let dek = Dek::random();
        let r = public.wrap(&record.kid, &dek).unwrap().unwrap();
        assert!(public.unwrap(&r).is_none());
        assert!(public.available().is_empty() && !public.has(&record.kid));
        let holder = SoftwareKeys::new("test", vec![secret]);
        assert_eq!(holder.unwrap(&r).unwrap().unwrap().expose(), dek.expose());

        let stranger = Kid::parse("k_0000000000000000").unwrap();
        assert!(public.wrap(&stranger, &dek).is_none());
    }
}
