#!/usr/bin/env bash
# Networked mode on one machine: 3 aggregators, 3 data owners and the model owner as separate
# processes talking gRPC over 127.0.0.1. Every step is one an institution would take on its own
# machine; see the README's "Networked mode" walkthrough.
#
#   examples/networked/run.sh [ROUNDS] [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-3}
WORK=${2:-$(mktemp -d -t tessera-cluster-XXXX)}
BASE_PORT=${TESSERA_BASE_PORT:-7100}
mkdir -p "$WORK"

cargo build --release -q -p tessera-aggregator -p tessera-data-owner -p tessera-model-owner
BIN=target/release

# 1. Every party makes its own key pair; only public keys are shared.
pub() { "$@" | sed -n 's/^public_key = "\(.*\)"$/\1/p'; }
declare -A KEY
for i in 0 1 2; do
  KEY[server$i]=$(pub $BIN/aggregator keygen --name server$i --out "$WORK/server$i.key")
  KEY[data-owner-$i]=$(pub $BIN/data-owner keygen --name data-owner-$i --out "$WORK/data-owner-$i.key")
done
KEY[model-owner]=$(pub $BIN/model-owner keygen --name model-owner --out "$WORK/model-owner.key")

# 2. One cluster file, the same for everybody: addresses and public keys.
{
  echo "[job]"
  echo "ring_bits = 32"
  echo "frac_bits = 16"
  echo "min_clients = 2"
  echo "round_deadline_secs = 60"
  for i in 0 1 2; do
    echo "[parties.server$i]"
    echo "address = \"127.0.0.1:$((BASE_PORT + i))\""
    echo "public_key = \"${KEY[server$i]}\""
  done
  echo "[parties.model-owner]"
  echo "public_key = \"${KEY[model-owner]}\""
  for i in 0 1 2; do
    echo "[parties.data-owner-$i]"
    echo "public_key = \"${KEY[data-owner-$i]}\""
  done
} > "$WORK/cluster.toml"

PIDS=()
cleanup() { kill "${PIDS[@]}" 2>/dev/null || true; }
trap cleanup EXIT

# 3. The compute servers.
for i in 0 1 2; do
  $BIN/aggregator serve --config "$WORK/cluster.toml" --name server$i --key "$WORK/server$i.key" \
    > "$WORK/server$i.log" 2>&1 &
  PIDS+=($!)
done

# 4. The institutions: each dials the leader and waits for rounds (here each takes a third of the
#    bundled MNIST digits; a real one points --data at its own IDX folder or CSV file).
for i in 0 1 2; do
  $BIN/data-owner serve --config "$WORK/cluster.toml" --name data-owner-$i --key "$WORK/data-owner-$i.key" \
    --data bundled --shard $i/3 --quiet > "$WORK/data-owner-$i.log" 2>&1 &
  PIDS+=($!)
done

# 5. The model owner drives the rounds and alone opens the results.
$BIN/model-owner train --config "$WORK/cluster.toml" --key "$WORK/model-owner.key" \
  --rounds "$ROUNDS" --out "$WORK/out" --quiet
echo "logs, keys and results in $WORK"
