//! Wrap keys for sealing, prepared ahead: in a long-running filter a second
//! thread does the X25519 work for the next files (with a fixed-base table
//! per KEK) while the main thread encrypts and talks to Git. Each prepared
//! wrap is used once (the zero wrap nonce relies on it).

use std::collections::VecDeque;
use std::sync::{mpsc, Arc, OnceLock};

use crate::keys::sealing::{self, PendingWrap};
use crate::keys::{x25519, SealError, WrapTarget};

/// One set of wraps: one per target, in the targets' order.
type WrapSet = Result<Vec<PendingWrap>, SealError>;

/// Where clean gets its wrap keys.
#[derive(Default)]
pub(super) struct Wraps {
    /// Started by the first seal of a long-running filter, for its targets.
    source: Option<WrapSource>,
}

impl Wraps {
    /// Wrap keys for `targets`: from the background source when it serves
    /// these targets (starting it when `ahead`, i.e. in a long-running
    /// process), else prepared now.
    pub(super) fn take(&mut self, targets: &[WrapTarget], ahead: bool) -> WrapSet {
        if let Some(source) = &mut self.source {
            if source.targets == targets {
                if let Some(wraps) = source.take() {
                    return wraps;
                }
                // None ready (a busy machine starves the idle-class
                // thread): made here, with its fixed-base tables.
                if let Some(preparers) = source.preparers.get() {
                    return preparers.iter().map(Preparer::prepare).collect();
                }
            }
        } else if ahead {
            self.source = Some(WrapSource::start(targets.to_vec()));
        }
        sealing::prepare_wraps(targets)
    }
}

/// A thread that keeps sets of fresh wrap keys ready for one list of
/// targets, handed over in batches (one wake-up per batch, not per file).
/// Each set is used once; unused ones are dropped (and zeroized) with the
/// channel when the filter ends.
struct WrapSource {
    targets: Vec<WrapTarget>,
    next: mpsc::Receiver<Vec<WrapSet>>,
    ready: VecDeque<WrapSet>,
    /// The targets' preparers, once the thread has made them.
    preparers: Arc<OnceLock<Vec<Preparer>>>,
}

/// Wrap sets per hand-over.
const WRAP_BATCH: usize = 16;

impl WrapSource {
    fn start(targets: Vec<WrapTarget>) -> WrapSource {
        let (tx, next) = mpsc::sync_channel(2);
        let for_thread = targets.clone();
        let preparers = Arc::new(OnceLock::new());
        let shared = Arc::clone(&preparers);
        std::thread::spawn(move || {
            // Never waited on: clean prepares a set itself when none is ready.
            super::run_in_background();
            let preparers: &Vec<Preparer> =
                shared.get_or_init(|| for_thread.into_iter().map(Preparer::new).collect());
            let prepare = || -> WrapSet { preparers.iter().map(Preparer::prepare).collect() };
            loop {
                let working = super::Working::start();
                let batch = (0..WRAP_BATCH).map(|_| prepare()).collect();
                drop(working);
                if tx.send(batch).is_err() {
                    break;
                }
            }
        });
        WrapSource {
            targets,
            next,
            ready: VecDeque::new(),
            preparers,
        }
    }

    /// A prepared set if one is ready now (never waits: the caller then
    /// prepares one itself, so both cores work).
    fn take(&mut self) -> Option<WrapSet> {
        if self.ready.is_empty() {
            self.ready.extend(self.next.try_recv().ok()?);
        }
        self.ready.pop_front()
    }
}

/// Fresh wraps for one target, many times over: an X25519 KEK's public point
/// becomes a fixed-base table once; other targets wrap through their
/// provider when the DEK exists, so there is nothing to prepare.
enum Preparer {
    X25519(x25519::WrapPreparer),
    Other(WrapTarget),
}

impl Preparer {
    fn new(target: WrapTarget) -> Preparer {
        match &target {
            WrapTarget::X25519 { kid, public } => {
                Preparer::X25519(x25519::WrapPreparer::new(kid, public))
            }
            WrapTarget::Provider { .. } => Preparer::Other(target),
        }
    }

    fn prepare(&self) -> Result<PendingWrap, SealError> {
        match self {
            Preparer::X25519(preparer) => Ok(preparer.prepare()?.into()),
            Preparer::Other(target) => target.prepare(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::software::SoftwareKeys;
    use crate::keys::{self, KeyProvider};
    use crate::kid::Kid;
    use crate::secret::KekSecret;

    /// Sets from the background thread and sets made on demand both wrap to
    /// every target in order, an X25519 key and a provider's key alike.
    #[test]
    fn every_set_wraps_to_every_target_in_order() {
        let (a, b) = (KekSecret::generate(), KekSecret::generate());
        let provider: Arc<dyn KeyProvider> = Arc::new(SoftwareKeys::new("test", vec![b.clone()]));
        let targets = vec![
            WrapTarget::x25519(a.public()),
            WrapTarget::Provider {
                kid: Kid::of_x25519(&b.public()),
                provider,
            },
        ];
        let kids: Vec<Kid> = targets.iter().map(|t| t.kid().clone()).collect();
        let both = SoftwareKeys::new("test", vec![a.clone()]);
        let second = SoftwareKeys::new("test", vec![b]);
        let mut wraps = Wraps::default();
        for i in 0..3 * WRAP_BATCH {
            let set = wraps.take(&targets, true).unwrap();
            let env = sealing::seal_prepared(vec![i as u8], None, set).unwrap();
            let wrapped_to: Vec<Kid> = env.recipients.iter().map(|r| r.kid.clone()).collect();
            assert_eq!(wrapped_to, kids);
            assert_eq!(keys::open(env.clone(), &both).unwrap(), [i as u8]);
            assert_eq!(keys::open(env, &second).unwrap(), [i as u8]);
        }
        assert!(wraps.source.is_some());
    }

    /// With no set ready (the thread starved), clean makes one with the
    /// thread's fixed-base tables, and each such set is fresh.
    #[test]
    fn with_none_ready_a_set_is_made_with_the_threads_tables() {
        let kek = KekSecret::generate();
        let targets = vec![WrapTarget::x25519(kek.public())];
        let (_never, next) = mpsc::sync_channel(1);
        let preparers: Arc<OnceLock<Vec<Preparer>>> = Arc::new(OnceLock::new());
        assert!(preparers
            .set(targets.iter().cloned().map(Preparer::new).collect())
            .is_ok());
        assert!(matches!(
            &preparers.get().unwrap()[0],
            Preparer::X25519(p) if format!("{p:?}").contains("fixed_base_table: true")
        ));
        let mut wraps = Wraps {
            source: Some(WrapSource {
                targets: targets.clone(),
                next,
                ready: VecDeque::new(),
                preparers,
            }),
        };
        let holder = SoftwareKeys::new("test", vec![kek]);
        let mut ephemerals = Vec::new();
        for i in 0..3u8 {
            let set = wraps.take(&targets, true).unwrap();
            let env = sealing::seal_prepared(vec![i], None, set).unwrap();
            ephemerals.push(format!("{:?}", env.recipients[0].wrap));
            assert_eq!(keys::open(env, &holder).unwrap(), [i]);
        }
        ephemerals.dedup();
        assert_eq!(ephemerals.len(), 3, "an ephemeral key used twice");
    }
}
