//! A server's in-memory network with a hook on everything it sends: pass, drop, or hold until
//! released (a lost message, a slow peer), so a test can stage the failures between leader and
//! helpers deterministically.

use std::sync::Mutex;

use tessera_common::PartyId;
use tessera_common::net::memory::MemoryNetwork;
use tessera_common::net::{NetError, NetStats, Network, Tag};

/// What happens to one message sent.
pub(crate) enum Verdict {
    /// Sent as usual.
    Pass,
    /// Lost.
    Drop,
    /// Kept back; [`Verdict::Release`] later sends it (in order, before the message released).
    Hold,
    /// Sent, after every message held so far.
    Release,
}

type HookFn = dyn Fn(PartyId, &Tag, &[u8]) -> Verdict + Send + Sync;

/// Decides each message's [`Verdict`] from its receiver, tag and bytes.
pub(crate) struct Hook(Box<HookFn>);

impl Hook {
    /// Passes everything.
    pub(crate) fn pass() -> Self {
        Hook(Box::new(|_, _, _| Verdict::Pass))
    }

    /// The hook `f`.
    pub(crate) fn new(f: impl Fn(PartyId, &Tag, &[u8]) -> Verdict + Send + Sync + 'static) -> Self {
        Hook(Box::new(f))
    }
}

/// A [`MemoryNetwork`] behind a [`Hook`].
pub(crate) struct Tap {
    inner: MemoryNetwork,
    hook: Hook,
    held: Mutex<Vec<(PartyId, Tag, Vec<u8>)>>,
}

impl Tap {
    /// `inner` behind `hook`.
    pub(crate) fn new(inner: MemoryNetwork, hook: Hook) -> Self {
        Tap {
            inner,
            hook,
            held: Mutex::new(Vec::new()),
        }
    }
}

impl Network for Tap {
    fn me(&self) -> PartyId {
        self.inner.me()
    }

    fn parties(&self) -> &[PartyId] {
        self.inner.parties()
    }

    async fn send(&self, to: PartyId, tag: &Tag, payload: Vec<u8>) -> Result<(), NetError> {
        match (self.hook.0)(to, tag, &payload) {
            Verdict::Pass => self.inner.send(to, tag, payload).await,
            Verdict::Drop => Ok(()),
            Verdict::Hold => {
                self.held.lock().unwrap().push((to, tag.clone(), payload));
                Ok(())
            }
            Verdict::Release => {
                let held = std::mem::take(&mut *self.held.lock().unwrap());
                for (to, tag, payload) in held {
                    self.inner.send(to, &tag, payload).await?;
                }
                self.inner.send(to, tag, payload).await
            }
        }
    }

    async fn recv(&self, from: PartyId, tag: &Tag) -> Result<Vec<u8>, NetError> {
        self.inner.recv(from, tag).await
    }

    fn stats(&self) -> NetStats {
        self.inner.stats()
    }

    fn forget(&self, prefix: &str) -> usize {
        self.inner.forget(prefix)
    }

    fn queued(&self) -> usize {
        self.inner.queued()
    }
}
