# Shared steps of the networked walkthroughs (sourced by run.sh and encrypted.sh): build, keys,
# the cluster file, the servers. Every step is one an institution would take on its own machine.

cargo build --release -q -p tessera-aggregator -p tessera-data-owner -p tessera-model-owner
BIN=target/release
PIDS=()
cleanup() { kill "${PIDS[@]}" 2>/dev/null || true; }
trap cleanup EXIT

# make_cluster WORK BASE_PORT [EXTRA_TOML]: every party makes its own key pair (only public keys
# are shared); one cluster file, the same for everybody, with addresses and public keys.
make_cluster() {
  local work=$1 base=$2 extra=${3:-}
  pub() { "$@" | sed -n 's/^public_key = "\(.*\)"$/\1/p'; }
  declare -A key
  for i in 0 1 2; do
    key[server$i]=$(pub $BIN/aggregator keygen --name server$i --out "$work/server$i.key")
    key[data-owner-$i]=$(pub $BIN/data-owner keygen --name data-owner-$i --out "$work/data-owner-$i.key")
  done
  key[model-owner]=$(pub $BIN/model-owner keygen --name model-owner --out "$work/model-owner.key")
  {
    echo "[job]"
    echo "ring_bits = 32"
    echo "frac_bits = 16"
    echo "min_clients = 2"
    echo "round_deadline_secs = 60"
    for i in 0 1 2; do
      echo "[parties.server$i]"
      echo "address = \"127.0.0.1:$((base + i))\""
      echo "public_key = \"${key[server$i]}\""
    done
    echo "[parties.model-owner]"
    echo "public_key = \"${key[model-owner]}\""
    for i in 0 1 2; do
      echo "[parties.data-owner-$i]"
      echo "public_key = \"${key[data-owner-$i]}\""
    done
    if [ -n "$extra" ]; then echo "$extra"; fi
  } > "$work/cluster.toml"
}

# port_taken PORT: whether something on this machine already listens on 127.0.0.1:PORT.
port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start_servers WORK BASE_PORT: the three compute servers, in the background. A port already in
# use (another run's server, say) stops the walkthrough here with its number: otherwise the
# others would talk to whatever holds it and report only an `h2 protocol error`. A server that
# exits at start (a port taken in between, a bad key file) is reported with its log.
start_servers() {
  local work=$1 base=$2
  for i in 0 1 2; do
    if port_taken $((base + i)); then
      echo "port $((base + i)) (server$i) is already in use: stop what holds it, or run with" \
        "TESSERA_BASE_PORT set to a free range" >&2
      exit 1
    fi
  done
  local started=()
  for i in 0 1 2; do
    $BIN/aggregator serve --config "$work/cluster.toml" --name server$i --key "$work/server$i.key" \
      > "$work/server$i.log" 2>&1 &
    PIDS+=($!)
    started+=($!)
  done
  sleep 1
  for i in 0 1 2; do
    if ! kill -0 "${started[$i]}" 2>/dev/null; then
      echo "server$i exited at start; its log ($work/server$i.log) ends:" >&2
      tail -n 5 "$work/server$i.log" >&2
      exit 1
    fi
  done
}
