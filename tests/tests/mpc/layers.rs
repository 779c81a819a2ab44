//! The generic layers ([`nn`], [`approx`]) on every protocol that has what they need, and the
//! typed error on the one that does not.

use tessera_common::ring::RingTensor;
use tessera_mpc::layout::Window;
use tessera_mpc::{MpcError, approx, nn};

use crate::{Aby3M, F, Make, PondM, SecureNnM, dec, enc, ints, prog, reals, run, signed, try_run};

/// ReLU is exact on fixed-point inputs in [-1000, 1000]: the sign bit is computed exactly
/// (SecureNN: ShareConvert + ComputeMSB; ABY3: the A2B adder) and the product is exact.
fn relu_is_exact<P: Make>() {
    for seed in 0..4u8 {
        let n = 257;
        let x = enc(&reals(seed, n, -1000.0, 1000.0), &[n]);
        let got = run::<P>(vec![x.clone()], prog!(P, |p, v| nn::relu(&*p, &v[0]).await));
        let expected = x.map(|v| if (v as i64) < 0 { 0 } else { v });
        assert_eq!(got, expected, "{}: seed {seed}", P::NAME);
    }
    // Boundary values: zero, ±1 unit, ±2^61.
    let edges: Vec<u64> = [0i64, 1, -1, 1 << 61, -(1 << 61), 65536, -65536]
        .iter()
        .map(|v| *v as u64)
        .collect();
    let x = RingTensor::from_vec(&[edges.len()], edges).unwrap();
    let got = run::<P>(vec![x.clone()], prog!(P, |p, v| nn::relu(&*p, &v[0]).await));
    assert_eq!(got, x.map(|v| if (v as i64) < 0 { 0 } else { v }));
}

#[test]
fn relu_is_exact_under_securenn() {
    relu_is_exact::<SecureNnM>();
}

#[test]
fn relu_is_exact_under_aby3() {
    relu_is_exact::<Aby3M>();
}

fn max_argmax_maxpool_sort_are_exact<P: Make>() {
    let (rows, k) = (13, 10);
    let x = RingTensor::from_vec(&[rows, k], ints(3, rows * k, 40).into_vec()).unwrap();
    let got = run::<P>(
        vec![x.clone()],
        prog!(P, |p, v| {
            let m = nn::max_last_axis(&*p, &v[0]).await?;
            let a = nn::argmax(&*p, &v[0]).await?;
            p.concat(&[&m, &a])
        }),
    );
    let (xs, got) = (signed(&x), signed(&got));
    for r in 0..rows {
        let row = &xs[r * k..(r + 1) * k];
        let max = *row.iter().max().unwrap();
        assert_eq!(got[r], max, "{}: max of row {r}", P::NAME);
        let first = row.iter().position(|v| *v == max).unwrap() as i64;
        assert_eq!(got[rows + r], first, "{}: argmax of row {r}", P::NAME);
    }
    // Max-pooling 2x2 stride 2 over [1, 2, 4, 6].
    let img = RingTensor::from_vec(&[1, 2, 4, 6], ints(4, 48, 30).into_vec()).unwrap();
    let win = Window::square((2, 2), 2, 0);
    let got = signed(&run::<P>(
        vec![img.clone()],
        prog!(P, |p, v| nn::maxpool2d(&*p, &v[0], win).await),
    ));
    let px = signed(&img);
    let mut expected = Vec::new();
    for c in 0..2 {
        for y in 0..2 {
            for x in 0..3 {
                let at = |dy: usize, dx: usize| px[(c * 4 + 2 * y + dy) * 6 + 2 * x + dx];
                expected.push(at(0, 0).max(at(0, 1)).max(at(1, 0)).max(at(1, 1)));
            }
        }
    }
    assert_eq!(got, expected, "{}: maxpool", P::NAME);
    // Sort 100 values (padded to 128 inside).
    let v = ints(5, 100, 50);
    let got = signed(&run::<P>(
        vec![v.clone()],
        prog!(P, |p, v| nn::sort(&*p, &v[0]).await),
    ));
    let mut expected = signed(&v);
    expected.sort();
    assert_eq!(got, expected, "{}: sort", P::NAME);
}

#[test]
fn max_argmax_maxpool_sort_are_exact_under_securenn() {
    max_argmax_maxpool_sort_are_exact::<SecureNnM>();
}

#[test]
fn max_argmax_maxpool_sort_are_exact_under_aby3() {
    max_argmax_maxpool_sort_are_exact::<Aby3M>();
}

/// Checks `|got - reference(x)| <= bound(x)` elementwise, allowing one element to miss: each
/// approximation runs dozens of probabilistic truncations per element, and the extra-precision
/// squarings inside exp (products near 2^41) fail with probability about 2^-22 each, which over
/// all the checks of a test run adds up to about one red in 500 runs if no element may miss; two
/// misses in one check have probability below 1e-7. A miss is a truncation wrap (an error of
/// about 2^48 raw units fed into the rest of the computation), not an approximation error.
fn check<P: Make>(
    name: &str,
    xs: &[f64],
    program: crate::Prog<P>,
    reference: impl Fn(f64) -> f64,
    bound: impl Fn(f64) -> f64,
) {
    let got = dec(&run::<P>(vec![enc(xs, &[xs.len()])], program));
    let misses: Vec<String> = xs
        .iter()
        .zip(&got)
        .filter(|(x, g)| (*g - reference(**x)).abs() > bound(**x))
        .map(|(x, g)| {
            format!(
                "{name}({x}) = {g}, expected {} within {}",
                reference(*x),
                bound(*x)
            )
        })
        .collect();
    assert!(misses.len() <= 1, "{}: {misses:?}", P::NAME);
}

/// Bounds (fixed-point unit `u = 2^-16`):
/// - exp: the base `1 + t + t^2/2` for `t = x/256` is `e^t (1 - t^3/6 ...)`, raised to the 256th
///   power: relative error `|x|^3 / (6 * 256^2)`; the rounding of `t` (one unit of 2^-20) and of
///   the squarings (one unit each, 2^-20 for six, 2^-16 for two, each doubled by every later
///   squaring) add `256 * 2^-20 + 2 * 128 * 2^-20 + 3 * 2^-16 < 6e-4` relative. Under Pond and
///   SecureNN the local truncation adds the same one unit. `1e-3` relative plus `2u` absolute.
/// - Newton methods converge quadratically; after the stated iteration counts the iteration
///   error is far below the fixed-point error, a few units per step: 0.2% relative + 0.002.
/// - log: its fixed point is where `x exp(-y) = 1`, so exp's relative error (< 1e-3) becomes an
///   absolute error of `y`, plus the truncated Householder series: 0.005.
/// - sigmoid: reciprocal on (1, 2] after 4 Newton steps (`0.5^16`) and exp's 1e-3: 0.003.
fn approximations_are_within_bounds<P: Make>(with_comparisons: bool) {
    let u = 1.0 / (1u64 << F) as f64;
    let xs = reals(11, 64, -6.0, 3.0);
    check::<P>(
        "exp",
        &xs,
        prog!(P, |p, v| approx::exp(&*p, &v[0]).await),
        f64::exp,
        |x| x.exp() * (x.abs().powi(3) / 196608.0 + 1e-3) + 2.0 * u,
    );
    let pos = reals(12, 64, 0.5, 50.0);
    check::<P>(
        "reciprocal",
        &pos,
        prog!(P, |p, v| approx::reciprocal(&*p, &v[0]).await),
        |x| 1.0 / x,
        |x| 0.002 / x + 0.002,
    );
    check::<P>(
        "sqrt",
        &pos,
        prog!(P, |p, v| approx::sqrt(&*p, &v[0]).await),
        f64::sqrt,
        |x| 0.002 * x.sqrt() + 0.002,
    );
    check::<P>(
        "inv_sqrt",
        &pos,
        prog!(P, |p, v| approx::inv_sqrt(&*p, &v[0]).await),
        |x| 1.0 / x.sqrt(),
        |x| 0.002 / x.sqrt() + 0.002,
    );
    check::<P>(
        "log",
        &pos,
        prog!(P, |p, v| approx::log(&*p, &v[0]).await),
        f64::ln,
        |_| 0.005,
    );
    if with_comparisons {
        let xs = reals(13, 64, -10.0, 10.0);
        check::<P>(
            "sigmoid",
            &xs,
            prog!(P, |p, v| approx::sigmoid(&*p, &v[0]).await),
            |x| 1.0 / (1.0 + (-x).exp()),
            |_| 0.003,
        );
        softmax_is_within_bound::<P>();
    }
}

/// Softmax: exp's error on `x - max <= 0` is relative (< 1e-3), the sum's and the reciprocal's
/// add a few units: 0.003 absolute.
fn softmax_is_within_bound<P: Make>() {
    let (rows, k) = (16, 10);
    let xs = reals(14, rows * k, -4.0, 4.0);
    let got = dec(&run::<P>(
        vec![enc(&xs, &[rows, k])],
        prog!(P, |p, v| approx::softmax(&*p, &v[0]).await),
    ));
    // As in `check`, one truncation wrap may spoil one row (through its sum), never two.
    let mut bad_rows = Vec::new();
    for r in 0..rows {
        let row = &xs[r * k..(r + 1) * k];
        let max = row.iter().cloned().fold(f64::MIN, f64::max);
        let total: f64 = row.iter().map(|v| (v - max).exp()).sum();
        for c in 0..k {
            let want = (row[c] - max).exp() / total;
            let g = got[r * k + c];
            if (g - want).abs() > 0.003 {
                bad_rows.push(format!("softmax[{r},{c}] = {g}, expected {want}"));
            }
        }
    }
    bad_rows.dedup_by_key(|m| m.split(',').next().map(str::to_string));
    assert!(bad_rows.len() <= 1, "{}: {bad_rows:?}", P::NAME);
}

#[test]
fn approximations_under_aby3() {
    approximations_are_within_bounds::<Aby3M>(true);
}

#[test]
fn approximations_under_securenn() {
    approximations_are_within_bounds::<SecureNnM>(true);
}

#[test]
fn approximations_under_pond() {
    approximations_are_within_bounds::<PondM>(false);
}

/// Division (SecureNN Algorithm 9, bit by bit): exact floor of `x 2^f / y`.
fn division_is_exact<P: Make>() {
    let n = 40;
    let xs = reals(21, n, 0.0, 20.0);
    let ys = reals(22, n, 0.5, 30.0);
    let (x, y) = (enc(&xs, &[n]), enc(&ys, &[n]));
    let got = run::<P>(
        vec![x.clone(), y.clone()],
        prog!(P, |p, v| nn::divide(&*p, &v[0], &v[1], 6).await),
    );
    for i in 0..n {
        let exact = ((x.as_slice()[i] as u128) << F) / y.as_slice()[i] as u128;
        assert_eq!(
            got.as_slice()[i] as u128,
            exact,
            "{}: {} / {}",
            P::NAME,
            xs[i],
            ys[i]
        );
    }
}

#[test]
fn division_is_exact_under_securenn_and_aby3() {
    division_is_exact::<SecureNnM>();
    division_is_exact::<Aby3M>();
}

/// conv2d (im2col + one matrix product + one truncation), average pooling, a dense layer and the
/// mean: one truncation each, so within 2 units of the plaintext fixed-point result (one unit
/// from the truncation, one from rounding the public 1/k or the products' sum).
fn linear_layers_are_within_two_units<P: Make>() {
    let (n, c, h, w, o) = (2, 2, 5, 5, 3);
    let img = reals(31, n * c * h * w, -2.0, 2.0);
    let ker = reals(32, o * c * 9, -1.0, 1.0);
    let x = enc(&img, &[n, c, h, w]);
    let k = enc(&ker, &[o, c, 3, 3]);
    let got = dec(&run::<P>(
        vec![x.clone(), k.clone()],
        prog!(P, |p, v| nn::conv2d(&*p, &v[0], &v[1], 1, 1).await),
    ));
    let (xe, ke) = (dec(&x), dec(&k));
    let mut i = 0;
    for b in 0..n {
        for oc in 0..o {
            for y in 0..h {
                for xx in 0..w {
                    let mut acc = 0.0;
                    for ic in 0..c {
                        for dy in 0..3 {
                            for dx in 0..3 {
                                let (iy, ix) =
                                    (y as isize + dy as isize - 1, xx as isize + dx as isize - 1);
                                if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                                    acc += xe[((b * c + ic) * h + iy as usize) * w + ix as usize]
                                        * ke[((oc * c + ic) * 3 + dy) * 3 + dx];
                                }
                            }
                        }
                    }
                    assert!(
                        (got[i] - acc).abs() <= 2.0 / 65536.0,
                        "{}: conv at {i}: {} vs {acc}",
                        P::NAME,
                        got[i]
                    );
                    i += 1;
                }
            }
        }
    }
    let win = Window::square((2, 2), 1, 0);
    let got = dec(&run::<P>(
        vec![x.clone()],
        prog!(P, |p, v| nn::avgpool2d(&*p, &v[0], win).await),
    ));
    let mut i = 0;
    for plane in 0..n * c {
        for y in 0..h - 1 {
            for xx in 0..w - 1 {
                let at = |dy: usize, dx: usize| xe[(plane * h + y + dy) * w + xx + dx];
                let want = (at(0, 0) + at(0, 1) + at(1, 0) + at(1, 1)) / 4.0;
                assert!(
                    (got[i] - want).abs() <= 2.0 / 65536.0,
                    "{}: avgpool",
                    P::NAME
                );
                i += 1;
            }
        }
    }
    let (m, kk, nn_) = (4, 6, 3);
    let a = enc(&reals(33, m * kk, -3.0, 3.0), &[m, kk]);
    let wt = enc(&reals(34, kk * nn_, -1.0, 1.0), &[kk, nn_]);
    let bias = enc(&reals(35, nn_, -1.0, 1.0), &[nn_]);
    let got = dec(&run::<P>(
        vec![a.clone(), wt.clone(), bias.clone()],
        prog!(P, |p, v| {
            let d = nn::dense(&*p, &v[0], &v[1], &v[2]).await?;
            let mean = nn::mean_axis(&*p, &d, 1).await?;
            let col_mean = nn::mean_axis(&*p, &d, 0).await?;
            p.concat(&[&d, &mean, &col_mean])
        }),
    ));
    let (ae, we, be) = (dec(&a), dec(&wt), dec(&bias));
    for r in 0..m {
        let mut row_sum = 0.0;
        for col in 0..nn_ {
            let want: f64 = (0..kk)
                .map(|t| ae[r * kk + t] * we[t * nn_ + col])
                .sum::<f64>()
                + be[col];
            row_sum += want;
            assert!(
                (got[r * nn_ + col] - want).abs() <= 2.0 / 65536.0,
                "{}: dense",
                P::NAME
            );
        }
        assert!(
            (got[m * nn_ + r] - row_sum / 3.0).abs() <= 3.0 / 65536.0,
            "{}: mean",
            P::NAME
        );
    }
    for col in 0..nn_ {
        let want = (0..m)
            .map(|r| {
                (0..kk)
                    .map(|t| ae[r * kk + t] * we[t * nn_ + col])
                    .sum::<f64>()
                    + be[col]
            })
            .sum::<f64>()
            / m as f64;
        assert!(
            (got[m * nn_ + m + col] - want).abs() <= 3.0 / 65536.0,
            "{}: column mean",
            P::NAME
        );
    }
}

#[test]
fn linear_layers_under_every_protocol() {
    linear_layers_are_within_two_units::<PondM>();
    linear_layers_are_within_two_units::<SecureNnM>();
    linear_layers_are_within_two_units::<Aby3M>();
}

/// Pond has no exact comparison: ReLU, max-pooling and sigmoid-by-comparison say so with a typed
/// error; its polynomial sigmoid is within the fit's error (TF Encrypted's degree-9 polynomial:
/// its largest deviation from the logistic function on [-8, 8], evaluated in f64 on a 0.01 grid,
/// is 0.0234) plus fixed-point rounding (each of 8 truncations one unit times a coefficient
/// below 0.22, far below 0.001).
#[test]
fn pond_refuses_comparisons_and_approximates_sigmoid_by_polynomial() {
    let x = enc(&reals(41, 16, -4.0, 4.0), &[16]);
    let err = try_run::<PondM>(
        vec![x.clone()],
        prog!(PondM, |p, v| nn::relu(&*p, &v[0]).await),
    );
    assert!(
        matches!(
            err,
            Err(MpcError::Unsupported {
                protocol: "pond",
                ..
            })
        ),
        "{err:?}"
    );
    let img = enc(&reals(42, 16, -4.0, 4.0), &[1, 1, 4, 4]);
    let win = Window::square((2, 2), 2, 0);
    let err = try_run::<PondM>(
        vec![img],
        prog!(PondM, |p, v| nn::maxpool2d(&*p, &v[0], win).await),
    );
    assert!(matches!(err, Err(MpcError::Unsupported { .. })), "{err:?}");
    let xs = reals(43, 64, -8.0, 8.0);
    // TF Encrypted's ReLU polynomial: within 0.441 of ReLU on [-12, 12] (0.4402 at zero, its
    // largest deviation, evaluated in f64 on a 0.01 grid) plus the same rounding.
    let wide = reals(44, 64, -12.0, 12.0);
    check::<PondM>(
        "relu_poly",
        &wide,
        prog!(PondM, |p, v| nn::relu_poly(&*p, &v[0]).await),
        |x| x.max(0.0),
        |_| 0.441,
    );
    check::<PondM>(
        "sigmoid_poly",
        &xs,
        prog!(PondM, |p, v| nn::sigmoid_poly(&*p, &v[0]).await),
        |x| 1.0 / (1.0 + (-x).exp()),
        |_| 0.0244,
    );
}

/// The same model code (dense, ReLU, dense, softmax) on SecureNN and ABY3 gives the same
/// predictions as the plaintext model.
#[test]
fn one_model_runs_on_both_comparing_protocols() {
    fn forward<P: Make>(inputs: Vec<RingTensor<u64>>) -> Vec<f64> {
        dec(&run::<P>(
            inputs,
            prog!(P, |p, v| {
                let h = nn::dense(&*p, &v[0], &v[1], &v[2]).await?;
                let h = nn::relu(&*p, &h).await?;
                let o = nn::dense(&*p, &h, &v[3], &v[4]).await?;
                approx::softmax(&*p, &o).await
            }),
        ))
    }
    let (m, d, hd, c) = (8, 12, 6, 4);
    let x = reals(51, m * d, -1.0, 1.0);
    let w1 = reals(52, d * hd, -0.5, 0.5);
    let b1 = reals(53, hd, -0.1, 0.1);
    let w2 = reals(54, hd * c, -1.0, 1.0);
    let b2 = reals(55, c, -0.1, 0.1);
    let inputs = vec![
        enc(&x, &[m, d]),
        enc(&w1, &[d, hd]),
        enc(&b1, &[hd]),
        enc(&w2, &[hd, c]),
        enc(&b2, &[c]),
    ];
    let a = forward::<Aby3M>(inputs.clone());
    let s = forward::<SecureNnM>(inputs);
    for r in 0..m {
        let h: Vec<f64> = (0..hd)
            .map(|j| ((0..d).map(|t| x[r * d + t] * w1[t * hd + j]).sum::<f64>() + b1[j]).max(0.0))
            .collect();
        let o: Vec<f64> = (0..c)
            .map(|j| (0..hd).map(|t| h[t] * w2[t * c + j]).sum::<f64>() + b2[j])
            .collect();
        let max = o.iter().cloned().fold(f64::MIN, f64::max);
        let total: f64 = o.iter().map(|v| (v - max).exp()).sum();
        for j in 0..c {
            let want = (o[j] - max).exp() / total;
            assert!((a[r * c + j] - want).abs() < 0.005, "aby3 row {r}");
            assert!((s[r * c + j] - want).abs() < 0.005, "securenn row {r}");
        }
    }
}
