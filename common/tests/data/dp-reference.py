#!/usr/bin/env python3
"""Reference epsilons for Tessera's DP accountant (`common/src/dp/accountant.rs`).

Computes `(epsilon, delta)` with Google's maintained `dp_accounting` library (PyPI package
`dp-accounting`, RDP accountant over the integer orders 2..=256, the orders Tessera uses) and
writes `dp-reference.json` beside this script. `common/tests/dp_reference.rs` compares Tessera's
printed epsilons with these figures (within 1%), so the file is what a maintained accountant says,
not what Tessera said of itself.

Two kinds of rows:
- `printed`: the secure-aggregation jobs' accounting. No owner sampling happens (every
  registered owner is asked every round and the model owner sees each round's contributor list),
  so each round is the plain Gaussian mechanism, composed `rounds` times (q = 1).
- `sampled`: the Poisson-subsampled Gaussian at rate q, for accounting where the sampling really
  happens out of the receiver's sight.

Regenerate: `pip install dp-accounting==0.6.0 && python3 common/tests/data/dp-reference.py`.
"""

import json
import os
from importlib.metadata import version

import dp_accounting
from dp_accounting import rdp

ORDERS = list(range(2, 257))


def rdp_epsilon(event, count, delta):
    acc = rdp.RdpAccountant(orders=ORDERS)
    acc.compose(event, count)
    eps, order = acc.get_epsilon_and_optimal_order(delta)
    return float(eps), int(order)


def main():
    printed = []
    # (noise multiplier, rounds, delta): the security review's settings first (z = 1 over 100
    # and 1000 rounds, z = 2 over 200), then a spread of noise, rounds and delta.
    for z, rounds, delta in [
        (1.0, 100, 1e-5),
        (1.0, 1000, 1e-5),
        (2.0, 200, 1e-5),
        (1.0, 1, 1e-5),
        (1.0, 3, 1e-5),
        (0.3, 3, 1e-5),
        (2.0, 50, 1e-5),
        (5.0, 1000, 1e-6),
        (10.0, 100, 1e-5),
        (0.7, 20, 1e-3),
    ]:
        eps, order = rdp_epsilon(dp_accounting.GaussianDpEvent(z), rounds, delta)
        printed.append(
            {"noise_multiplier": z, "rounds": rounds, "delta": delta, "epsilon": eps, "order": order}
        )
    sampled = []
    for q, z, steps, delta in [
        (0.01, 1.1, 1000, 1e-5),
        # TF Privacy's MNIST tutorial: 60000 examples, batches of 256, 60 epochs.
        (256.0 / 60000.0, 1.1, 14040, 1e-5),
        (0.1, 0.8, 100, 1e-6),
        (0.01, 1.0, 100, 1e-5),
    ]:
        event = dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(z))
        eps, order = rdp_epsilon(event, steps, delta)
        sampled.append(
            {
                "sampling_rate": q,
                "noise_multiplier": z,
                "steps": steps,
                "delta": delta,
                "epsilon": eps,
                "order": order,
            }
        )
    out = {
        "generator": "common/tests/data/dp-reference.py",
        "library": "dp-accounting " + version("dp-accounting"),
        "accountant": "RdpAccountant, orders 2..=256",
        "printed": printed,
        "sampled": sampled,
    }
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dp-reference.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
