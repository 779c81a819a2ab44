//! The front's transport against callers it must not serve, and for those it must: TLS when
//! the cluster gives certificates (a plaintext client or one trusting another certificate gets
//! nowhere), a message over the size bound answered as such, and the standard health service.

use std::sync::Arc;
use std::time::Duration;

use tessera_aggregator::grpc::ServerTls;
use tessera_common::PartyId;
use tessera_common::api::{ApiError, LeaderApi, RoundState, ServerApi};
use tessera_common::config::ServerEndpoint;
use tessera_common::ringvec::RingVec;
use tessera_proto::v1::SealedChunk;
use tessera_proto::{GrpcLeader, GrpcServer};
use tessera_tests::GrpcAggregators;
use tonic::Code;

use super::{
    JOB, cluster, data_owner_client, revealed, settings, start_job, test_limits, update, upload_of,
    weights_envelopes,
};

/// A self-signed certificate for 127.0.0.1, made for this run (no key is committed).
fn test_tls() -> ServerTls {
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
            .expect("certificate");
    ServerTls {
        cert_pem: cert.pem(),
        key_pem: signing_key.serialize_pem(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_and_clients_speak_tls_when_the_cluster_gives_certificates() {
    let tls = test_tls();
    // The servers serve TLS and dial each other over it (the round below needs the peer links).
    let c = start_job(GrpcAggregators::start_with_tls(test_limits(), 3, Some(tls.clone())).await);
    let endpoint = |cert: Option<String>| ServerEndpoint {
        address: c.addresses[0].clone(),
        tls_cert: cert,
    };
    // The model owner opens the round over TLS, trusting exactly the server's certificate.
    let model_owner = GrpcServer::new(
        &endpoint(Some(tls.cert_pem.clone())),
        PartyId::Server(0),
        Arc::new(c.sealer(PartyId::ModelOwner)),
    )
    .unwrap();
    model_owner
        .open_round(weights_envelopes(&c, 1, settings().num_params))
        .await
        .unwrap();
    // Data owners upload over TLS; the round aggregates exactly.
    let mut sum = RingVec::zeros(32, settings().update_len()).unwrap();
    for o in 0..3 {
        let owner = PartyId::DataOwner(o);
        let leader = GrpcLeader::new(
            &endpoint(Some(tls.cert_pem.clone())),
            Arc::new(c.sealer(owner)),
        )
        .unwrap();
        leader
            .upload(upload_of(&c.sealer(owner), 1, &update(o)))
            .await
            .unwrap();
        sum.add_assign(&update(o)).unwrap();
    }
    assert_eq!(
        model_owner.status(JOB).await.unwrap().state,
        RoundState::Aggregated
    );
    assert_eq!(revealed(&c, 1).await, sum);
    // A plaintext client, and a client trusting another certificate, get nowhere.
    for wrong in [None, Some(test_tls().cert_pem)] {
        let client = GrpcServer::new(
            &endpoint(wrong),
            PartyId::Server(0),
            Arc::new(c.sealer(PartyId::ModelOwner)),
        )
        .unwrap();
        // No answer either way: the connection fails (unavailable), or, since the server sends
        // its TLS alert at once (TCP_NODELAY), a plaintext client may first read that alert as
        // a broken HTTP/2 stream: tonic's `Internal`, which no service of the server answers
        // with (so it cannot be a refusal that reached one).
        let got = client.status(JOB).await;
        let broken_stream = matches!(&got, Err(ApiError::Front { code, .. }) if code == "Internal");
        assert!(
            matches!(got, Err(ApiError::Unavailable(_))) || broken_stream,
            "{got:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_upload_message_is_answered_as_such_not_as_a_retryable_break() {
    let c = cluster(test_limits()).await;
    let mut client = data_owner_client(&c, 0)
        .await
        .max_encoding_message_size(64 << 20);
    let chunk = SealedChunk {
        envelope: vec![0u8; 17 << 20],
    };
    let status = client
        .upload_shares(tokio_stream::iter([chunk]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status}");
}

/// Every server answers the standard gRPC health service: the server (`""`) and secure
/// aggregation SERVING once its peers connected; the MPC service, never started in this
/// harness, NOT_SERVING; an unknown service NOT_FOUND.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_service_answers_serving() {
    use tessera_aggregator::grpc::{FEDERATED_SERVICE, MPC_SERVICE};
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;

    let c = GrpcAggregators::start(test_limits(), 1).await;
    for address in &c.addresses {
        let channel = tonic::transport::Channel::from_shared(format!("http://{address}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let client = HealthClient::new(channel);
        let status = |service: &'static str| {
            let mut client = client.clone();
            async move {
                client
                    .check(HealthCheckRequest {
                        service: service.into(),
                    })
                    .await
                    .map(|r| r.into_inner().status())
            }
        };
        // The status task marks the services within 100 ms of the cell being set.
        let mut serving = false;
        for _ in 0..50 {
            if status("").await.unwrap() == ServingStatus::Serving {
                serving = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(serving, "{address} never said SERVING");
        assert_eq!(
            status(FEDERATED_SERVICE).await.unwrap(),
            ServingStatus::Serving
        );
        assert_eq!(
            status(MPC_SERVICE).await.unwrap(),
            ServingStatus::NotServing
        );
        assert_eq!(
            status("no.such.Service").await.unwrap_err().code(),
            Code::NotFound
        );
    }
}
