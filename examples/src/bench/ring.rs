//! `bench ring`: ring matmul (Tessera's kernel vs ndarray `dot`), PRG expansion, seal and open.
//!
//! The floor of an `n x n` matmul is `n^3` multiply-adds; rows report multiply-adds per second.
//! PRG, seal and open rows report bytes per second over 1 MiB messages.

use std::num::Wrapping;
use std::time::Duration;

use ndarray::Array2;
use rand::Rng;
use serde_json::{Value, json};
use tessera_common::PartyId;
use tessera_common::identity::Identity;
use tessera_common::prg::{Prg, Seed};
use tessera_common::ring::{Ring, matmul, matmul_serial};
use tessera_common::seal::{Context, Expected, Purpose, Sealer};

use super::time_it;

const SIZES: [usize; 3] = [128, 512, 1024];
const MIN_TIME: Duration = Duration::from_millis(300);

fn random_matrix<R: Ring>(n: usize) -> Vec<R> {
    let mut v = vec![R::ZERO; n * n];
    rand::rng().fill_bytes(bytemuck_bytes(&mut v));
    v
}

fn bytemuck_bytes<R: Ring>(v: &mut [R]) -> &mut [u8] {
    bytemuck::cast_slice_mut(v)
}

fn matmul_rows<R: Ring>(rows: &mut Vec<Value>)
where
    Wrapping<R>: ndarray::LinalgScalar,
{
    let threads = rayon::current_num_threads();
    for n in SIZES {
        let a = random_matrix::<R>(n);
        let b = random_matrix::<R>(n);
        let macs = (n * n * n) as f64;
        let serial = time_it(MIN_TIME, || {
            std::hint::black_box(matmul_serial(&a, &b, n, n, n));
        });
        let parallel = time_it(MIN_TIME, || {
            std::hint::black_box(matmul(&a, &b, n, n, n));
        });
        let wrap = |v: &[R]| v.iter().map(|x| Wrapping(*x)).collect::<Vec<_>>();
        let a_nd = Array2::from_shape_vec((n, n), wrap(&a)).expect("n x n");
        let b_nd = Array2::from_shape_vec((n, n), wrap(&b)).expect("n x n");
        let naive = time_it(MIN_TIME, || {
            std::hint::black_box(a_nd.dot(&b_nd));
        });
        for (imp, t, secs) in [
            ("tessera", 1, serial),
            ("tessera", threads, parallel),
            ("ndarray", 1, naive),
        ] {
            rows.push(json!({
                "op": "matmul", "ring": R::NAME, "size": n, "threads": t, "impl": imp,
                "macs_per_s": macs / secs, "seconds": secs,
            }));
        }
    }
}

fn byte_rows(rows: &mut Vec<Value>) {
    const MSG: usize = 1 << 20;
    let mut buf = vec![0u8; MSG];
    let seed = Seed::random(&mut rand::rng());
    let prg = time_it(MIN_TIME, || {
        Prg::new(&seed, 0).fill_bytes(&mut buf);
        std::hint::black_box(&buf);
    });
    rows.push(json!({"op": "prg", "impl": "aes128-ctr", "bytes": MSG, "threads": 1, "bytes_per_s": MSG as f64 / prg}));

    let a = Identity::generate(PartyId::DataOwner(0), &mut rand::rng());
    let b = Identity::generate(PartyId::Server(0), &mut rand::rng());
    let sa = Sealer::new(&a, [(b.party(), b.public_key())]);
    let sb = Sealer::new(&b, [(a.party(), a.public_key())]);
    let ctx = Context {
        purpose: Purpose::Upload,
        job_id: 1,
        round: 1,
        chunk: 0,
    };
    let expected = Expected {
        purpose: Purpose::Upload,
        job_id: 1,
        round: 1,
        sender: None,
    };
    let mut envelope = Vec::new();
    let seal = time_it(MIN_TIME, || {
        envelope = sa.seal_for(b.party(), &ctx, &buf).expect("seal");
    });
    let open = time_it(MIN_TIME, || {
        std::hint::black_box(sb.open(&envelope, &expected).expect("open"));
    });
    for (op, secs) in [("seal", seal), ("open", open)] {
        rows.push(json!({"op": op, "impl": "chacha20poly1305", "bytes": MSG, "threads": 1, "bytes_per_s": MSG as f64 / secs}));
    }
}

/// Runs the suite and returns its JSON rows (also printing the table).
pub fn run() -> Vec<Value> {
    let mut rows = Vec::new();
    matmul_rows::<u32>(&mut rows);
    matmul_rows::<u64>(&mut rows);
    matmul_rows::<u128>(&mut rows);
    byte_rows(&mut rows);
    super::report::print_rows("ring", &rows);
    rows
}
