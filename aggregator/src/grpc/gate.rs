//! The gate in front of a server's client services (data owner, model owner, MPC job): who may
//! hold what, checked before a byte of a call's body is read (security review 2, findings 10
//! and 11).
//!
//! - **A caller is named before its body is read.** Every call carries a call token in its
//!   headers ([`CALL_TOKEN_KEY`]: a request token of kind [`RequestKind::Call`], sealed by the
//!   caller for this server, within the clock window). A call without a valid one is refused
//!   `unauthenticated` at once: a party without a key of the cluster holds no place, no buffer
//!   and no timer here, whatever it sends.
//! - **Places are per party.** A party holds at most `calls_per_party` calls at once, from the
//!   call's start until its answer's last byte is handed to the transport; one more is refused
//!   `resource_exhausted`. One party can thus exclude only itself, and all calls together hold
//!   at most (parties of the cluster) x `calls_per_party` messages, each at most
//!   [`super::stream::MAX_CLIENT_MESSAGE_BYTES`].
//! - **A message must arrive whole, soon.** Once a message's first byte arrives, its last must
//!   follow within `message_deadline`; between messages a stream may idle `stream_idle`. A
//!   unary call's one message is due within `message_deadline` of the call's start. Too slow is
//!   `deadline_exceeded`, and the place is given back.
//!
//! - **Connections are bounded per address**, and those that carried an authenticated call are
//!   never evicted for new ones (see [`super::conns`]).
//!
//! Tokens are not single-use: one recorded on the wire (without TLS) lets its replayer spend
//! only the named party's places, for the clock window
//! ([`tessera_common::request::MAX_CLOCK_SKEW_SECS`]).

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use http_body::Frame;
use tessera_common::PartyId;
use tessera_common::request::{RequestKind, now_secs, open_request};
use tessera_common::seal::Sealer;
use tessera_proto::client::CALL_TOKEN_KEY;
use tokio::time::{Instant, Sleep};

use super::conns::{ConnLimits, Conns, remote_of};
use tonic::Status;
use tonic::body::Body;
use tonic::codegen::{BoxFuture, Service, http};
use tonic::metadata::MetadataMap;
use tonic::server::NamedService;

/// The party a call's token names (in the request's extensions once the gate let it in).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller(pub PartyId);

/// The gate's bounds.
#[derive(Debug, Clone, PartialEq)]
pub struct GateLimits {
    /// Bounds on the connections themselves.
    pub connections: ConnLimits,
    /// Calls one party may hold at once at this server.
    pub calls_per_party: usize,
    /// How long a message may take from its first byte to its last (and a unary call's one
    /// message from the call's start).
    pub message_deadline: Duration,
    /// How long a stream may wait between two messages.
    pub stream_idle: Duration,
}

impl Default for GateLimits {
    fn default() -> Self {
        GateLimits {
            connections: ConnLimits::default(),
            calls_per_party: 16,
            message_deadline: Duration::from_secs(10),
            stream_idle: Duration::from_secs(30),
        }
    }
}

/// The state shared by every call through one server's gate.
pub struct Gate {
    sealer: Arc<Sealer>,
    limits: GateLimits,
    held: Mutex<HashMap<PartyId, usize>>,
    conns: Arc<Conns>,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("limits", &self.limits)
            .finish()
    }
}

/// One call's place; given back when dropped.
#[derive(Debug)]
struct Place {
    gate: Arc<Gate>,
    party: PartyId,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut held = self.gate.held();
        if let Some(n) = held.get_mut(&self.party) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.party);
            }
        }
    }
}

impl Gate {
    /// A gate that knows the cluster's parties through `sealer` (this server's).
    pub fn new(sealer: Arc<Sealer>, limits: GateLimits) -> Arc<Self> {
        Arc::new(Gate {
            sealer,
            conns: Conns::new(limits.connections),
            limits,
            held: Mutex::new(HashMap::new()),
        })
    }

    /// The connections behind this gate.
    pub fn conns(&self) -> &Arc<Conns> {
        &self.conns
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<PartyId, usize>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Calls `party` holds now.
    pub fn held_by(&self, party: PartyId) -> usize {
        self.held().get(&party).copied().unwrap_or(0)
    }

    /// The caller a call's headers name, and a place for it; or the refusal.
    fn admit(self: &Arc<Self>, headers: &http::HeaderMap) -> Result<Place, Status> {
        let metadata = MetadataMap::from_headers(headers.clone());
        let token = metadata
            .get_bin(CALL_TOKEN_KEY)
            .ok_or_else(|| Status::unauthenticated("the call carries no call token"))?
            .to_bytes()
            .map_err(|_| Status::unauthenticated("the call token is not base64"))?;
        let party = open_request(&self.sealer, &token, RequestKind::Call, 0, 0, now_secs())
            .map_err(|e| Status::unauthenticated(format!("call token refused: {e}")))?;
        let mut held = self.held();
        let n = held.entry(party).or_insert(0);
        if *n >= self.limits.calls_per_party {
            return Err(Status::resource_exhausted(format!(
                "{party} holds {} calls at this server already",
                self.limits.calls_per_party
            )));
        }
        *n += 1;
        Ok(Place {
            gate: Arc::clone(self),
            party,
        })
    }
}

/// A client service behind the [`Gate`].
#[derive(Debug, Clone)]
pub struct Gated<S> {
    inner: S,
    gate: Arc<Gate>,
}

impl<S> Gated<S> {
    /// `inner` behind `gate`.
    pub fn new(inner: S, gate: &Arc<Gate>) -> Self {
        Gated {
            inner,
            gate: Arc::clone(gate),
        }
    }
}

impl<S: NamedService> NamedService for Gated<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> Service<http::Request<Body>> for Gated<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let place = match self.gate.admit(request.headers()) {
            Ok(place) => place,
            Err(status) => return Box::pin(std::future::ready(Ok(status.into_http()))),
        };
        let (mut parts, body) = request.into_parts();
        if let Some(remote) = remote_of(&parts.extensions) {
            self.gate.conns.trust(remote);
        }
        parts.extensions.insert(Caller(place.party));
        let limits = &self.gate.limits;
        let body = Body::new(Paced::new(
            body,
            limits.message_deadline,
            limits.stream_idle,
        ));
        // The service that was polled ready serves this call; a clone waits for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let answer = inner.call(http::Request::from_parts(parts, body));
        Box::pin(async move {
            let response = answer.await?;
            Ok(response.map(|body| Body::new(Holding { body, place })))
        })
    }
}

/// An answer's body that keeps its call's place until the transport has taken its last byte
/// (or the call is reset).
struct Holding {
    body: Body,
    #[allow(dead_code)]
    place: Place,
}

impl http_body::Body for Holding {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Where a call's body is in its gRPC framing (a flag byte and a 4-byte length before each
/// message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// Between messages.
    Between,
    /// In a message's 5-byte prefix, `have` bytes of it read so far (into `len`).
    Prefix { have: u8, len: u32 },
    /// In a message's payload, `left` bytes to go.
    Payload { left: u64 },
}

/// A call's body with the gate's deadlines: a message started must end within `message`, and
/// the next must start within `idle`.
struct Paced {
    body: Body,
    framing: Framing,
    timer: Pin<Box<Sleep>>,
    message: Duration,
    idle: Duration,
    /// Whether the timer runs for a message in progress (else for an idle wait).
    in_message: bool,
    done: bool,
}

impl Paced {
    fn new(body: Body, message: Duration, idle: Duration) -> Self {
        Paced {
            body,
            framing: Framing::Between,
            // The first message is due within the message deadline of the call's start.
            timer: Box::pin(tokio::time::sleep(message)),
            message,
            idle,
            in_message: true,
            done: false,
        }
    }

    /// Follows the framing through `data`, restarting the timer as messages begin and end.
    fn follow(&mut self, mut data: &[u8]) {
        let mut began = false;
        let mut ended = false;
        while !data.is_empty() {
            match self.framing {
                Framing::Between => {
                    began = true;
                    self.framing = Framing::Prefix { have: 0, len: 0 };
                }
                Framing::Prefix { have, len } => {
                    // Byte 0 is the compression flag; bytes 1-4 the length, big-endian.
                    let len = if have == 0 {
                        len
                    } else {
                        (len << 8) | u32::from(data[0])
                    };
                    data = &data[1..];
                    self.framing = if have == 4 {
                        if len == 0 {
                            ended = true;
                            Framing::Between
                        } else {
                            Framing::Payload {
                                left: u64::from(len),
                            }
                        }
                    } else {
                        Framing::Prefix {
                            have: have + 1,
                            len,
                        }
                    };
                }
                Framing::Payload { left } => {
                    let take = (data.len() as u64).min(left);
                    data = &data[take as usize..];
                    self.framing = if take == left {
                        ended = true;
                        Framing::Between
                    } else {
                        Framing::Payload { left: left - take }
                    };
                }
            }
        }
        let now = Instant::now();
        if self.framing == Framing::Between && ended {
            self.in_message = false;
            self.timer.as_mut().reset(now + self.idle);
        } else if began && !ended {
            self.in_message = true;
            self.timer.as_mut().reset(now + self.message);
        } else if began && self.framing != Framing::Between {
            // A message ended and the next began in this frame.
            self.in_message = true;
            self.timer.as_mut().reset(now + self.message);
        }
    }
}

impl http_body::Body for Paced {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.follow(data.chunk());
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(None) => {
                this.done = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Pending => match this.timer.as_mut().poll(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(()) => {
                    this.done = true;
                    let what = if this.in_message {
                        format!("a message did not arrive whole within {:?}", this.message)
                    } else {
                        format!("no message within {:?}", this.idle)
                    };
                    Poll::Ready(Some(Err(Status::deadline_exceeded(what))))
                }
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paced() -> Paced {
        Paced::new(
            Body::empty(),
            Duration::from_secs(1),
            Duration::from_secs(30),
        )
    }

    /// Messages split anywhere across frames are followed: the framing is between messages
    /// exactly when every announced byte has arrived.
    #[tokio::test]
    async fn the_framing_follows_messages_split_anywhere() {
        let mut wire = Vec::new();
        for len in [3u32, 0, 70_000, 1] {
            wire.push(0);
            wire.extend_from_slice(&len.to_be_bytes());
            wire.extend(std::iter::repeat_n(7u8, len as usize));
        }
        for cut in [1usize, 2, 4, 5, 6, 4096] {
            let mut p = paced();
            for piece in wire.chunks(cut) {
                p.follow(piece);
            }
            assert_eq!(p.framing, Framing::Between, "pieces of {cut}");
            assert!(!p.in_message);
        }
        let mut p = paced();
        p.follow(&wire[..wire.len() - 1]);
        assert_eq!(p.framing, Framing::Payload { left: 1 });
        assert!(p.in_message);
        let mut p = paced();
        p.follow(&[0, 0, 0]);
        assert_eq!(p.framing, Framing::Prefix { have: 3, len: 0 });
    }
}
