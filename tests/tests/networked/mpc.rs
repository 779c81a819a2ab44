//! Encrypted prediction as a service with real processes: three `aggregator serve`,
//! `model-owner deploy`, concurrent `data-owner predict` clients, a client the cluster file does
//! not allow, a secure-aggregation job running on the same servers at the same time, and a
//! server killed mid-job.

use std::path::Path;
use std::time::{Duration, Instant};

use tessera_common::dataset::{Dataset, Split};
use tessera_common::model_spec::ModelSpec;
use tessera_ml::{TrainSettings, initial_params, logits, train_local};

use super::{Cluster, Proc, assert_exact_sums, cluster, path_str};

/// Network A trained briefly in the clear (2,000 digits, one epoch): a model whose predicted
/// classes are clear-cut, written as a checkpoint the way `simulate --encrypted` writes one.
fn trained_checkpoint(c: &Cluster) -> (ModelSpec, Vec<f32>) {
    let spec = ModelSpec::network_a();
    let train = Dataset::bundled_mnist(Split::Train);
    let train = train.subset(&(0..2000).collect::<Vec<_>>());
    let settings = TrainSettings {
        epochs: 1,
        batch_size: 32,
        learning_rate: 0.1,
        shuffle_seed: 1,
    };
    let start = initial_params(&spec).expect("initial weights");
    let weights = train_local(&spec, &start, &train, &settings, |_, _| {})
        .expect("burn trains")
        .params;
    let json = serde_json::json!({ "model": spec, "weights": weights });
    std::fs::write(c.path("model.json"), json.to_string()).unwrap();
    (spec, weights)
}

/// Appends the models' access lists to the cluster file (before the servers start).
fn allow(c: &Cluster, models: &[(&str, &[&str])]) {
    let mut toml = std::fs::read_to_string(c.config()).unwrap();
    for (id, clients) in models {
        let list: Vec<String> = clients.iter().map(|n| format!("\"{n}\"")).collect();
        toml += &format!("[models.{id}]\nclients = [{}]\n", list.join(", "));
    }
    std::fs::write(c.config(), toml).unwrap();
}

/// Runs a process to its end within `timeout`; returns whether it succeeded.
fn finish(c: &Cluster, mut p: Proc, what: &str, timeout: Duration) -> bool {
    let started = Instant::now();
    loop {
        if let Some(status) = p.0.try_wait().unwrap() {
            return status.success();
        }
        assert!(
            started.elapsed() < timeout,
            "{what} did not finish within {timeout:?}:\n{}",
            c.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `model-owner SUBCOMMAND --config .. --key .. ARGS...`, logging to `log`.
fn model_owner(c: &Cluster, subcommand: &str, args: &[&str], log: &str) -> Proc {
    let (config, key) = (c.config(), c.path("model-owner.key"));
    let mut all = vec![
        subcommand,
        "--config",
        path_str(&config),
        "--key",
        path_str(&key),
    ];
    all.extend_from_slice(args);
    c.spawn(env!("CARGO_BIN_EXE_t-model-owner"), &all, log)
}

/// [`finish`] that must succeed: fails the test with every log if not.
fn must_finish(c: &Cluster, p: Proc, what: &str, secs: u64) {
    assert!(
        finish(c, p, what, Duration::from_secs(secs)),
        "{what} failed:\n{}",
        c.logs()
    );
}

fn deploy(c: &Cluster, model_id: &str, protocol: &str) -> Proc {
    deploy_from(c, &c.path("model.json"), model_id, protocol)
}

/// Deploys the checkpoint or ONNX model in `checkpoint`.
fn deploy_from(c: &Cluster, checkpoint: &Path, model_id: &str, protocol: &str) -> Proc {
    let args = [
        "--checkpoint",
        path_str(checkpoint),
        "--model-id",
        model_id,
        "--protocol",
        protocol,
        "--timeout-secs",
        "60",
    ];
    model_owner(c, "deploy", &args, &format!("deploy-{model_id}.log"))
}

fn predict(c: &Cluster, owner: u32, model_id: &str, limit: usize, batch: usize) -> Proc {
    let name = format!("data-owner-{owner}");
    let out = c.path(&format!("{name}-{model_id}.csv"));
    c.spawn(
        env!("CARGO_BIN_EXE_t-data-owner"),
        &[
            "predict",
            "--config",
            path_str(&c.config()),
            "--name",
            &name,
            "--key",
            path_str(&c.path(&format!("{name}.key"))),
            "--model-id",
            model_id,
            "--input",
            "bundled",
            "--limit",
            &limit.to_string(),
            "--batch-size",
            &batch.to_string(),
            "--out",
            path_str(&out),
            "--timeout-secs",
            "30",
        ],
        &format!("predict-{name}-{model_id}.log"),
    )
}

/// The classes a client wrote.
fn classes(path: &Path) -> Vec<usize> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
        .collect()
}

fn burn_classes(spec: &ModelSpec, weights: &[f32], n: usize) -> Vec<usize> {
    let test = Dataset::bundled_mnist(Split::Test);
    let x = &test.features[..n * test.sample_len()];
    let z = logits(spec, weights, x, n).expect("burn logits");
    z.chunks(10)
        .map(|r| (0..10).fold(0, |b, i| if r[i] > r[b] { i } else { b }))
        .collect()
}

fn agreement(a: &[usize], b: &[usize]) -> usize {
    a.iter().zip(b).filter(|(x, y)| x == y).count()
}

/// Deploys network A under ABY3 and under SecureNN; two clients predict 100 digits each at
/// the same time under ABY3 while a federated job runs two secure-aggregation rounds on the
/// same servers (the three data owners serve that job), then both predict at the same time
/// under SecureNN; two ONNX models (a chain and a PyTorch ResNet-8 graph) deploy from their
/// files and predict onnxruntime's classes; a client the cluster file does not name is refused. The classes must match burn's on at least 99 of 100 digits (the secure
/// logits are within about 1e-3 of burn's, so only a digit whose top two logits are that close
/// may differ), and the aggregation's revealed sums must be exact.
#[test]
fn deployed_models_serve_concurrent_clients_beside_secure_aggregation() {
    let c = cluster(2, 60);
    allow(
        &c,
        &[
            ("mnist", &["data-owner-0", "data-owner-1"]),
            ("mnist-snn", &["data-owner-0", "data-owner-1"]),
            ("onnx-cnn", &["data-owner-0"]),
            ("onnx-resnet", &["data-owner-0"]),
        ],
    );
    let (spec, weights) = trained_checkpoint(&c);
    let _servers = c.start_servers();
    must_finish(&c, deploy(&c, "mnist", "aby3"), "deploy", 90);
    must_finish(&c, deploy(&c, "mnist-snn", "securenn"), "deploy", 60);
    // Secure aggregation on the same servers, at the same time as the predictions.
    let _owners: Vec<Proc> = (0..3)
        .map(|i| c.start_data_owner(i, &format!("{i}/3")))
        .collect();
    let training = std::thread::scope(|s| {
        let training = s.spawn(|| c.run_model_owner(2, Duration::from_secs(180)));
        let clients = [
            predict(&c, 0, "mnist", 100, 50),
            predict(&c, 1, "mnist", 100, 100),
        ];
        for p in clients {
            must_finish(&c, p, "predict", 120);
        }
        training.join()
    });
    training.expect("the secure-aggregation job");
    assert_exact_sums(&c, 2, 3);

    let expected = burn_classes(&spec, &weights, 100);
    for owner in ["data-owner-0", "data-owner-1"] {
        let got = classes(&c.path(&format!("{owner}-mnist.csv")));
        assert_eq!(got.len(), 100);
        let same = agreement(&got, &expected);
        assert!(same >= 99, "{owner}: {same} of 100 classes as burn's");
    }
    let clients = [
        predict(&c, 0, "mnist-snn", 100, 100),
        predict(&c, 1, "mnist-snn", 100, 25),
    ];
    for p in clients {
        must_finish(&c, p, "predict", 120);
    }
    for owner in ["data-owner-0", "data-owner-1"] {
        let got = classes(&c.path(&format!("{owner}-mnist-snn.csv")));
        let same = agreement(&got, &expected);
        assert!(
            same >= 99,
            "securenn, {owner}: {same} of 100 classes as burn's"
        );
    }

    // ONNX models deploy as they are (`--checkpoint mnist-cnn.onnx`), a chain and a graph
    // (PyTorch's export of a ResNet-8: residual additions, batch norms folded).
    deploys_onnx_and_predicts_its_classes(&c, "mnist-cnn", "onnx-cnn");
    deploys_onnx_and_predicts_its_classes(&c, "resnet8", "onnx-resnet");

    // data-owner-2 is not on the access list.
    let refused = predict(&c, 2, "mnist", 1, 1);
    assert!(!finish(&c, refused, "predict", Duration::from_secs(30)));
    let log = std::fs::read_to_string(c.path("predict-data-owner-2-mnist.log")).unwrap();
    assert!(log.contains("not allowed"), "{log}");
}

/// Deploys the ONNX fixture `name` under ABY3 as `model_id` and predicts the first 10 digits:
/// on those of them the fixture's reference holds (inputs whose two largest outputs
/// onnxruntime put at least 0.1 apart; ABY3's logit error is below 0.02), the class is
/// onnxruntime's.
fn deploys_onnx_and_predicts_its_classes(c: &Cluster, name: &str, model_id: &str) {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/models/onnx");
    let onnx = fixtures.join(format!("{name}.onnx"));
    must_finish(
        c,
        deploy_from(c, &onnx, model_id, "aby3"),
        "deploy onnx",
        60,
    );
    must_finish(c, predict(c, 0, model_id, 10, 10), "predict onnx", 60);
    let got = classes(&c.path(&format!("data-owner-0-{model_id}.csv")));
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures.join(format!("{name}.reference.json"))).unwrap(),
    )
    .unwrap();
    let mut checked = 0;
    for (i, row) in reference["test_indices"]
        .as_array()
        .unwrap()
        .iter()
        .zip(reference["outputs"].as_array().unwrap())
    {
        let i = i.as_u64().unwrap() as usize;
        if i >= got.len() {
            continue;
        }
        let row: Vec<f64> = row
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let want = (0..row.len()).fold(0, |b, k| if row[k] > row[b] { k } else { b });
        assert_eq!(got[i], want, "{name}: digit {i}: onnxruntime's class");
        checked += 1;
    }
    assert_eq!(checked, 8, "{name}");
}

/// A server killed during a prediction job: the client fails within its timeout with an error
/// naming the server, and nothing hangs; once the server is back, the model owner deploys again
/// and predictions work. The leader's Prometheus endpoint counts the MPC jobs: every job it
/// launched ends, and after the restart exactly one more deploy and two more predictions (20
/// digits in batches of 10) are done, and no more fail.
#[test]
fn a_server_killed_mid_prediction_fails_the_client_naming_it() {
    let c = cluster(2, 60);
    allow(&c, &[("mnist", &["data-owner-0"])]);
    trained_checkpoint(&c);
    let metrics_addr = format!("127.0.0.1:{}", super::free_port());
    let mut servers = vec![
        c.start_server_with(0, "", &["--metrics-addr", &metrics_addr]),
        c.start_server(1, ""),
        c.start_server(2, ""),
    ];
    must_finish(&c, deploy(&c, "mnist", "aby3"), "deploy", 90);
    let jobs = |kind: &str, outcome: &str| {
        let name = format!("tessera_mpc_jobs_total{{kind=\"{kind}\",outcome=\"{outcome}\"}}");
        let m = super::scrape(&metrics_addr).expect("metrics endpoint");
        m.get(&name).copied().unwrap_or(0)
    };
    assert_eq!((jobs("deploy", "launched"), jobs("deploy", "done")), (1, 1));
    // Many small jobs, so the kill lands in one of them.
    let client = predict(&c, 0, "mnist", 2000, 10);
    std::thread::sleep(Duration::from_millis(1500));
    drop(servers.remove(2));
    let started = Instant::now();
    assert!(!finish(&c, client, "predict", Duration::from_secs(90)));
    assert!(started.elapsed() < Duration::from_secs(90));
    let log = std::fs::read_to_string(c.path("predict-data-owner-0-mnist.log")).unwrap();
    assert!(log.contains("server2"), "{log}\n{}", c.logs());

    // Every prediction the leader launched has ended, done or failed (the kill may fall in a
    // job, which fails as soon as the leader's link to server2 drops, or between two, when the
    // next launch is refused before the leader counts it): the counts settle within seconds.
    let ended = |kind: &str| jobs(kind, "done") + jobs(kind, "failed") + jobs(kind, "aborted");
    let settle = Instant::now();
    while jobs("predict", "launched") != ended("predict") {
        assert!(
            settle.elapsed() < Duration::from_secs(30),
            "a job never ended"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (done, failed) = (jobs("predict", "done"), jobs("predict", "failed"));
    assert!(done >= 1, "the client predicted before the kill");

    // server2 comes back (its deployed shares died with it): the model owner deploys again and
    // the client's prediction works.
    let _back = c.start_server(2, "-restarted");
    must_finish(&c, deploy(&c, "mnist", "aby3"), "redeploy", 90);
    must_finish(&c, predict(&c, 0, "mnist", 20, 10), "predict", 60);
    assert_eq!(jobs("deploy", "done"), 2);
    assert_eq!(jobs("predict", "done"), done + 2);
    assert_eq!(jobs("predict", "failed"), failed);
    assert_eq!(jobs("predict", "launched"), ended("predict"));
}

/// Encrypted training as a service: `model-owner train-encrypted` starts the job, two
/// `data-owner share-data` processes share 256 digits each, the servers train network A for one
/// epoch (4 batches of 128) under ABY3. The weights the model owner receives must equal those
/// of the simulated run on the same digits, seed and settings. Both runs start from the same
/// weights and batches and differ only by their truncations' randomness: each step moves a
/// weight by lr/batch = 0.1/128 times a summed gradient that each run computes within 0.04 of
/// the exact one (the bound of the gradient tests), so by at most 6e-5 between the runs per
/// step, 2.5e-4 after 4 steps, plus 2^-20 of rounding per step; we allow 1e-3.
#[test]
fn a_training_job_gives_the_weights_of_the_simulated_run() {
    use tessera_common::train_job::Optimizer;
    use tessera_model_owner::encrypted::{EncryptedOptions, ProtocolKind, simulate_encrypted};

    let c = cluster(2, 60);
    let _servers = c.start_servers();
    let out = c.path("trained");
    let trainer = model_owner(
        &c,
        "train-encrypted",
        &[
            "--data-owners",
            "data-owner-0,data-owner-1",
            "--max-rows",
            "1000",
            "--model",
            "network-a",
            "--optimizer",
            "sgd",
            "--learning-rate",
            "0.1",
            "--batch-size",
            "128",
            "--epochs",
            "1",
            "--loss-every",
            "1",
            "--seed",
            "3",
            "--job-id",
            "42",
            "--out",
            path_str(&out),
            "--timeout-secs",
            "120",
        ],
        "train-encrypted.log",
    );
    let owners: Vec<Proc> = (0..2)
        .map(|i| {
            let name = format!("data-owner-{i}");
            c.spawn(
                env!("CARGO_BIN_EXE_t-data-owner"),
                &[
                    "share-data",
                    "--config",
                    path_str(&c.config()),
                    "--name",
                    &name,
                    "--key",
                    path_str(&c.path(&format!("{name}.key"))),
                    "--job",
                    "42",
                    "--data",
                    "bundled",
                    "--limit",
                    "512",
                    "--shard",
                    &format!("{i}/2"),
                ],
                &format!("share-{name}.log"),
            )
        })
        .collect();
    for p in owners {
        must_finish(&c, p, "share-data", 120);
    }
    must_finish(&c, trainer, "train-encrypted", 180);
    let read = |path: &Path| -> Vec<f64> {
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        json["weights"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect()
    };
    let networked = read(&out.join("checkpoint.json"));

    let simulated_out = c.path("simulated");
    let opts = EncryptedOptions {
        protocol: ProtocolKind::Aby3,
        model: ModelSpec::network_a(),
        optimizer: Optimizer::sgd(0.1),
        epochs: 1,
        batch_size: 128,
        data_owners: 2,
        limit: Some(512),
        small_vs_large: false,
        frac_bits: tessera_mpc::train::precision::FRAC_BITS,
        compare_plaintext: false,
        loss_every: 1,
        dp: None,
        seed: 3,
        lr_decay: 1.0,
        servers_init: false,
        start: None,
        out: simulated_out.clone(),
        interactive: false,
    };
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(simulate_encrypted(opts))
        .expect("simulated run");
    let simulated = read(&simulated_out.join("checkpoint.json"));
    assert_eq!(networked.len(), simulated.len());
    let worst = networked
        .iter()
        .zip(&simulated)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(worst <= 1e-3, "largest difference {worst}");
    let log = std::fs::read_to_string(c.path("train-encrypted.log")).unwrap();
    assert!(log.contains("encrypted test accuracy"), "{log}");
    // The model owner asks every server for the job's state.
    let status = model_owner(&c, "job-status", &["--job", "42"], "job-status.log");
    must_finish(&c, status, "job-status", 30);
    let log = std::fs::read_to_string(c.path("job-status.log")).unwrap();
    assert_eq!(log.matches("(train): Done").count(), 3, "{log}");
}
