//! The same secure operations over gRPC between the servers on 127.0.0.1 (real sockets, sealed
//! frames): mul and matmul exact, fixed-point mul with truncation within one unit, ReLU exact
//! (SecureNN and ABY3), each revealed to server 1 only.

use std::time::Duration;

use tessera_common::ring::RingTensor;
use tessera_mpc::MpcError;
use tessera_mpc::harness::run_on;
use tessera_mpc::nn;
use tessera_mpc::protocol::{Aby3, Pond, Protocol, SecureNn};
use tessera_tests::grpc_cluster;

use crate::{F, enc, reals, runtime, signed, tensor};

/// Inputs: ring tensors `a [n]`, `b [n]`, `m1 [4, 9]`, `m2 [9, 3]`, fixed-point `x [n]`, `y [n]`.
#[derive(Clone)]
struct Inputs {
    ring: Vec<RingTensor<u64>>,
    fixed: Vec<RingTensor<u64>>,
}

async fn scenario<P: Protocol<Elem = u64>>(
    p: P,
    inputs: Inputs,
    with_relu: bool,
) -> Result<Vec<Option<RingTensor<u64>>>, MpcError> {
    let me = p.me();
    let mut shared = Vec::new();
    for (i, t) in inputs.ring.iter().chain(&inputs.fixed).enumerate() {
        let owner = i % 3;
        shared.push(
            p.share(owner, (me == owner).then_some(t), t.shape())
                .await?,
        );
    }
    let mut outs = vec![
        p.reveal(&p.mul(&shared[0], &shared[1]).await?, 1).await?,
        p.reveal(&p.matmul(&shared[2], &shared[3]).await?, 1)
            .await?,
        p.reveal(&p.mul_trunc(&shared[4], &shared[5], F).await?, 1)
            .await?,
    ];
    if with_relu {
        outs.push(p.reveal(&nn::relu(&p, &shared[4]).await?, 1).await?);
    }
    Ok(outs)
}

fn check(name: &str, inputs: &Inputs, outs: Vec<Vec<Option<RingTensor<u64>>>>, with_relu: bool) {
    assert!(
        outs[0].iter().chain(&outs[2]).all(Option::is_none),
        "{name}: only server1 receives"
    );
    let got = &outs[1];
    let r = &inputs.ring;
    assert_eq!(
        got[0].as_ref().unwrap(),
        &r[0].mul(&r[1]).unwrap(),
        "{name}: mul"
    );
    assert_eq!(
        got[1].as_ref().unwrap(),
        &r[2].matmul(&r[3]).unwrap(),
        "{name}: matmul"
    );
    // Within one unit except where the probabilistic truncation fails: products of inputs in
    // [-1000, 1000] with 16 fractional bits stay below 2^52, so a failure has probability below
    // 2^-11 per element (SecureML's local truncation; ABY3's pairs half that). Over 200 elements
    // about 0.1 failures are expected and more than two have probability about 2e-4.
    let (x, y) = (&inputs.fixed[0], &inputs.fixed[1]);
    let prod = signed(got[2].as_ref().unwrap());
    let failures = prod
        .iter()
        .zip(x.as_slice().iter().zip(y.as_slice()))
        .filter(|(got, (a, b))| {
            let exact = ((**a as i64 as i128 * **b as i64 as i128) >> F) as i64;
            (**got - exact).abs() > 1
        })
        .count();
    assert!(
        failures <= 2,
        "{name}: mul_trunc off by more than one unit {failures} times"
    );
    if with_relu {
        let expected = x.map(|v| if (v as i64) < 0 { 0 } else { v });
        assert_eq!(got[3].as_ref().unwrap(), &expected, "{name}: relu");
    }
}

#[test]
fn mul_matmul_truncation_and_relu_over_grpc() {
    let n = 200;
    let inputs = Inputs {
        ring: vec![
            tensor(71, &[n]),
            tensor(72, &[n]),
            tensor(73, &[4, 9]),
            tensor(74, &[9, 3]),
        ],
        fixed: vec![
            enc(&reals(75, n, -1000.0, 1000.0), &[n]),
            enc(&reals(76, n, -1000.0, 1000.0), &[n]),
        ],
    };
    let rt = runtime();
    let timeout = Duration::from_secs(30);
    let i = inputs.clone();
    let outs = rt
        .block_on(async move {
            run_on(grpc_cluster(timeout).await, move |s| {
                let i = i.clone();
                async move { scenario(Pond::new(s, F)?, i, false).await }
            })
            .await
        })
        .unwrap();
    check("pond", &inputs, outs, false);
    let i = inputs.clone();
    let outs = rt
        .block_on(async move {
            run_on(grpc_cluster(timeout).await, move |s| {
                let i = i.clone();
                async move { scenario(SecureNn::new(s, F)?, i, true).await }
            })
            .await
        })
        .unwrap();
    check("securenn", &inputs, outs, true);
    let i = inputs.clone();
    let outs = rt
        .block_on(async move {
            run_on(grpc_cluster(timeout).await, move |s| {
                let i = i.clone();
                async move { scenario(Aby3::new(s, F)?, i, true).await }
            })
            .await
        })
        .unwrap();
    check("aby3", &inputs, outs, true);
}
