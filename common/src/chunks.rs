//! One message as numbered chunk envelopes: every payload bigger than one envelope (weights,
//! results, job inputs and outputs) is sealed piece by piece, the pieces numbered `chunk` 0, 1,
//! ... in order under one purpose, job and round, so that the receiver can check their order
//! and a piece cannot be moved into another message.

use crate::PartyId;
use crate::seal::{Context, Purpose, SealError, Sealer};

/// Which message the chunks belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message {
    /// What the message is.
    pub purpose: Purpose,
    /// Its job.
    pub job_id: u64,
    /// Its round (or, for a job's transfers, the transfer's index).
    pub round: u64,
}

/// How the chunks are sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keys {
    /// Under the static pair key of sender and receiver.
    Static,
    /// Forward secret for the sender: a fresh ephemeral key per envelope
    /// ([`Sealer::seal_ephemeral_for`]).
    Ephemeral,
}

/// Seals `pieces` for `receiver` as the chunks of `message`, numbered in order. The pieces are
/// taken one at a time, so a caller that makes each piece on demand holds one at a time.
pub fn seal_chunks<P: AsRef<[u8]>>(
    sealer: &Sealer,
    receiver: PartyId,
    message: Message,
    keys: Keys,
    pieces: impl IntoIterator<Item = P>,
) -> Result<Vec<Vec<u8>>, SealError> {
    pieces
        .into_iter()
        .enumerate()
        .map(|(i, piece)| {
            let context = Context {
                purpose: message.purpose,
                job_id: message.job_id,
                round: message.round,
                chunk: i as u64,
            };
            match keys {
                Keys::Static => sealer.seal_for(receiver, &context, piece.as_ref()),
                Keys::Ephemeral => sealer.seal_ephemeral_for(receiver, &context, piece.as_ref()),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;
    use crate::seal::Expected;

    #[test]
    fn chunks_are_numbered_in_order_and_open_as_their_message() {
        let a = Identity::generate(PartyId::ModelOwner, &mut rand::rng());
        let b = Identity::generate(PartyId::Server(0), &mut rand::rng());
        let sa = Sealer::new(&a, [(b.party(), b.public_key())]);
        let sb = Sealer::new(&b, [(a.party(), a.public_key())]);
        let message = Message {
            purpose: Purpose::Control,
            job_id: 7,
            round: 3,
        };
        let pieces: [&[u8]; 3] = [b"one", b"two", b""];
        for keys in [Keys::Static, Keys::Ephemeral] {
            let sealed = seal_chunks(&sa, b.party(), message, keys, pieces).unwrap();
            let expected = Expected {
                purpose: Purpose::Control,
                job_id: 7,
                round: 3,
                sender: Some(a.party()),
            };
            for (i, envelope) in sealed.iter().enumerate() {
                let opened = sb.open(envelope, &expected).unwrap();
                assert_eq!(opened.header.chunk, i as u64);
                assert_eq!(opened.plaintext, pieces[i]);
                assert_eq!(opened.ephemeral, keys == Keys::Ephemeral);
            }
        }
    }
}
