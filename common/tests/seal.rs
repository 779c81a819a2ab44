//! Sealing: known-answer key derivation, round trips, and one distinct error per tampering.

use tessera_common::PartyId;
use tessera_common::identity::{Identity, PublicKey};
use tessera_common::seal::{
    Context, EPHEMERAL_OVERHEAD, Expected, HEADER_LEN, OVERHEAD, Purpose, ReplayGuard, SealError,
    Sealer, derive_ephemeral_key, derive_pair_key,
};
use x25519_dalek::StaticSecret;

fn fixed(party: PartyId, byte: u8) -> Identity {
    Identity::from_secret(party, StaticSecret::from([byte; 32]))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reference values computed independently with Python's `cryptography` (X25519 + HKDF-SHA256).
#[test]
fn pair_key_known_answer() {
    let a = fixed(PartyId::DataOwner(0), 1);
    let b = fixed(PartyId::Server(0), 2);
    assert_eq!(
        hex(a.public_key().as_bytes()),
        "a4e09292b651c278b9772c569f5fa9bb13d906b46ab68c9df9dc2b4409f8a209"
    );
    assert_eq!(
        hex(b.public_key().as_bytes()),
        "ce8d3ad1ccb633ec7b70c17814a5c76ecd029685050d344745ba05870e587d59"
    );
    let expected = "7ea4b40c975e1e7e57be4b48405e0c5f159aa226f1b583b633862c456eb18111";
    let k_ab = derive_pair_key(&a, b.party(), b.public_key()).unwrap();
    let k_ba = derive_pair_key(&b, a.party(), a.public_key()).unwrap();
    assert_eq!(hex(k_ab.as_ref()), expected);
    assert_eq!(hex(k_ba.as_ref()), expected);
}

#[test]
fn low_order_public_key_is_rejected() {
    let a = fixed(PartyId::Server(0), 1);
    let zero = PublicKey::from([0u8; 32]);
    assert_eq!(
        derive_pair_key(&a, PartyId::DataOwner(9), &zero).err(),
        Some(SealError::NonContributory(PartyId::DataOwner(9)))
    );
    let sealer = Sealer::new(&a, [(PartyId::DataOwner(9), &zero)]);
    let ctx = context(1, 0);
    assert_eq!(
        sealer.seal_for(PartyId::DataOwner(9), &ctx, b"x").err(),
        Some(SealError::NonContributory(PartyId::DataOwner(9)))
    );
}

struct Pair {
    owner: Sealer,
    server0: Sealer,
    server1: Sealer,
}

fn pair() -> Pair {
    let owner = Identity::generate(PartyId::DataOwner(3), &mut rand::rng());
    let s0 = Identity::generate(PartyId::Server(0), &mut rand::rng());
    let s1 = Identity::generate(PartyId::Server(1), &mut rand::rng());
    let all = [
        (owner.party(), *owner.public_key()),
        (s0.party(), *s0.public_key()),
        (s1.party(), *s1.public_key()),
    ];
    let keys = || all.iter().map(|(p, k)| (*p, k));
    Pair {
        owner: Sealer::new(&owner, keys()),
        server0: Sealer::new(&s0, keys()),
        server1: Sealer::new(&s1, keys()),
    }
}

fn context(round: u64, chunk: u64) -> Context {
    Context {
        purpose: Purpose::Upload,
        job_id: 42,
        round,
        chunk,
    }
}

fn expect(round: u64) -> Expected {
    Expected {
        purpose: Purpose::Upload,
        job_id: 42,
        round,
        sender: None,
    }
}

#[test]
fn seal_open_round_trip() {
    let p = pair();
    let msg = b"explicit share bytes".repeat(100);
    let env = p
        .owner
        .seal_for(PartyId::Server(0), &context(7, 3), &msg)
        .unwrap();
    assert_eq!(env.len(), msg.len() + OVERHEAD);
    let opened = p.server0.open(&env, &expect(7)).unwrap();
    assert_eq!(opened.plaintext, msg);
    assert_eq!(opened.header.sender, PartyId::DataOwner(3));
    assert_eq!(opened.header.chunk, 3);
    // Ciphertext hides the plaintext, and two seals of one message differ (fresh nonces).
    let env2 = p
        .owner
        .seal_for(PartyId::Server(0), &context(7, 3), &msg)
        .unwrap();
    assert_ne!(env, env2);
    assert!(!env.windows(20).any(|w| w == &msg[..20]));
}

#[test]
fn every_tampering_fails_with_its_own_error() {
    let p = pair();
    let env = p
        .owner
        .seal_for(PartyId::Server(0), &context(7, 0), b"secret")
        .unwrap();

    // A flipped bit anywhere in the ciphertext or tag.
    for i in [HEADER_LEN + 12, env.len() - 1] {
        let mut bad = env.clone();
        bad[i] ^= 1;
        assert_eq!(
            p.server0.open(&bad, &expect(7)).err(),
            Some(SealError::AuthenticationFailed {
                sender: PartyId::DataOwner(3)
            })
        );
    }

    // Opened for the wrong round.
    assert_eq!(
        p.server0.open(&env, &expect(8)).err(),
        Some(SealError::WrongRound {
            expected: 8,
            got: 7
        })
    );

    // Opened by the wrong receiver.
    assert_eq!(
        p.server1.open(&env, &expect(7)).err(),
        Some(SealError::WrongReceiver {
            expected: PartyId::Server(1),
            got: PartyId::Server(0)
        })
    );

    // A header edited to pass the checks (round 7 -> 8) fails authentication.
    let mut edited = env.clone();
    edited[10] = 8;
    assert_eq!(
        p.server0.open(&edited, &expect(8)).err(),
        Some(SealError::AuthenticationFailed {
            sender: PartyId::DataOwner(3)
        })
    );
    // So does a header re-addressed to server1.
    let mut readdressed = env.clone();
    readdressed[23..28].copy_from_slice(&PartyId::Server(1).to_bytes());
    assert!(matches!(
        p.server1.open(&readdressed, &expect(7)),
        Err(SealError::AuthenticationFailed { .. })
    ));

    // A replayed chunk index.
    let mut guard = ReplayGuard::new();
    p.server0.open_once(&env, &expect(7), &mut guard).unwrap();
    assert_eq!(
        p.server0.open_once(&env, &expect(7), &mut guard).err(),
        Some(SealError::Replayed {
            sender: PartyId::DataOwner(3),
            job_id: 42,
            round: 7,
            chunk: 0
        })
    );
    // A new chunk index from the same sender is fine.
    let next = p
        .owner
        .seal_for(PartyId::Server(0), &context(7, 1), b"more")
        .unwrap();
    p.server0.open_once(&next, &expect(7), &mut guard).unwrap();

    // Other header checks.
    let mut wrong_job = expect(7);
    wrong_job.job_id = 1;
    assert!(matches!(
        p.server0.open(&env, &wrong_job),
        Err(SealError::WrongJob { .. })
    ));
    let mut wrong_purpose = expect(7);
    wrong_purpose.purpose = Purpose::Result;
    assert!(matches!(
        p.server0.open(&env, &wrong_purpose),
        Err(SealError::WrongPurpose { .. })
    ));
    let mut wrong_sender = expect(7);
    wrong_sender.sender = Some(PartyId::DataOwner(4));
    assert!(matches!(
        p.server0.open(&env, &wrong_sender),
        Err(SealError::WrongSender { .. })
    ));
    assert!(matches!(
        p.server0.open(&env[..40], &expect(7)),
        Err(SealError::Malformed(_))
    ));
    let mut bad_version = env.clone();
    bad_version[0] = 9;
    assert_eq!(
        p.server0.open(&bad_version, &expect(7)).err(),
        Some(SealError::UnsupportedVersion(9))
    );
}

#[test]
fn unknown_sender_is_rejected() {
    let p = pair();
    let stranger = Identity::generate(PartyId::DataOwner(77), &mut rand::rng());
    let s0_pub = {
        // The stranger knows server0's key, but server0 does not know the stranger.
        let s0 = Identity::generate(PartyId::Server(0), &mut rand::rng());
        *s0.public_key()
    };
    let forger = Sealer::new(&stranger, [(PartyId::Server(0), &s0_pub)]);
    let env = forger
        .seal_for(PartyId::Server(0), &context(7, 0), b"x")
        .unwrap();
    assert_eq!(
        p.server0.open(&env, &expect(7)).err(),
        Some(SealError::UnknownSender(PartyId::DataOwner(77)))
    );
}

#[test]
fn a_registered_sender_cannot_impersonate_another() {
    // data-owner-3 seals, then rewrites the header's sender to data-owner-5: the open uses the
    // pair key of data-owner-5 and fails.
    let owner3 = Identity::generate(PartyId::DataOwner(3), &mut rand::rng());
    let owner5 = Identity::generate(PartyId::DataOwner(5), &mut rand::rng());
    let s0 = Identity::generate(PartyId::Server(0), &mut rand::rng());
    let keys = [
        (owner3.party(), *owner3.public_key()),
        (owner5.party(), *owner5.public_key()),
        (s0.party(), *s0.public_key()),
    ];
    let sealer3 = Sealer::new(&owner3, keys.iter().map(|(p, k)| (*p, k)));
    let server = Sealer::new(&s0, keys.iter().map(|(p, k)| (*p, k)));
    let mut env = sealer3.seal_for(s0.party(), &context(1, 0), b"x").unwrap();
    env[18..23].copy_from_slice(&PartyId::DataOwner(5).to_bytes());
    assert_eq!(
        server.open(&env, &expect(1)).err(),
        Some(SealError::AuthenticationFailed {
            sender: PartyId::DataOwner(5)
        })
    );
}

/// Reference value computed independently with Python's `cryptography` (X25519 + HKDF-SHA256):
/// sender secret `[1; 32]`, receiver secret `[2; 32]`, ephemeral secret `[3; 32]`.
#[test]
fn ephemeral_key_known_answer() {
    let receiver = fixed(PartyId::Server(0), 2);
    let key = derive_ephemeral_key(
        &StaticSecret::from([3; 32]),
        &StaticSecret::from([1; 32]),
        receiver.party(),
        receiver.public_key(),
    )
    .unwrap();
    assert_eq!(
        hex(key.as_ref()),
        "20fa56ec5fcea16a6250c1d4a1b4ed382add657ef39704f2fc193e9db417658b"
    );
}

/// What a thief holding only a data owner's static key can open of its recorded envelopes: with
/// the static pair key it opens a version-1 envelope, and nothing of a forward-secret one.
#[test]
fn a_stolen_sender_key_opens_static_envelopes_but_not_forward_secret_ones() {
    use chacha20poly1305::aead::AeadInOut;
    use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce, Tag};
    let owner = fixed(PartyId::DataOwner(0), 1);
    let server = fixed(PartyId::Server(0), 2);
    let keys = [
        (owner.party(), *owner.public_key()),
        (server.party(), *server.public_key()),
    ];
    let sealer = |id: &Identity| Sealer::new(id, keys.iter().map(|(p, k)| (*p, k)));
    let (o, s) = (sealer(&owner), sealer(&server));
    let ctx = Context {
        purpose: Purpose::Upload,
        job_id: 7,
        round: 1,
        chunk: 0,
    };
    let secret = b"an update".to_vec();
    let thief_key = derive_pair_key(&owner, server.party(), server.public_key()).unwrap();
    let thief_opens = |env: &[u8], aad_len: usize| {
        let (aad, rest) = env.split_at(aad_len);
        let (nonce, body) = rest.split_at(12);
        let (ct, tag) = body.split_at(body.len() - 16);
        let mut pt = ct.to_vec();
        ChaCha20Poly1305::new(&(*thief_key).into())
            .decrypt_inout_detached(
                &Nonce::try_from(nonce).unwrap(),
                aad,
                pt.as_mut_slice().into(),
                &Tag::try_from(tag).unwrap(),
            )
            .is_ok()
            && pt == secret
    };
    let static_env = o.seal_for(server.party(), &ctx, &secret).unwrap();
    assert!(
        thief_opens(&static_env, HEADER_LEN),
        "version 1 falls to the stolen key"
    );
    let fs_env = o.seal_ephemeral_for(server.party(), &ctx, &secret).unwrap();
    assert_eq!(fs_env.len(), secret.len() + EPHEMERAL_OVERHEAD);
    assert!(!thief_opens(&fs_env, HEADER_LEN));
    assert!(!thief_opens(&fs_env, HEADER_LEN + 32));
    // The receiver opens it, knows it is forward secret and who sent it.
    let expected = Expected {
        purpose: Purpose::Upload,
        job_id: 7,
        round: 1,
        sender: Some(owner.party()),
    };
    let opened = s.open(&fs_env, &expected).unwrap();
    assert!(opened.ephemeral);
    assert_eq!(opened.plaintext, secret);
    assert!(!s.open(&static_env, &expected).unwrap().ephemeral);
    // Every byte of the ephemeral key, the header and the body is authenticated. The version
    // (byte 0) and the fields the receiver expects (the job id, bytes 2-9) are refused as what
    // they then say, before authentication; the chunk number (bytes 28-35), which the receiver
    // expects nothing of, only authentication catches, as any byte of the key or the body.
    let flipped = |i: usize| {
        let mut bad = fs_env.clone();
        bad[i] ^= 1;
        s.open(&bad, &expected)
    };
    assert!(matches!(flipped(0), Err(SealError::UnsupportedVersion(3))));
    assert!(matches!(
        flipped(5),
        Err(SealError::WrongJob { expected: 7, .. })
    ));
    for i in [30, HEADER_LEN, HEADER_LEN + 31, fs_env.len() - 1] {
        assert!(
            matches!(flipped(i), Err(SealError::AuthenticationFailed { .. })),
            "byte {i}"
        );
    }
    // Another registered party cannot seal in the owner's name.
    let other = fixed(PartyId::DataOwner(1), 4);
    let keys3 = [keys[0], keys[1], (other.party(), *other.public_key())];
    let forger = Sealer::new(&other, keys3.iter().map(|(p, k)| (*p, k)));
    let mut forged = forger
        .seal_ephemeral_for(server.party(), &ctx, &secret)
        .unwrap();
    forged[18..23].copy_from_slice(&owner.party().to_bytes());
    assert!(matches!(
        s.open(&forged, &expected),
        Err(SealError::AuthenticationFailed { .. })
    ));
}
