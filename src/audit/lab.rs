//! Test support: chains built entry by entry in a scratch repository,
//! signed by throwaway signers, for the verifier's and the hooks' unit
//! tests. Compiled for tests only.

use serde_json::{json, Value};

use super::chain::{self, write_entry, NewEntry};
use super::entry;
use super::verify::{verify, Options, Report};
use super::Signer;
use crate::repo::{Oid, Repo};

/// A repository to build chains in, with signers `ada` (the root),
/// `bea` and `cy`.
pub(crate) struct Lab {
    _tmp: tempfile::TempDir,
    pub(crate) repo: Repo,
    pub(crate) ada: Signer,
    pub(crate) bea: Signer,
    pub(crate) cy: Signer,
}

impl Lab {
    pub(crate) fn new() -> Lab {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("repo");
        git2::Repository::init(&dir).unwrap();
        let repo = Repo::discover(&dir).unwrap();
        let signer = |name: &str| Signer::load_or_create_in(&tmp.path().join(name)).unwrap();
        let (ada, bea, cy) = (signer("ada"), signer("bea"), signer("cy"));
        Lab {
            repo,
            ada,
            bea,
            cy,
            _tmp: tmp,
        }
    }

    /// Write an entry on `parents`, numbered 1 + their highest seq.
    pub(crate) fn entry(&self, by: &Signer, parents: &[Oid], event: &str, data: Value) -> Oid {
        let seq = 1 + parents
            .iter()
            .map(|p| chain::seq_of(&self.repo, *p).unwrap())
            .max()
            .unwrap_or(0);
        let new = NewEntry {
            event,
            data: data.as_object().cloned().unwrap_or_default(),
        };
        write_entry(&self.repo, by, parents, seq, &new).unwrap()
    }

    pub(crate) fn add(&self, by: &Signer, parent: Oid, who: &Signer) -> Oid {
        let data = json!({
            "public_key": who.public_openssh(),
            "fingerprint": who.fingerprint(),
            "email": "someone@example.test",
        });
        self.entry(by, &[parent], entry::EVENT_SIGNER_ADD, data)
    }

    pub(crate) fn remove(&self, by: &Signer, parent: Oid, who: &Signer) -> Oid {
        let data = json!({"fingerprint": who.fingerprint()});
        self.entry(by, &[parent], entry::EVENT_SIGNER_REMOVE, data)
    }

    pub(crate) fn seal(&self, by: &Signer, parent: Oid) -> Oid {
        self.entry(by, &[parent], "seal", json!({}))
    }

    pub(crate) fn merge(&self, by: &Signer, ours: Oid, theirs: Oid) -> Oid {
        self.entry(by, &[ours, theirs], entry::EVENT_CHAIN_MERGE, json!({}))
    }

    /// The root `init` by ada, and bea added by ada.
    pub(crate) fn start(&self) -> Oid {
        let root = self.entry(&self.ada, &[], entry::EVENT_INIT, json!({"kids": []}));
        self.add(&self.ada, root, &self.bea)
    }

    pub(crate) fn verify(&self, tip: Oid) -> Report {
        verify(&self.repo, tip, &Options::default()).unwrap()
    }
}
