//! Bounds on the TCP connections a server's gRPC front accepts (security review 2, finding 10:
//! a per-address bound that cannot lock honest parties out).
//!
//! A connection is *trusted* once it has carried an authenticated call (the gate checked its
//! call token, see [`super::gate`]) or an authentic peer hello. Untrusted connections are what a
//! party without a key can open, and they are bounded:
//!
//! - one remote address holds at most `per_address` connections: one more evicts that address's
//!   oldest untrusted connection (a client behind the address always gets in; a flood only
//!   churns its own), or is refused if all of them are trusted;
//! - the server holds at most `max_total`: one more evicts the oldest untrusted connection of
//!   any address, or is refused if all are trusted.
//!
//! An evicted connection reads end-of-stream at once, so HTTP/2 closes it. Each connection costs
//! the server its HTTP/2 state and at most its receive window, whatever it sends, so these
//! bounds bound what a keyless flood of connections holds.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_stream::{Stream, StreamExt};
use tonic::transport::server::{Connected, TcpConnectInfo, TcpIncoming};
use tracing::debug;

/// The bounds on connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// Connections one remote address may hold.
    pub per_address: usize,
    /// Connections the server holds in all.
    pub max_total: usize,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            per_address: 64,
            max_total: 1024,
        }
    }
}

/// One accepted connection's entry.
#[derive(Debug)]
struct Entry {
    id: u64,
    remote: SocketAddr,
    trusted: AtomicBool,
    evicted: AtomicBool,
    /// The task reading the connection, woken when it is evicted.
    reader: Mutex<Option<Waker>>,
}

impl Entry {
    fn evict(&self) {
        self.evicted.store(true, Ordering::Release);
        if let Some(w) = self.reader.lock().unwrap_or_else(|p| p.into_inner()).take() {
            w.wake();
        }
    }
}

#[derive(Debug, Default)]
struct State {
    next_id: u64,
    /// Open connections by remote address (a live TCP connection's address and port are its
    /// own).
    open: HashMap<SocketAddr, Arc<Entry>>,
    /// The same, oldest first.
    by_age: BTreeMap<u64, SocketAddr>,
    per_ip: HashMap<IpAddr, usize>,
}

impl State {
    fn remove(&mut self, id: u64) -> Option<Arc<Entry>> {
        let remote = self.by_age.remove(&id)?;
        let entry = self.open.remove(&remote)?;
        let ip = remote.ip();
        if let Some(n) = self.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
        Some(entry)
    }

    /// Evicts the oldest untrusted connection (of `ip`, if given); `false` if there is none.
    fn evict_oldest(&mut self, ip: Option<IpAddr>) -> bool {
        let victim = self
            .by_age
            .iter()
            .map(|(id, remote)| (*id, &self.open[remote]))
            .find(|(_, e)| {
                !e.trusted.load(Ordering::Acquire) && ip.is_none_or(|ip| e.remote.ip() == ip)
            })
            .map(|(id, _)| id);
        match victim.and_then(|id| self.remove(id)) {
            Some(entry) => {
                debug!(remote = %entry.remote, "connection evicted");
                entry.evict();
                true
            }
            None => false,
        }
    }
}

/// The connections of one server's gRPC front.
#[derive(Debug, Default)]
pub struct Conns {
    limits: ConnLimits,
    state: Mutex<State>,
}

impl Conns {
    /// Connections bounded by `limits`.
    pub fn new(limits: ConnLimits) -> Arc<Self> {
        Arc::new(Conns {
            limits,
            state: Mutex::default(),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A place for a connection from `remote`, evicting an untrusted one if the bounds are
    /// reached; `None` (refused) if only trusted ones hold them.
    fn admit(&self, remote: SocketAddr) -> Option<Arc<Entry>> {
        let mut st = self.state();
        let ip = remote.ip();
        if st.per_ip.get(&ip).copied().unwrap_or(0) >= self.limits.per_address
            && !st.evict_oldest(Some(ip))
        {
            return None;
        }
        if st.open.len() >= self.limits.max_total && !st.evict_oldest(None) {
            return None;
        }
        st.next_id += 1;
        let entry = Arc::new(Entry {
            id: st.next_id,
            remote,
            trusted: AtomicBool::new(false),
            evicted: AtomicBool::new(false),
            reader: Mutex::new(None),
        });
        // A stale entry under the same address and port (its connection gone, its drop not
        // yet run) gives way.
        if let Some(old) = st.open.get(&remote).map(|e| e.id) {
            st.remove(old);
        }
        st.open.insert(remote, Arc::clone(&entry));
        st.by_age.insert(entry.id, remote);
        *st.per_ip.entry(ip).or_insert(0) += 1;
        Some(entry)
    }

    /// Marks the connection from `remote` trusted (an authenticated call or peer hello came on
    /// it): it is never evicted.
    pub fn trust(&self, remote: SocketAddr) {
        if let Some(e) = self.state().open.get(&remote) {
            e.trusted.store(true, Ordering::Release);
        }
    }

    /// Connections open from `ip`.
    pub fn open_from(&self, ip: IpAddr) -> usize {
        self.state().per_ip.get(&ip).copied().unwrap_or(0)
    }

    /// Connections open in all.
    pub fn open(&self) -> usize {
        self.state().open.len()
    }

    fn release(&self, id: u64) {
        self.state().remove(id);
    }

    /// The accepted connections of `listener` (with `TCP_NODELAY`: an MPC round is a few small
    /// frames each way), within these bounds.
    pub fn incoming(
        self: &Arc<Self>,
        listener: TcpListener,
    ) -> impl Stream<Item = io::Result<Guarded>> + Send + 'static {
        let conns = Arc::clone(self);
        nodelay(listener).filter_map(move |accepted| match accepted {
            Err(e) => Some(Err(e)),
            Ok(io) => {
                let remote = io.peer_addr().ok()?;
                match conns.admit(remote) {
                    Some(entry) => Some(Ok(Guarded {
                        io,
                        entry,
                        conns: Arc::clone(&conns),
                    })),
                    None => {
                        debug!(%remote, "connection refused: every place is trusted");
                        None
                    }
                }
            }
        })
    }
}

/// An accepted connection within the bounds; it reads end-of-stream once evicted.
#[derive(Debug)]
pub struct Guarded {
    io: TcpStream,
    entry: Arc<Entry>,
    conns: Arc<Conns>,
}

impl Drop for Guarded {
    fn drop(&mut self) {
        self.conns.release(self.entry.id);
    }
}

impl Connected for Guarded {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.io.connect_info()
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.entry.evicted.load(Ordering::Acquire) {
            return Poll::Ready(Ok(()));
        }
        *self.entry.reader.lock().unwrap_or_else(|p| p.into_inner()) = Some(cx.waker().clone());
        // Evicted between the check and the waker's registration: read the end now.
        if self.entry.evicted.load(Ordering::Acquire) {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.entry.evicted.load(Ordering::Acquire) {
            return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
        }
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// The remote address of the connection a request came on (plain or TLS).
pub fn remote_of(extensions: &tonic::codegen::http::Extensions) -> Option<SocketAddr> {
    extensions
        .get::<TcpConnectInfo>()
        .and_then(TcpConnectInfo::remote_addr)
        .or_else(|| {
            extensions
                .get::<tonic::transport::server::TlsConnectInfo<TcpConnectInfo>>()
                .and_then(|i| i.get_ref().remote_addr())
        })
}

/// Accepted connections with `TCP_NODELAY`: an MPC round is a few small frames each way, and
/// Nagle's algorithm with delayed acknowledgements would hold each one back.
pub fn nodelay(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(ip: u8, port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, ip], port))
    }

    /// One address holds at most its bound: a new connection evicts its oldest untrusted one,
    /// never a trusted one, and never another address's; the total bound evicts the oldest
    /// untrusted of any address, and refuses when all are trusted.
    #[test]
    fn untrusted_connections_give_way_trusted_ones_stay() {
        let conns = Conns::new(ConnLimits {
            per_address: 3,
            max_total: 5,
        });
        let a: Vec<_> = (0..3).map(|p| conns.admit(addr(2, p)).unwrap()).collect();
        conns.trust(addr(2, 0));
        let fourth = conns.admit(addr(2, 3)).unwrap();
        assert!(a[1].evicted.load(Ordering::Acquire), "the oldest untrusted");
        assert!(!a[0].evicted.load(Ordering::Acquire), "trusted");
        assert_eq!(conns.open_from(addr(2, 0).ip()), 3);
        // Another address: two more fill the total; a sixth evicts the oldest untrusted (a[2]).
        let b: Vec<_> = (0..2).map(|p| conns.admit(addr(3, p)).unwrap()).collect();
        assert_eq!(conns.open(), 5);
        let _sixth = conns.admit(addr(4, 0)).unwrap();
        assert!(a[2].evicted.load(Ordering::Acquire));
        assert_eq!(conns.open(), 5);
        // All trusted: refused.
        for remote in [addr(2, 0), addr(2, 3), addr(3, 0), addr(3, 1), addr(4, 0)] {
            conns.trust(remote);
        }
        assert!(conns.admit(addr(5, 0)).is_none());
        assert!(!fourth.evicted.load(Ordering::Acquire) && !b[0].evicted.load(Ordering::Acquire));
        // A connection that ends gives its place back.
        conns.release(b[0].id);
        assert!(conns.admit(addr(5, 0)).is_some());
    }
}
