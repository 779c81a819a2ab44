//! A server that sends malformed protocol messages gets a typed error at the honest server that
//! reads them, never a panic or a wrong result.

use std::sync::Arc;

use tessera_common::PartyId;
use tessera_common::net::memory::MemoryNetwork;
use tessera_common::net::{Network, Tag};
use tessera_mpc::error::Invalid;
use tessera_mpc::pond;
use tessera_mpc::{MpcError, Session};

use crate::{runtime, tensor};

/// Runs Pond's mul between honest server0 and server1 while "server2" (the producer) is rogue:
/// it takes part in the seed agreement, then sends `c1` as `payload`.
fn mul_with_rogue_producer(payload: Vec<u8>) -> Result<(), MpcError> {
    let parties = [PartyId::Server(0), PartyId::Server(1), PartyId::Server(2)];
    let mut nets = MemoryNetwork::cluster(&parties);
    let rogue = nets.pop().expect("three endpoints");
    runtime().block_on(async move {
        let rogue = tokio::spawn(async move {
            let seed = Tag::new("mpc/0/setup/seed");
            rogue.recv(PartyId::Server(0), &seed).await?;
            rogue.recv(PartyId::Server(1), &seed).await?;
            // Session 0; operation 0 is the sharing, operation 1 the multiplication.
            rogue
                .send(
                    PartyId::Server(1),
                    &Tag::new("mpc/0/1/pond_mul/c1"),
                    payload,
                )
                .await?;
            Ok::<_, MpcError>(())
        });
        let mut honest = Vec::new();
        for net in nets {
            honest.push(tokio::spawn(async move {
                let s = Session::new(Arc::new(net)).await?;
                let x = tensor(1, &[16]);
                let me = s.me();
                let xs = pond::share_from(&s, 0, (me == 0).then_some(&x), &[16]).await?;
                pond::mul(&s, &xs, &xs).await.map(|_| ())
            }));
        }
        rogue.await.expect("rogue task")?;
        let server0 = honest.remove(0).await.expect("server0 task");
        assert!(
            server0.is_ok(),
            "server0 never reads the rogue message: {server0:?}"
        );
        honest.remove(0).await.expect("server1 task")
    })
}

#[test]
fn a_short_message_is_a_protocol_error() {
    let err = mul_with_rogue_producer(vec![1, 2, 3]).unwrap_err();
    assert!(
        matches!(
            err,
            MpcError::Protocol {
                peer: PartyId::Server(2),
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn a_message_of_the_wrong_length_is_a_protocol_error() {
    // 5 bytes and a valid depth trailer: not 16 ring elements.
    let mut payload = vec![0; 5];
    payload.extend_from_slice(&1u64.to_le_bytes());
    let err = mul_with_rogue_producer(payload).unwrap_err();
    assert!(
        matches!(
            err,
            MpcError::Protocol {
                peer: PartyId::Server(2),
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn fractional_bits_outside_the_ring_are_refused() {
    use tessera_mpc::harness::run_local;
    use tessera_mpc::protocol::{Aby3, Pond, SecureNn};
    let outs = runtime()
        .block_on(run_local(3, |s| async move {
            Ok((
                matches!(
                    Pond::new(Arc::clone(&s), 64),
                    Err(MpcError::Invalid(Invalid::FracBits { frac_bits: 64, .. }))
                ),
                matches!(
                    SecureNn::new(Arc::clone(&s), 0),
                    Err(MpcError::Invalid(Invalid::FracBits { frac_bits: 0, .. }))
                ),
                matches!(
                    Aby3::new(Arc::clone(&s), 31),
                    Err(MpcError::Invalid(Invalid::FracBits {
                        frac_bits: 31,
                        max: 30,
                        ring_bits: 64
                    }))
                ),
                Aby3::new(s, 30).is_ok(),
            ))
        }))
        .unwrap();
    assert!(
        outs.iter().all(|o| *o == (true, true, true, true)),
        "{outs:?}"
    );
}

/// server0 sends `sent` bytes under one part, server1 expects `expected`: what server1 got
/// (the bytes and the messages they came in), or its error.
fn send_in_pieces(sent: usize, expected: usize) -> Result<(Vec<u8>, u64), MpcError> {
    use tessera_mpc::harness::run_local;
    let payload: Vec<u8> = (0..sent).map(|i| (i % 251) as u8).collect();
    let mut outs = runtime().block_on(run_local(3, move |s| {
        let payload = payload.clone();
        async move {
            let op = s.op("big");
            let before = s.net_stats();
            match s.me() {
                0 => s.send_bytes(1, &op, "blob", payload).await?,
                1 => {
                    let got = s.recv_bytes(0, &op, "blob", expected).await?;
                    let messages = s.net_stats().since(&before).messages_received;
                    return Ok(Some((got, messages)));
                }
                _ => {}
            }
            Ok(None)
        }
    }))?;
    Ok(outs.remove(1).expect("server1's result"))
}

/// A payload over `PIECE_BYTES` crosses in pieces and arrives whole (no message outgrows a
/// gRPC frame); a length the receiver does not expect is a protocol error, not a hang.
#[test]
fn a_large_message_goes_in_pieces() {
    use tessera_mpc::session::PIECE_BYTES;
    let n = 2 * PIECE_BYTES + 5;
    let (got, messages) = send_in_pieces(n, n).expect("a large message");
    assert_eq!(messages, 3);
    assert_eq!(got.len(), n);
    assert!(got.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8));
    // One piece and a byte sent, two pieces and a byte expected: the second piece is short.
    let err = send_in_pieces(PIECE_BYTES + 1, n).unwrap_err();
    assert!(
        matches!(
            err,
            MpcError::Protocol {
                peer: PartyId::Server(0),
                ..
            }
        ),
        "{err:?}"
    );
}
