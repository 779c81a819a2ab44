//! Fuzz targets: every decoder of untrusted bytes as a function of those bytes that must return
//! (an error is the expected answer to garbage) and never panic, hang or allocate without bound.
//! The cargo-fuzz crate in `tests/fuzz/` (outside the workspace: libFuzzer needs nightly) runs
//! them; `tests/tests/fuzz_replay.rs` replays every input kept under
//! `tests/fuzz/regressions/<target>/` with stable Rust in the ordinary test run, so a crash once
//! found stays fixed.
//!
//! Where a decoder sits behind authentication, the target seals the fuzzed bytes with a real key
//! first, so the fuzzer reaches the parser after the tag check as well as the envelope's own
//! header parsing.

use std::path::Path;
use std::sync::OnceLock;

use prost::Message;
use rand::SeedableRng;
use tessera_aggregator::mpc::service::JobSpec;
use tessera_aggregator::net::frame::{Hello, open_frame, seal_frame};
use tessera_aggregator::secagg::messages::{PeerReply, RoundMsg};
use tessera_common::PartyId;
use tessera_common::config::ClusterConfig;
use tessera_common::identity::Identity;
use tessera_common::net::Tag;
use tessera_common::request::{RequestKind, open_request};
use tessera_common::seal::{Expected, Header, Purpose, Sealer};
use tessera_common::upload::UploadPart;

/// A fuzz target.
pub type Target = fn(&[u8]);

/// Every target by name (the name of its folder of kept inputs and of its cargo-fuzz binary).
pub const TARGETS: &[(&str, Target)] = &[
    ("envelope", envelope),
    ("request_token", request_token),
    ("peer_frame", peer_frame),
    ("peer_message", peer_message),
    ("upload_part", upload_part),
    ("mpc_launch", mpc_launch),
    ("cluster_file", cluster_file),
    ("onnx", onnx),
    ("idx", idx),
    ("grpc_messages", grpc_messages),
];

/// Two servers and a data owner with fixed keys (the same every run, so a crash replays).
struct Parties {
    server0: Sealer,
    server1: Sealer,
    owner: Sealer,
}

fn parties() -> &'static Parties {
    static PARTIES: OnceLock<Parties> = OnceLock::new();
    PARTIES.get_or_init(|| {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x07e5_5e7a);
        let ids: Vec<Identity> = [
            PartyId::Server(0),
            PartyId::Server(1),
            PartyId::DataOwner(0),
        ]
        .into_iter()
        .map(|p| Identity::generate(p, &mut rng))
        .collect();
        let keys: Vec<_> = ids.iter().map(|i| (i.party(), *i.public_key())).collect();
        let sealer = |i: &Identity| Sealer::new(i, keys.iter().map(|(p, k)| (*p, k)));
        Parties {
            server0: sealer(&ids[0]),
            server1: sealer(&ids[1]),
            owner: sealer(&ids[2]),
        }
    })
}

const PURPOSES: [Purpose; 9] = [
    Purpose::Upload,
    Purpose::Result,
    Purpose::Peer,
    Purpose::Control,
    Purpose::Input,
    Purpose::Request,
    Purpose::Notice,
    Purpose::Output,
    Purpose::JobControl,
];

/// An envelope as any server receives one: its header parsed, then opened under every purpose
/// with the job, round and sender it names (either version).
pub fn envelope(data: &[u8]) {
    let Ok(header) = Header::parse(data) else {
        return;
    };
    for purpose in PURPOSES {
        let expected = Expected {
            purpose,
            job_id: header.job_id,
            round: header.round,
            sender: None,
        };
        let _ = parties().server0.open(data, &expected);
    }
}

/// A read request's token, at the clock and job it names.
pub fn request_token(data: &[u8]) {
    let Ok(header) = Header::parse(data) else {
        return;
    };
    for kind in [
        RequestKind::FetchRound,
        RequestKind::FetchWeights,
        RequestKind::Status,
        RequestKind::FetchOutput,
    ] {
        let _ = open_request(
            &parties().server0,
            data,
            kind,
            header.job_id,
            header.round,
            header.chunk,
        );
    }
}

/// A peer frame: the bytes as a frame envelope, and as the plaintext of an authentic frame
/// (tag length, tag, payload) opened and read as a hello.
pub fn peer_frame(data: &[u8]) {
    let p = parties();
    let _ = open_frame(&p.server0, Some(PartyId::Server(1)), 7, 0, data);
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let tag = Tag(String::from_utf8_lossy(&rest[..rest.len().min(usize::from(first))]).into());
    let payload = &rest[rest.len().min(usize::from(first))..];
    if let Ok(sealed) = seal_frame(&p.server1, PartyId::Server(0), 7, 1, &tag, payload)
        && let Ok((_, tag, payload)) = open_frame(&p.server0, None, 7, 1, &sealed)
    {
        let _ = Hello::parse(&tag, &payload);
    }
}

/// A secure-aggregation message between servers (it arrives inside an authentic frame).
pub fn peer_message(data: &[u8]) {
    let _ = RoundMsg::from_bytes(data);
    let _ = PeerReply::from_bytes(data);
}

/// An opened upload chunk's part (manifest, share chunk or seed).
pub fn upload_part(data: &[u8]) {
    let _ = UploadPart::from_bytes(data);
}

/// An MPC job's launch description (JSON), and a training's settings checked.
pub fn mpc_launch(data: &[u8]) {
    if let Ok(spec) = serde_json::from_slice::<JobSpec>(data)
        && let tessera_aggregator::mpc::service::JobKind::Train { job, .. } = &spec.kind
    {
        let _ = job.check();
        let _ = job.terms();
    }
}

/// A cluster file (TOML).
pub fn cluster_file(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = ClusterConfig::from_toml(text);
    }
}

/// An ONNX model, imported as `--model` would.
pub fn onnx(data: &[u8]) {
    let _ = tessera_common::onnx::import_bytes(data, Path::new("fuzz.onnx"));
}

/// An IDX image file and its label file: the first byte says where the bytes split.
pub fn idx(data: &[u8]) {
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    let at = rest.len() * usize::from(cut) / 256;
    let (images, labels) = rest.split_at(at);
    let _ = tessera_common::dataset::parse_idx(images, labels, Path::new("fuzz"));
}

/// Every protobuf message a gRPC entry decodes.
pub fn grpc_messages(data: &[u8]) {
    use tessera_proto::v1;
    let _ = v1::FetchRoundRequest::decode(data);
    let _ = v1::FetchWeightsRequest::decode(data);
    let _ = v1::SealedChunk::decode(data);
    let _ = v1::FetchResultRequest::decode(data);
    let _ = v1::StatusRequest::decode(data);
    let _ = v1::PeerFrame::decode(data);
    let _ = v1::FetchOutputRequest::decode(data);
    let _ = v1::MpcStatusRequest::decode(data);
    let _ = v1::MpcStatus::decode(data);
    let _ = v1::RoundAnnouncement::decode(data);
    let _ = v1::JobStatus::decode(data);
}

/// Seed inputs for the targets: one well-formed example of each, so a fuzzer starts past the
/// first check (written into the regression folders by `fuzz_replay.rs`'s seeding test).
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let p = parties();
    let ctx = |purpose, chunk| tessera_common::seal::Context {
        purpose,
        job_id: 77,
        round: 1,
        chunk,
    };
    let mut out = vec![
        (
            "envelope",
            p.owner
                .seal_ephemeral_for(PartyId::Server(0), &ctx(Purpose::Upload, 0), b"seed")
                .unwrap_or_default(),
        ),
        (
            "envelope",
            p.owner
                .seal_for(PartyId::Server(0), &ctx(Purpose::Notice, 0), b"seed")
                .unwrap_or_default(),
        ),
        (
            "request_token",
            tessera_common::request::seal_request(
                &p.owner,
                PartyId::Server(0),
                RequestKind::FetchRound,
                77,
                0,
                1_800_000_000,
            )
            .unwrap_or_default(),
        ),
        (
            "peer_frame",
            seal_frame(
                &p.server1,
                PartyId::Server(0),
                7,
                0,
                &Tag("hello".into()),
                &[0u8; 72],
            )
            .unwrap_or_default(),
        ),
        ("peer_message", vec![0]),
        (
            "mpc_launch",
            br#"{"issued_at":1,"nonce":2,"kind":{"type":"predict","model_id":"m","batch":1}}"#
                .to_vec(),
        ),
        (
            "cluster_file",
            b"[job]\nring_bits = 64\n[privacy]\nmin_noise_multiplier = 1.0\n[parties.server0]\naddress = \"127.0.0.1:1\"\npublic_key = \"AAAA\"\n".to_vec(),
        ),
        ("grpc_messages", vec![0x0a, 0x02, 0x01, 0x02]),
    ];
    let mut idx = vec![128u8];
    idx.extend_from_slice(&[0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 2, 1, 2, 3, 4]);
    idx.extend_from_slice(&[0, 0, 8, 1, 0, 0, 0, 1, 7]);
    out.push(("idx", idx));
    out
}
