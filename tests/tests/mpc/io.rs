//! Inputs from outside parties and outputs to the one entitled: a data owner secret-shares its
//! features, the model owner its weights, the servers compute `relu(x·w)` and reveal it to the
//! model owner only (the data owner gets nothing back).

use std::sync::Arc;

use tessera_common::PartyId;
use tessera_common::net::Network;
use tessera_common::ring::encode_elements;
use tessera_common::sharing::outside::Scheme;
use tessera_mpc::error::Misbehaved;
use tessera_mpc::harness::run_local_with;
use tessera_mpc::io::{receive_output, send_input};
use tessera_mpc::session::party_tag;
use tessera_mpc::{MpcError, nn};

use tessera_mpc::protocol::Protocol;

use crate::{Aby3M, Make, SecureNnM, enc, reals, runtime};

fn relu_of_product_reaches_only_the_model_owner<P: Make>(scheme: Scheme) {
    let (m, k, n) = (5, 7, 3);
    let xs = reals(61, m * k, -2.0, 2.0);
    let ws = reals(62, k * n, -1.0, 1.0);
    let (x, w) = (enc(&xs, &[m, k]), enc(&ws, &[k, n]));
    let outsiders = [PartyId::DataOwner(0), PartyId::ModelOwner];
    let (_, outside) = runtime()
        .block_on(run_local_with(
            3,
            &outsiders,
            move |s| async move {
                let p = P::make(s);
                let x = p.input(PartyId::DataOwner(0), "features", &[m, k]).await?;
                let w = p.input(PartyId::ModelOwner, "weights", &[k, n]).await?;
                let y = p.matmul_trunc(&x, &w, p.frac_bits()).await?;
                let z = nn::relu(&p, &y).await?;
                p.output(&z, PartyId::ModelOwner, "prediction").await
            },
            {
                let (x, w) = (x.clone(), w.clone());
                move |net| {
                    let (x, w) = (x.clone(), w.clone());
                    async move {
                        let net = Arc::new(net);
                        match net.me() {
                            PartyId::DataOwner(_) => {
                                send_input(&*net, scheme, "features", &x).await?;
                                Ok(None)
                            }
                            _ => {
                                send_input(&*net, scheme, "weights", &w).await?;
                                Ok(Some(
                                    receive_output(&*net, scheme, "prediction", &[m, n]).await?,
                                ))
                            }
                        }
                    }
                }
            },
        ))
        .unwrap();
    assert!(outside[0].is_none(), "the data owner receives nothing");
    let got = crate::dec(outside[1].as_ref().expect("the model owner receives"));
    for r in 0..m {
        for c in 0..n {
            let y: f64 = (0..k).map(|t| xs[r * k + t] * ws[t * n + c]).sum();
            assert!(
                (got[r * n + c] - y.max(0.0)).abs() <= 3.0 / 65536.0,
                "{}: [{r},{c}] {} vs {}",
                P::NAME,
                got[r * n + c],
                y.max(0.0)
            );
        }
    }
}

#[test]
fn outside_inputs_and_output_under_securenn() {
    relu_of_product_reaches_only_the_model_owner::<SecureNnM>(Scheme::Additive);
}

#[test]
fn outside_inputs_and_output_under_aby3() {
    relu_of_product_reaches_only_the_model_owner::<Aby3M>(Scheme::Replicated);
}

#[test]
fn an_input_party_giving_the_servers_mismatched_copies_is_refused_under_aby3() {
    let n = 4;
    let outcome = runtime().block_on(run_local_with(
        3,
        &[PartyId::DataOwner(0)],
        move |s| async move {
            let p = Aby3M::make(s);
            p.input(PartyId::DataOwner(0), "features", &[n]).await?;
            Ok(())
        },
        move |net| async move {
            // Server i gets (x_i, x_{i+1}); server1's copy of x_2 differs from server2's.
            let shares = [vec![1u64; n], vec![2u64; n], vec![3u64; n]];
            for i in 0..3 {
                let mut pair = shares[i].clone();
                pair.extend_from_slice(&shares[(i + 1) % 3]);
                if i == 1 {
                    pair[n] ^= 1;
                }
                net.send(
                    PartyId::Server(i as u8),
                    &party_tag("features"),
                    encode_elements(&pair),
                )
                .await?;
            }
            Ok(())
        },
    ));
    // Refused by the consistency check (the shares themselves have the right length).
    match outcome {
        Err(MpcError::Protocol {
            peer: PartyId::DataOwner(0),
            reason: Misbehaved::InconsistentInput { .. },
        }) => {}
        other => panic!("{other:?}"),
    }
}
