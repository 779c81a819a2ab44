#!/usr/bin/env bash
# Networked mode on one machine: 3 aggregators, 3 data owners and the model owner as separate
# processes talking gRPC over 127.0.0.1, training by federated rounds with secure aggregation.
# See the guide's "Networked mode" chapter (examples/guide/networked.md).
#
#   examples/networked/run.sh [ROUNDS] [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-3}
WORK=${2:-$(mktemp -d -t tessera-cluster-XXXX)}
BASE_PORT=${TESSERA_BASE_PORT:-7100}
mkdir -p "$WORK"
source examples/networked/lib.sh

make_cluster "$WORK" "$BASE_PORT"
start_servers "$WORK" "$BASE_PORT"

# The institutions: each dials the leader and waits for rounds (here each takes a third of the
# bundled MNIST digits; a real one points --data at its own IDX folder or CSV file).
for i in 0 1 2; do
  $BIN/data-owner serve --config "$WORK/cluster.toml" --name data-owner-$i --key "$WORK/data-owner-$i.key" \
    --data bundled --shard $i/3 --quiet > "$WORK/data-owner-$i.log" 2>&1 &
  PIDS+=($!)
done

# The model owner drives the rounds and alone opens the results.
$BIN/model-owner train --config "$WORK/cluster.toml" --key "$WORK/model-owner.key" \
  --rounds "$ROUNDS" --out "$WORK/out" --quiet
echo "logs, keys and results in $WORK"
