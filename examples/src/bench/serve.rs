//! `bench serve`: encrypted prediction as a service. Three `aggregator serve` (the command's own
//! code, as tasks of this process, real gRPC on 127.0.0.1), a model deployed once, then a
//! client's predictions of network A at batch 1 and 128 under ABY3 and SecureNN, timed from
//! launch to the opened logits. Beside each, the same job through the same service code with
//! the servers on the in-memory network and the client calling them directly (simulated mode):
//! the difference is what gRPC, sealing of the outside party's envelopes and loopback cost.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tessera_aggregator::cli::{ServeArgs, serve_command};
use tessera_aggregator::jobs::{LocalTransport, MpcLimits, MpcService};
use tessera_common::PartyId;
use tessera_common::cli::PartyArgs;
use tessera_common::config::ClusterConfig;
use tessera_common::dataset::{Dataset, Split};
use tessera_common::identity::Identity;
use tessera_common::model_spec::ModelSpec;
use tessera_common::net::memory::MemoryNetwork;
use tessera_common::protocol::ProtocolKind;
use tessera_common::seal::Sealer;
use tessera_jobs::{JobClient, MpcTransport};
use tessera_ml::initial_params;
use tessera_proto::GrpcTransport;

use super::report::bench_dir;

const CLIENT: PartyId = PartyId::DataOwner(0);
const SERVERS: [PartyId; 3] = [PartyId::Server(0), PartyId::Server(1), PartyId::Server(2)];

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// Writes a cluster file and key files for three servers, the model owner and one client
/// allowed on the models `aby3` and `securenn`.
fn write_cluster(dir: &Path) -> std::io::Result<Vec<Identity>> {
    // A fresh cluster each run: key files are never overwritten.
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    let mut parties = SERVERS.to_vec();
    parties.extend([PartyId::ModelOwner, CLIENT]);
    let ids: Vec<Identity> = parties
        .iter()
        .map(|p| Identity::generate(*p, &mut rand::rng()))
        .collect();
    let mut toml = String::new();
    for id in &ids {
        id.write_key_file(&dir.join(format!("{}.key", id.party())))
            .map_err(std::io::Error::other)?;
        toml += &format!(
            "[parties.{}]\npublic_key = \"{}\"\n",
            id.party(),
            id.public_key_base64()
        );
        if id.party().is_server() {
            toml += &format!("address = \"127.0.0.1:{}\"\n", free_port());
        }
    }
    toml += &format!("[models.aby3]\nclients = [\"{CLIENT}\"]\n");
    toml += &format!("[models.securenn]\nclients = [\"{CLIENT}\"]\n");
    std::fs::write(dir.join("cluster.toml"), toml)?;
    Ok(ids)
}

/// Deploys network A under both protocols, then times `runs` predictions per batch size.
async fn measure<T: MpcTransport>(
    transport: &T,
    sealers: &[Sealer; 2],
    rows: &mut Vec<(String, usize, &'static str, f64)>,
) -> Result<(), String> {
    let spec = ModelSpec::network_a();
    let weights = initial_params(&spec).map_err(|e| e.to_string())?;
    let client = |sealer| JobClient {
        transport,
        sealer,
        servers: SERVERS.to_vec(),
        timeout: Duration::from_secs(120),
    };
    let owner = client(&sealers[0]);
    let test = Dataset::bundled_mnist(Split::Test);
    for protocol in [ProtocolKind::Aby3, ProtocolKind::SecureNn] {
        owner
            .deploy(protocol.name(), &spec, protocol, 16, &weights)
            .await
            .map_err(|e| e.to_string())?;
        let user = client(&sealers[1]);
        for (batch, runs) in [(1usize, 10usize), (128, 3)] {
            let x = &test.features[..batch * test.sample_len()];
            // One untimed run warms the connections.
            user.predict(protocol.name(), batch, x)
                .await
                .map_err(|e| e.to_string())?;
            let t = Instant::now();
            for _ in 0..runs {
                user.predict(protocol.name(), batch, x)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            rows.push((
                protocol.name().to_string(),
                batch,
                "",
                t.elapsed().as_secs_f64() / runs as f64,
            ));
        }
    }
    Ok(())
}

fn sealers(ids: &[Identity]) -> [Sealer; 2] {
    let sealer = |p: PartyId| {
        let id = ids.iter().find(|i| i.party() == p).expect("identity");
        Sealer::new(id, ids.iter().map(|i| (i.party(), i.public_key())))
    };
    [sealer(PartyId::ModelOwner), sealer(CLIENT)]
}

async fn over_grpc(dir: PathBuf) -> Result<Vec<(String, usize, &'static str, f64)>, String> {
    let ids = write_cluster(&dir).map_err(|e| e.to_string())?;
    let config = dir.join("cluster.toml");
    for server in SERVERS {
        let args = ServeArgs {
            party: PartyArgs {
                config: config.clone(),
                name: server.to_string(),
                key: dir.join(format!("{server}.key")),
            },
            listen: None,
            connect_timeout_secs: 30,
            tls_key: None,
            metrics_addr: None,
        };
        tokio::spawn(async move {
            if let Err(e) = serve_command(args).await {
                eprintln!("{server}: {e}");
            }
        });
    }
    let cluster = ClusterConfig::load(&config).map_err(|e| e.to_string())?;
    let sealers = sealers(&ids);
    // One transport serves both parties' calls: its call tokens name the model owner (they buy
    // places at the servers' fronts; each job's own envelopes say who launched it).
    let [model_owner, _] = self::sealers(&ids);
    let transport =
        GrpcTransport::new(&cluster, Arc::new(model_owner)).map_err(|e| e.to_string())?;
    let mut rows = Vec::new();
    measure(&transport, &sealers, &mut rows).await?;
    Ok(rows
        .into_iter()
        .map(|(p, b, _, s)| (p, b, "grpc", s))
        .collect())
}

async fn in_memory() -> Result<Vec<(String, usize, &'static str, f64)>, String> {
    let mut parties = SERVERS.to_vec();
    parties.extend([PartyId::ModelOwner, CLIENT]);
    let ids: Vec<Identity> = parties
        .iter()
        .map(|p| Identity::generate(*p, &mut rand::rng()))
        .collect();
    let access = [("aby3", ()), ("securenn", ())]
        .iter()
        .map(|(m, ())| (m.to_string(), vec![CLIENT]))
        .collect::<std::collections::HashMap<_, _>>();
    let services: Vec<_> = MemoryNetwork::cluster(&SERVERS)
        .into_iter()
        .zip(&ids)
        .map(|(net, id)| {
            MpcService::new(
                Sealer::new(id, ids.iter().map(|i| (i.party(), i.public_key()))),
                Arc::new(net),
                access.clone(),
                MpcLimits::default(),
            )
        })
        .collect();
    let transport = LocalTransport::new(&services);
    let mut rows = Vec::new();
    measure(&transport, &sealers(&ids), &mut rows).await?;
    Ok(rows
        .into_iter()
        .map(|(p, b, _, s)| (p, b, "in-memory", s))
        .collect())
}

/// Runs the suite; prints the table, returns the JSON rows.
pub fn run() -> Vec<Value> {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let mut all = Vec::new();
    match runtime.block_on(over_grpc(bench_dir().join("serve-cluster"))) {
        Ok(rows) => all.extend(rows),
        Err(e) => eprintln!("networked run failed: {e}"),
    }
    match runtime.block_on(in_memory()) {
        Ok(rows) => all.extend(rows),
        Err(e) => eprintln!("in-memory run failed: {e}"),
    }
    runtime.shutdown_timeout(Duration::from_secs(1));
    let rows: Vec<Value> = all
        .into_iter()
        .map(|(p, b, t, s)| {
            json!({"protocol": p, "model": "network_a", "batch": b, "transport": t,
                   "seconds_per_prediction": s})
        })
        .collect();
    super::report::print_rows("serve", &rows);
    rows
}
