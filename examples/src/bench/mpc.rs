//! `bench mpc`: every protocol's operations in simulated mode (three servers in one process over
//! the in-memory network), per operation: elements or matrix size, seconds, communication rounds
//! (the critical path: every message carries its depth, see `Session::net_stats`), bytes per element
//! (sent by all servers together, over the output elements) and the expected bytes per element.
//!
//! The expected figure comes from the papers' cost models, counted for the circuit each
//! operation runs (64-bit ring, `l = 64`):
//! - Pond / SecureNN multiplication: SecureNN's `MatMul` for one element, `5l` bits (each
//!   computing server opens two masked values, the dealer sends one correction), of which the
//!   correction goes offline with preprocessing (`pond::prep`: the triples are made ahead):
//!   32 bytes online; matrix product `m x k` by `k x n`: `2(mk + kn) l` bits online over `mn`
//!   outputs (the correction's `mn l` offline). SecureNN DReLU (comparison): the paper's
//!   `8 l log p + 19 l` bits with `log p = 8` (a `Z_67` element is sent as a byte) is 664 bytes;
//!   here the helper's shares for `server0` come from the PRG they share, which leaves 496:
//!   ShareConvert 224 (two masked values 16, the dealt bits 64 and `delta` 8, PrivateCompare
//!   128, `eta` 8) and ComputeMSB 272 (the dealt masks 80, the opening of `r` 16,
//!   PrivateCompare 128, `beta` 8, one multiplication 40), of which the masks' 80
//!   (`securenn::prep`) and the multiplication's correction 8 go offline: 408 online. Local
//!   truncation: nothing.
//! - ABY3 (§3, §5): every multiplication gate costs each of the three servers one element (one
//!   bit for an AND gate): mul and matmul 24 bytes per output; opening 24 bytes. The sign of a
//!   64-bit value (`aby3::sliced`): server 1's summand `x1 + x2` shared as bits (8 bytes), the
//!   generate bits (63 ANDs) and a carry tree (118), 181 AND gates = 67.9 bytes; bit injection
//!   with a preprocessed daBit opens one bit per server (0.4 bytes; the daBit itself, one round
//!   of three-party OT, is offline); so a comparison costs 76.25 and ReLU 100.25 (a whole A2B
//!   adder would be 707 gates, 265 bytes, and direct bit injection 48). Truncation (the two-share Π_trunc1 of §5.1.1): one
//!   element from server 1 to server 0, 8 bytes; fused with a product, the three-out-of-three
//!   shares `z0`, `z2` are swapped between servers 0 and 2 and server 1 sends one element: 24
//!   bytes.
//!
//! Composite operations (exp, reciprocal, sigmoid, softmax, sort, division) add up these unit
//! costs for the operations they run (counts in [`expected`]).

use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};
use tessera_common::model_spec::ModelSpec;
use tessera_common::net::NetStats;
use tessera_common::net::memory::MemoryNetwork;
use tessera_common::prg::{Prg, Seed, drawn_bytes};
use tessera_common::ring::RingTensor;
use tessera_mpc::harness::run_local;
use tessera_mpc::layout::Window;
use tessera_mpc::model::{Activations, SecureModel};
use tessera_mpc::prep::Needs;
use tessera_mpc::protocol::{Aby3, Pond, Protocol, SecureNn};
use tessera_mpc::{MpcError, Session, approx, nn};

use super::floor::Rates;

/// Fractional bits of the fixed-point inputs.
const F: u32 = 16;

/// One benchmarked operation: its name, input shapes and the range of its (fixed-point) inputs.
struct Case {
    op: &'static str,
    shapes: Vec<Vec<usize>>,
    range: (f64, f64),
}

/// MNIST network A (DESIGN.md): FC 784-128, ReLU, FC 128-128, ReLU, FC 128-10; the input batch
/// and the weights and biases of the three layers.
fn network_a(batch: usize) -> Case {
    let shapes = [
        vec![batch, 784],
        vec![784, 128],
        vec![128],
        vec![128, 128],
        vec![128],
        vec![128, 10],
        vec![10],
    ];
    Case {
        op: "network_a",
        shapes: shapes.to_vec(),
        range: (-0.1, 0.1),
    }
}

fn cases() -> Vec<Case> {
    let case = |op, shapes: &[&[usize]], range| Case {
        op,
        shapes: shapes.iter().map(|s| s.to_vec()).collect(),
        range,
    };
    vec![
        case("mul", &[&[100_000], &[100_000]], (-100.0, 100.0)),
        case("matmul", &[&[128, 784], &[784, 128]], (-1.0, 1.0)),
        case("truncation", &[&[100_000]], (-1000.0, 1000.0)),
        case("relu", &[&[100_000]], (-1000.0, 1000.0)),
        case("comparison", &[&[100_000], &[100_000]], (-1000.0, 1000.0)),
        case("maxpool2d", &[&[1, 16, 24, 24]], (-10.0, 10.0)),
        case("exp", &[&[10_000]], (-4.0, 2.0)),
        case("reciprocal", &[&[10_000]], (0.5, 50.0)),
        case("sigmoid", &[&[10_000]], (-6.0, 6.0)),
        case("softmax", &[&[128, 10]], (-4.0, 4.0)),
        case("division", &[&[1_000], &[1_000]], (0.5, 20.0)),
        case("sort", &[&[1_000]], (-1000.0, 1000.0)),
        network_a(1),
        network_a(128),
    ]
}

/// Runs `op` on shared inputs under `p` (Pond's ReLU and sigmoid are its polynomials).
async fn apply<P: Protocol>(
    p: &P,
    op: &'static str,
    v: &[P::Tensor],
) -> Result<P::Tensor, MpcError> {
    let pond = P::NAME == "pond";
    match op {
        "mul" => p.mul(&v[0], &v[1]).await,
        "matmul" => p.matmul(&v[0], &v[1]).await,
        "truncation" => p.truncate(&v[0], F).await,
        "relu" if pond => nn::relu_poly(p, &v[0]).await,
        "relu" => nn::relu(p, &v[0]).await,
        "comparison" => nn::less(p, &v[0], &v[1]).await,
        "maxpool2d" => {
            let window = Window::square((2, 2), 2, 0);
            nn::maxpool2d(p, &v[0], window).await
        }
        "exp" => approx::exp(p, &v[0]).await,
        "reciprocal" => approx::reciprocal(p, &v[0]).await,
        "sigmoid" if pond => nn::sigmoid_poly(p, &v[0]).await,
        "sigmoid" => approx::sigmoid(p, &v[0]).await,
        "softmax" => approx::softmax(p, &v[0]).await,
        "division" => nn::divide(p, &v[0], &v[1], 6).await,
        "sort" => nn::sort(p, &v[0]).await,
        "network_a" => {
            let model = SecureModel::new(&ModelSpec::network_a())?;
            let activations = if pond {
                Activations::Polynomial
            } else {
                Activations::Exact
            };
            model.forward(p, &v[1..], &v[0], activations).await
        }
        other => Err(MpcError::Unsupported {
            protocol: P::NAME,
            op: other,
        }),
    }
}

/// Unit costs in bytes per element for one protocol (see the module docs).
struct Units {
    mul: f64,
    trunc: f64,
    mul_trunc: f64,
    drelu: f64,
}

fn units(protocol: &str) -> Units {
    match protocol {
        "aby3" => Units {
            mul: 24.0,
            trunc: 8.0,
            mul_trunc: 24.0,
            drelu: 8.0 + (181.0 + 1.0) * 3.0 / 8.0,
        },
        _ => Units {
            mul: 32.0,
            trunc: 0.0,
            mul_trunc: 32.0,
            drelu: 408.0,
        },
    }
}

/// The expected bytes per output element of `op` (counts of the unit operations it runs).
fn expected(protocol: &str, op: &str, shapes: &[Vec<usize>]) -> f64 {
    let u = units(protocol);
    // x/2^4 (one truncation), t^2/2 and 8 squarings (nine products).
    let exp = u.trunc + 9.0 * u.mul_trunc;
    let select = u.mul;
    match op {
        "mul" => u.mul,
        "matmul" => {
            let (m, k, n) = (
                shapes[0][0] as f64,
                shapes[0][1] as f64,
                shapes[1][1] as f64,
            );
            if protocol == "aby3" {
                24.0
            } else {
                2.0 * (m * k + k * n) * 8.0 / (m * n)
            }
        }
        "truncation" => u.trunc,
        // Pond: x/8, 7 products for the powers up to 8, one truncation of the sum.
        "relu" if protocol == "pond" => 2.0 * u.trunc + 7.0 * u.mul_trunc,
        "relu" => u.drelu + u.mul,
        "comparison" => u.drelu,
        // A 2x2 window: a tree of 3 comparisons and selects per output.
        "maxpool2d" => 3.0 * (u.drelu + select),
        "exp" => exp,
        // exp, the initial affine map, then 10 Newton steps of two products.
        "reciprocal" => exp + u.trunc + 20.0 * u.mul_trunc,
        // Pond: x/8, 8 powers, one truncation of the sum.
        "sigmoid" if protocol == "pond" => 2.0 * u.trunc + 8.0 * u.mul_trunc,
        // sign, |x|, exp, 4 Newton steps, the final select.
        "sigmoid" => u.drelu + 2.0 * select + exp + 8.0 * u.mul_trunc,
        "softmax" => {
            let k = *shapes[0].last().unwrap_or(&1) as f64;
            // Max tree over 10: 9 comparisons and selects per row; exp per element; per row 16
            // Newton products (8 steps from 1/k); one final product per element.
            (9.0 * (u.drelu + select) + 16.0 * u.mul_trunc) / k + exp + u.mul_trunc
        }
        // 22 bit steps (16 fractional + 6 integer), each one comparison and one product.
        "division" => 22.0 * (u.drelu + u.mul),
        "sort" => {
            let n = shapes[0][0] as f64;
            let size = n.log2().ceil().exp2();
            let stages = size.log2() * (size.log2() + 1.0) / 2.0;
            stages * (size / 2.0) * (u.drelu + u.mul) / n
        }
        // Three dense layers (matrix product and truncation), two ReLU layers of 128.
        "network_a" => {
            let m = shapes[0][0] as f64;
            let dense = |k: f64, n: f64| {
                if protocol == "aby3" {
                    m * n * u.mul_trunc
                } else {
                    2.0 * (m * k + k * n) * 8.0
                }
            };
            let relu = if protocol == "pond" {
                2.0 * u.trunc + 7.0 * u.mul_trunc
            } else {
                u.drelu + u.mul
            };
            (dense(784.0, 128.0)
                + dense(128.0, 128.0)
                + dense(128.0, 10.0)
                + 2.0 * m * 128.0 * relu)
                / (m * 10.0)
        }
        _ => f64::NAN,
    }
}

fn inputs(case: &Case) -> Vec<RingTensor<u64>> {
    case.shapes
        .iter()
        .enumerate()
        .map(|(i, shape)| {
            let n: usize = shape.iter().product();
            let raw: Vec<u64> = Prg::new(&Seed([i as u8 + 1; 32]), 0).ring_vec(n);
            let (lo, hi) = case.range;
            let v = raw
                .iter()
                .map(|r| {
                    let unit = (*r >> 11) as f64 / (1u64 << 53) as f64;
                    ((lo + (hi - lo) * unit) * f64::from(1u32 << F)).round() as i64 as u64
                })
                .collect();
            RingTensor::from_vec(shape, v).unwrap_or_else(|_| RingTensor::zeros(shape))
        })
        .collect()
}

/// What one server measured in one run.
struct Measured {
    /// Online seconds and traffic (its `rounds` is the depth the server reached past the common
    /// depth at the start).
    seconds: f64,
    stats: NetStats,
    /// Output elements.
    elements: usize,
    /// The preprocessing made ahead: seconds and traffic.
    offline_seconds: f64,
    offline: NetStats,
    /// Correlated values the operation asked its pools for (taken, or short and made inline):
    /// daBits under ABY3, ComputeMSB masks and Beaver triples under SecureNN, triples under Pond.
    needs: Needs,
    /// The process's PRG byte counter when this server started and ended the online phase.
    prg: (u64, u64),
}

async fn measure<P: Protocol<Elem = u64>>(
    session: Arc<Session<MemoryNetwork>>,
    p: P,
    op: &'static str,
    data: Vec<RingTensor<u64>>,
    needs: Needs,
) -> Result<Measured, MpcError> {
    let me = p.me();
    let mut shared = Vec::new();
    for x in &data {
        shared.push(p.share(0, (me == 0).then_some(x), x.shape()).await?);
    }
    // Offline: the correlated randomness the operation will take, made ahead.
    session.barrier().await?;
    let before = session.net_stats();
    let start = Instant::now();
    p.prepare(&needs).await?;
    let offline_seconds = start.elapsed().as_secs_f64();
    let offline = session.net_stats().since(&before);
    // Online. Start together: afterwards every server's depth clock is the same.
    session.barrier().await?;
    let asked = p.wanted();
    let before = session.net_stats();
    let prg_start = drawn_bytes();
    let start = Instant::now();
    let out = apply(&p, op, &shared).await?;
    let seconds = start.elapsed().as_secs_f64();
    let prg = (prg_start, drawn_bytes());
    let stats = session.net_stats().since(&before);
    Ok(Measured {
        seconds,
        stats,
        elements: p.shape(&out).iter().product(),
        offline_seconds,
        offline,
        needs: p.wanted().since(&asked),
        prg,
    })
}

fn run_case(
    runtime: &tokio::runtime::Runtime,
    protocol: &'static str,
    case: &Case,
    needs: &Needs,
) -> Result<Vec<Measured>, MpcError> {
    let data = inputs(case);
    let op = case.op;
    runtime.block_on(run_local(3, move |s: Arc<Session<MemoryNetwork>>| {
        let (data, needs) = (data.clone(), needs.clone());
        async move {
            match protocol {
                "pond" => measure(Arc::clone(&s), Pond::new(s, F)?, op, data, needs).await,
                "securenn" => {
                    let p = SecureNn::new(Arc::clone(&s), F)?;
                    measure(s, p, op, data, needs).await
                }
                _ => measure(Arc::clone(&s), Aby3::new(s, F)?, op, data, needs).await,
            }
        }
    }))
}

/// Timed runs of each case after one sizing run; the table reports the median time (this
/// machine's run-to-run noise is 10-35%), the traffic of the last run (identical in every run).
const REPEATS: usize = 3;

/// Online matrix multiply-adds of a case over all servers: each secure product costs 6 products
/// of its size under ABY3 (three servers, two cross terms each) and 4 under Pond and SecureNN
/// (two per computing server; the dealer's triple is made offline). Elementwise products count
/// as bytes.
fn macs(protocol: &str, case: &Case) -> f64 {
    let per = if protocol == "aby3" { 6.0 } else { 4.0 };
    let dims = |s: &Vec<usize>| s.iter().map(|d| *d as f64).collect::<Vec<_>>();
    match case.op {
        "matmul" => {
            let (a, b) = (dims(&case.shapes[0]), dims(&case.shapes[1]));
            per * a[0] * a[1] * b[1]
        }
        "network_a" => {
            let m = case.shapes[0][0] as f64;
            per * m * (784.0 * 128.0 + 128.0 * 128.0 + 128.0 * 10.0)
        }
        _ => 0.0,
    }
}

/// Runs every case (or those whose operation is `only`) under every protocol that has it;
/// prints the table, returns the JSON rows.
pub fn run(only: Option<&str>) -> Vec<Value> {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let rates = Rates::measure();
    println!(
        "floor rates: u64 matmul {:.2} GMAC/s (two cores), memory copy {:.1} GB/s, PRG {:.2} GB/s per core\n",
        rates.macs_u64 / 1e9,
        rates.copy / 1e9,
        rates.prg / 1e9
    );
    let mut rows = Vec::new();
    for case in cases() {
        if only.is_some_and(|o| o != case.op) {
            continue;
        }
        for protocol in ["pond", "securenn", "aby3"] {
            // Sizing: one run without preprocessing says what correlated values (daBits,
            // ComputeMSB masks, triples) the program asks for; the timed runs make them ahead
            // (offline) and then run (online).
            let needs = match run_case(&runtime, protocol, &case, &Needs::default()) {
                Ok(m) => m[0].needs.clone(),
                Err(MpcError::Unsupported { .. }) => continue,
                Err(e) => {
                    eprintln!("{protocol} {}: {e}", case.op);
                    continue;
                }
            };
            let mut times = Vec::with_capacity(REPEATS);
            let mut offline_times = Vec::with_capacity(REPEATS);
            let mut last = None;
            for _ in 0..REPEATS {
                match run_case(&runtime, protocol, &case, &needs) {
                    Ok(m) => {
                        times.push(m.iter().map(|m| m.seconds).fold(0.0, f64::max));
                        offline_times.push(m.iter().map(|m| m.offline_seconds).fold(0.0, f64::max));
                        last = Some(m);
                    }
                    Err(e) => {
                        eprintln!("{protocol} {}: {e}", case.op);
                        break;
                    }
                }
            }
            let Some(per_server) = last else { continue };
            let median = |v: &mut Vec<f64>| {
                v.sort_by(f64::total_cmp);
                v[v.len() / 2]
            };
            let seconds = median(&mut times);
            let prepared = needs.total();
            let offline_seconds = median(&mut offline_times);
            let rounds = per_server.iter().map(|m| m.stats.rounds).max().unwrap_or(0);
            let bytes: u64 = per_server.iter().map(|m| m.stats.bytes_sent).sum();
            let offline_bytes: u64 = per_server.iter().map(|m| m.offline.bytes_sent).sum();
            let prg_bytes = per_server.iter().map(|m| m.prg.1).max().unwrap_or(0)
                - per_server.iter().map(|m| m.prg.0).min().unwrap_or(0);
            let elements = per_server[0].elements.max(1);
            let per_element = bytes as f64 / elements as f64;
            let expected = expected(protocol, case.op, &case.shapes);
            let macs = macs(protocol, &case);
            let floor = rates.floor_u64(macs, bytes as f64, prg_bytes as f64);
            let op = match (protocol, case.op) {
                ("pond", "relu") => "relu (poly)",
                ("pond", "network_a") => "network_a (poly relu)",
                ("pond", "sigmoid") => "sigmoid (poly)",
                (_, op) => op,
            };
            let shape: Vec<usize> = if case.op == "network_a" {
                vec![case.shapes[0][0], 10]
            } else if case.op == "matmul" {
                vec![case.shapes[0][0], case.shapes[0][1], case.shapes[1][1]]
            } else {
                case.shapes[0].clone()
            };
            rows.push(json!({
                "protocol": protocol, "op": op, "shape": shape, "seconds": seconds,
                "offline_seconds": offline_seconds, "prepared": prepared,
                "offline_bytes_per_element": offline_bytes as f64 / elements as f64,
                "rounds": rounds, "bytes_per_element": per_element,
                "expected_bytes_per_element": expected, "macs": macs, "prg_bytes": prg_bytes,
                "floor_seconds": floor, "x_floor": seconds / floor,
            }));
        }
    }
    super::report::print_rows("mpc", &rows);
    rows
}
