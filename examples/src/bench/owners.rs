//! `bench owners`: one federated round in simulated mode (`simulate`: three servers, N data
//! owners, every party with its own identity and every payload sealed) for N = 100, 1,000 and
//! 10,000 owners, each holding one row of the bundled breast-cancer table (tiled to N rows) and
//! training the small MLP of `examples/models/tabular-mlp.toml` (530 parameters).
//!
//! Columns: the whole run's wall-clock seconds, the round's (from opening to the revealed
//! aggregate, the owners' local training included), the rest (setup: identities, sealers,
//! services, tasks; and teardown), and the process's peak resident memory, all N owners' tasks
//! included: the leader itself holds one running sum of the update (O(model size)) and at most
//! its staging budget of uploads in flight. Setup used to grow with the square of N (every
//! sealer derived a pair key with every party: 133 s for 1,000 owners); it is linear now.

use std::path::PathBuf;
use std::time::Instant;

use serde_json::{Value, json};
use tessera_common::model_file::ModelChoice;
use tessera_model_owner::simulate::{SimulateOptions, simulate};

const OWNERS: [usize; 3] = [100, 1_000, 10_000];

fn repo(path: &str) -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
}

/// The shipped training table tiled to `rows` rows, written under `dir`.
fn tiled_table(dir: &std::path::Path, rows: usize) -> std::io::Result<PathBuf> {
    let text = std::fs::read_to_string(repo("common/data/breast-cancer/train.csv"))?;
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let body: Vec<&str> = lines.filter(|l| !l.is_empty()).collect();
    if body.is_empty() {
        return Err(std::io::Error::other("the shipped table has no rows"));
    }
    let mut out = String::from(header) + "\n";
    for i in 0..rows {
        out += body[i % body.len()];
        out.push('\n');
    }
    let path = dir.join(format!("table-{rows}.csv"));
    std::fs::write(&path, out)?;
    Ok(path)
}

/// Peak resident memory of this process so far, in bytes (Linux; 0 elsewhere).
fn peak_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Runs the suite.
pub fn run() -> Vec<Value> {
    let dir = std::env::temp_dir().join(format!("tessera-bench-owners-{}", std::process::id()));
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let mut rows = Vec::new();
    for owners in OWNERS {
        let data = match std::fs::create_dir_all(&dir).and_then(|()| tiled_table(&dir, owners)) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("cannot write the table: {e}");
                break;
            }
        };
        let model = match ModelChoice::load(&repo("examples/models/tabular-mlp.toml")) {
            Ok(m) => m,
            Err(e) => {
                eprintln!("{e}");
                break;
            }
        };
        let opts = SimulateOptions {
            rounds: 1,
            data_owners: owners,
            out: dir.join(format!("out-{owners}")),
            model,
            data: Some(data),
            test_data: Some(repo("common/data/breast-cancer/test.csv")),
            label_column: Some("diagnosis".into()),
            ring_bits: Some(32),
            ..SimulateOptions::default()
        };
        let started = Instant::now();
        let result = runtime.block_on(simulate(opts));
        let total = started.elapsed().as_secs_f64();
        let (round, clients) = match &result {
            Ok(s) => s
                .metrics
                .first()
                .map_or((f64::NAN, 0), |m| (m.seconds, m.clients)),
            Err(e) => {
                eprintln!("{owners} owners: {e}");
                (f64::NAN, 0)
            }
        };
        let rss = peak_rss();
        rows.push(json!({
            "owners": owners,
            "contributors": clients,
            "total_seconds": total,
            "round_seconds": round,
            "setup_seconds": total - round,
            "peak_rss_bytes": rss,
        }));
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!("\n### One federated round, N data owners (simulated mode, 3 servers)\n");
    super::report::print_rows("owners", &rows);
    rows
}
