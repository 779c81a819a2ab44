#!/usr/bin/env bash
# Encrypted training and encrypted prediction served by the aggregators, on one machine: every
# party a separate process talking gRPC over 127.0.0.1. See the guide's "Encrypted jobs" chapter
# (examples/guide/encrypted-jobs.md).
#
#   examples/networked/encrypted.sh [EPOCHS] [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
EPOCHS=${1:-1}
WORK=${2:-$(mktemp -d -t tessera-encrypted-XXXX)}
BASE_PORT=${TESSERA_BASE_PORT:-7110}
JOB=${TESSERA_JOB_ID:-$RANDOM$RANDOM}
mkdir -p "$WORK"
source examples/networked/lib.sh

# Who may query the deployed model: data-owner-0 and data-owner-1 (data-owner-2 may not).
make_cluster "$WORK" "$BASE_PORT" $'[models.mnist]\nclients = ["data-owner-0", "data-owner-1"]'
start_servers "$WORK" "$BASE_PORT"

# 1. Encrypted training: the model owner starts the job and tells the institutions its id; each
#    shares its examples once (here half of the first 4,000 bundled digits each) and leaves. The
#    servers train on the union under ABY3; only the model owner receives the weights.
$BIN/model-owner train-encrypted --config "$WORK/cluster.toml" --key "$WORK/model-owner.key" \
  --job-id "$JOB" --data-owners data-owner-0,data-owner-1 --model network-a --optimizer sgd \
  --learning-rate 0.5 --epochs "$EPOCHS" --loss-every 5 --out "$WORK/trained" &
TRAINER=$!
for i in 0 1; do
  $BIN/data-owner share-data --config "$WORK/cluster.toml" --name data-owner-$i \
    --key "$WORK/data-owner-$i.key" --job "$JOB" --data bundled --limit 4000 --shard $i/2
done
wait $TRAINER

# 2. Deployment: the model owner secret-shares the trained weights to the servers once.
$BIN/model-owner deploy --config "$WORK/cluster.toml" --key "$WORK/model-owner.key" \
  --checkpoint "$WORK/trained/checkpoint.json" --model-id mnist --protocol aby3

# 3. Encrypted prediction: two clients at once; each shares its digits and alone opens the
#    logits. A client the cluster file does not list is refused.
for i in 0 1; do
  $BIN/data-owner predict --config "$WORK/cluster.toml" --name data-owner-$i \
    --key "$WORK/data-owner-$i.key" --model-id mnist --input bundled --limit 500 \
    --out "$WORK/predictions-$i.csv" &
  CLIENTS[$i]=$!
done
wait "${CLIENTS[@]}"
if $BIN/data-owner predict --config "$WORK/cluster.toml" --name data-owner-2 \
    --key "$WORK/data-owner-2.key" --model-id mnist --input bundled --limit 1 2> "$WORK/refused.log"; then
  echo "data-owner-2 should have been refused" >&2; exit 1
fi
echo "data-owner-2 refused: $(tail -1 "$WORK/refused.log")"
echo "logs, keys and results in $WORK"
