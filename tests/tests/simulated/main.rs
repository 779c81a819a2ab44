//! Simulated mode end to end in one process: the main job's code path with a small model, and the
//! files it leaves (metrics, plot, a checkpoint that loads back), own tables and model files, ONNX
//! models, owners that decline. The robust rules and DP under attack are in [`robust`].

mod robust;

use std::sync::Arc;
use tessera_common::job::ServerOptimizer;
use tessera_common::model_spec::{DataMismatch, ModelSpec, SpecError};
use tessera_common::rule::AggregationRule;
use tessera_model_owner::checkpoint::Checkpoint;

use tessera_common::PartyId;
use tessera_common::dataset::{Dataset, Split};
use tessera_common::identity::Identity;
use tessera_common::job::{JobError, JobSettings};
use tessera_common::model_file::{ModelChoice, ModelFileError};
use tessera_common::net::memory::MemoryNetwork;
use tessera_common::seal::Sealer;
use tessera_data_owner::node::DataOwnerNode;
use tessera_ml::initial_params;
use tessera_model_owner::simulate::{
    OptionsError, SimulateError, SimulateOptions, simulate, simulation_data, simulation_settings,
};
use tessera_model_owner::trainer::{
    TrainError, Trainer, TrainerConfig, TrainingSummary, initial_checkpoint,
};
use tessera_secagg::AggregatorService;
use tessera_secagg::local::LocalServer;

fn options(out: std::path::PathBuf, servers: usize, optimizer: ServerOptimizer) -> SimulateOptions {
    SimulateOptions {
        rounds: 2,
        servers,
        out,
        model: ModelSpec::logistic_regression().into(),
        optimizer,
        ring_bits: Some(32),
        ..SimulateOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_training_learns_and_leaves_its_reports() {
    for (servers, optimizer) in [
        (3, ServerOptimizer::FedAvg { server_lr: 1.0 }),
        (
            2,
            ServerOptimizer::FedAdam {
                server_lr: 0.01,
                beta1: 0.9,
                beta2: 0.99,
                tau: 1e-3,
            },
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let summary = simulate(options(dir.path().to_path_buf(), servers, optimizer))
            .await
            .unwrap();
        assert_eq!(summary.metrics.len(), 2);
        assert!(summary.metrics.iter().all(|m| m.clients == 3));
        // Logistic regression on MNIST passes 0.8 within two FedAvg rounds; FedAdam's small
        // server steps still beat chance (0.1) by far.
        let floor = if servers == 3 { 0.8 } else { 0.3 };
        assert!(
            summary.final_accuracy > floor,
            "{servers} servers: accuracy {}",
            summary.final_accuracy
        );
        let csv = std::fs::read_to_string(dir.path().join("metrics.csv")).unwrap();
        assert_eq!(csv.lines().count(), 3);
        for plot in ["metrics.png", "metrics.svg"] {
            assert!(std::fs::metadata(dir.path().join(plot)).unwrap().len() > 1000);
        }
        let cp = Checkpoint::load(&dir.path().join("checkpoint.json")).unwrap();
        assert_eq!(cp.weights, summary.weights);
        assert_eq!(cp.metrics.len(), 2);
    }
}

/// A graph model trains federated (issue 30, item 3): the residual preset (a residual block:
/// an `add` node reading the stem's output and the block's last convolution) reaches at least
/// network A's accuracy in the same three rounds from the same shards (seen here: 0.926
/// against 0.872; after five rounds 0.945 against 0.894). Both are far above chance, and the
/// residual network's parameters arrive through the same secure aggregation (three servers,
/// exact ring sums) as network A's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_residual_network_trains_federated_at_least_as_well_as_network_a() {
    let mut accuracy = Vec::new();
    for preset in ["network-a", "residual"] {
        let dir = tempfile::tempdir().unwrap();
        let options = SimulateOptions {
            rounds: 3,
            model: preset.parse().unwrap(),
            ..options(
                dir.path().to_path_buf(),
                3,
                ServerOptimizer::FedAvg { server_lr: 1.0 },
            )
        };
        let summary = simulate(options).await.unwrap();
        assert_eq!(summary.metrics.len(), 3, "{preset}");
        assert!(summary.metrics.iter().all(|m| m.clients == 3), "{preset}");
        accuracy.push(summary.final_accuracy);
    }
    let (network_a, residual) = (accuracy[0], accuracy[1]);
    assert!(network_a > 0.8, "network A: {network_a}");
    assert!(
        residual >= network_a,
        "residual {residual} below network A {network_a}"
    );
}

/// Runs that train nothing fail (issue 12, item 4): zero rounds and zero local epochs are
/// refused before anything runs, naming what is wrong; a job none of whose rounds had an aggregate
/// (here every update is above a norm bound of 1e-6, so every upload is refused) ends in
/// `NoContributions`, after writing the failed rounds' metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_trains_nothing_fails() {
    let dir = tempfile::tempdir().unwrap();
    let fedavg = ServerOptimizer::FedAvg { server_lr: 1.0 };
    let zero_rounds = SimulateOptions {
        rounds: 0,
        ..options(dir.path().join("zero-rounds"), 3, fedavg)
    };
    match simulate(zero_rounds).await {
        Err(SimulateError::Options(OptionsError::NoRounds)) => {}
        other => panic!("rounds = 0: {other:?}"),
    }
    let zero_epochs = SimulateOptions {
        local_epochs: 0,
        ..options(dir.path().join("zero-epochs"), 3, fedavg)
    };
    match simulate(zero_epochs).await {
        Err(SimulateError::Options(OptionsError::Job(JobError::Invalid {
            field: "local_epochs",
            ..
        }))) => {}
        other => panic!("local_epochs = 0: {other:?}"),
    }
    let out = dir.path().join("refused");
    let opts = SimulateOptions {
        rule: AggregationRule::NormBound { bound: 1e-6 },
        ring_bits: None,
        ..options(out.clone(), 3, fedavg)
    };
    match simulate(opts).await {
        Err(SimulateError::Train(TrainError::NoContributions { rounds, metrics })) => {
            assert_eq!(rounds, 2);
            let csv = std::fs::read_to_string(&metrics).unwrap();
            assert_eq!(csv.lines().count(), 3, "{csv}");
        }
        other => panic!("every upload refused: {other:?}"),
    }
    // `--out` naming a file: refused before round 1, with the path (at 59c017e: `File
    // exists`, no path).
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a folder").unwrap();
    match simulate(options(file.clone(), 3, fedavg)).await {
        Err(SimulateError::Train(err @ TrainError::Report { .. })) => {
            let text = err.to_string();
            assert!(text.contains(&file.display().to_string()), "{text}");
        }
        other => panic!("--out is a file: {other:?}"),
    }
}

/// Three servers and `owners` data owners in this process, every party with its own identity
/// (what `simulate` builds, opened up for tests that give each owner its own data).
struct LocalCluster {
    ids: Vec<Identity>,
    services: Vec<LocalServer<MemoryNetwork>>,
    owners: Vec<PartyId>,
}

impl LocalCluster {
    fn new(owners: u32) -> Self {
        let servers: Vec<PartyId> = (0..3).map(PartyId::Server).collect();
        let owners: Vec<PartyId> = (0..owners).map(PartyId::DataOwner).collect();
        let ids: Vec<Identity> = servers
            .iter()
            .chain(&owners)
            .chain([&PartyId::ModelOwner])
            .map(|p| Identity::generate(*p, &mut rand::rng()))
            .collect();
        let mut cluster = LocalCluster {
            ids,
            services: Vec::new(),
            owners,
        };
        cluster.services = MemoryNetwork::cluster(&servers)
            .into_iter()
            .zip(&servers)
            .map(|(net, p)| {
                LocalServer(AggregatorService::new(cluster.sealer(*p), 3, Arc::new(net)))
            })
            .collect();
        cluster
    }

    fn sealer(&self, party: PartyId) -> Sealer {
        let me = self.ids.iter().find(|i| i.party() == party).unwrap();
        Sealer::new(me, self.ids.iter().map(|i| (i.party(), i.public_key())))
    }

    /// Every owner serving (`DataOwnerNode::serve(0)`, what `data-owner serve` runs) on its
    /// own data.
    fn serve(&self, data: Vec<Dataset>) -> Vec<tokio::task::JoinHandle<()>> {
        self.owners
            .iter()
            .zip(data)
            .map(|(owner, data)| {
                let node =
                    DataOwnerNode::new(self.sealer(*owner), self.services[0].clone(), data, false);
                tokio::spawn(async move { node.serve(0).await })
            })
            .collect()
    }

    /// The model owner's trainer of `settings`, writing to `out`.
    fn trainer(
        &self,
        settings: &JobSettings,
        out: std::path::PathBuf,
        test: Dataset,
    ) -> Trainer<LocalServer<MemoryNetwork>> {
        let config = TrainerConfig {
            settings: settings.clone(),
            out_dir: out,
            show_progress: false,
            print_rounds: false,
            audit_dir: None,
            data_owners: self.owners.clone(),
        };
        Trainer::new(
            self.services.clone(),
            self.sealer(PartyId::ModelOwner),
            config,
            test,
        )
    }
}

/// Runs `settings`' job to its end (at most 120 s).
async fn run_job(
    trainer: &Trainer<LocalServer<MemoryNetwork>>,
    settings: &JobSettings,
) -> Result<TrainingSummary, TrainError> {
    let start = initial_params(&settings.model).unwrap();
    tokio::time::timeout(
        std::time::Duration::from_secs(120),
        trainer.run(initial_checkpoint(settings, start)),
    )
    .await
    .expect("the job finishes")
}

/// One set of long-lived data owners (`DataOwnerNode::serve(0)`, what `data-owner serve` runs)
/// and two jobs one after the other: every round of both jobs has all three owners (at
/// 59c017e `serve` ended with the first job, and "the newest job" was the largest id).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_owners_serve_one_job_after_another() {
    let dir = tempfile::tempdir().unwrap();
    let opts = options(
        dir.path().to_path_buf(),
        3,
        ServerOptimizer::FedAvg { server_lr: 1.0 },
    );
    let cluster = LocalCluster::new(3);
    let train = Dataset::bundled_mnist(Split::Train);
    let nodes = cluster.serve(train.subset(&(0..600).collect::<Vec<_>>()).split_iid(3));
    let test = Dataset::bundled_mnist(Split::Test).subset(&(0..200).collect::<Vec<_>>());
    // The second job's id is the smaller: "the newest job" is the one started last, not the
    // largest id (job ids are random).
    for (job, id) in [("first", 1000), ("second", 10)] {
        let settings = JobSettings {
            job_id: id,
            ..simulation_settings(&opts, &ModelSpec::logistic_regression(), 200).unwrap()
        };
        let trainer = cluster.trainer(&settings, dir.path().join(job), test.clone());
        let summary = run_job(&trainer, &settings)
            .await
            .unwrap_or_else(|e| panic!("{job} job: {e}"));
        let clients: Vec<usize> = summary.metrics.iter().map(|m| m.clients).collect();
        assert_eq!(clients, vec![3, 3], "{job} job");
    }
    for node in &nodes {
        assert!(
            !node.is_finished(),
            "a serving data owner stays up between jobs"
        );
    }
    for node in nodes {
        node.abort();
    }
}

fn breast_cancer(part: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../common/data/breast-cancer")
        .join(format!("{part}.csv"))
}

fn tabular_mlp() -> ModelChoice {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/models/tabular-mlp.toml");
    ModelChoice::load(&path).unwrap()
}

/// Own data: a CSV table of 30 standardised features (breast cancer diagnosis) and a model-spec
/// file whose input follows the data train end to end in `simulate` (at 59c017e a table could
/// not train: every round had 0 clients, loss NaN, exit 0). 10 rounds reach 0.974 here; 0.9 is
/// the bar (a majority-class guess scores 0.61 on this test split: 70 benign of 114).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_and_a_model_file_train_in_simulate() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SimulateOptions {
        rounds: 10,
        model: tabular_mlp(),
        data: Some(breast_cancer("train")),
        test_data: Some(breast_cancer("test")),
        label_column: Some("diagnosis".into()),
        ..options(
            dir.path().to_path_buf(),
            3,
            ServerOptimizer::FedAvg { server_lr: 1.0 },
        )
    };
    let summary = simulate(opts.clone()).await.unwrap();
    assert!(summary.metrics.iter().all(|m| m.clients == 3));
    assert!(
        summary.final_accuracy >= 0.9,
        "accuracy {}",
        summary.final_accuracy
    );
    let cp = Checkpoint::load(&dir.path().join("checkpoint.json")).unwrap();
    assert_eq!(cp.settings.model.input_shape, vec![30]);
    assert_eq!(cp.weights.len(), 30 * 16 + 16 + 16 * 2 + 2);
    // Without --test-data the last fifth of the (shuffled) table is held out.
    let held_out = SimulateOptions {
        test_data: None,
        ..opts.clone()
    };
    let (train, test) = simulation_data(&held_out).unwrap();
    assert_eq!((train.len(), test.len()), (364, 91));
    // A model that cannot take the table fails before round 1, naming the model and the layer.
    let conv = SimulateOptions {
        model: "network-b".parse().unwrap(),
        ..opts
    };
    match simulate(conv).await {
        Err(SimulateError::Options(OptionsError::Model(ModelFileError::Data {
            model,
            source: DataMismatch::Spec(SpecError::Layer { kind: "conv2d", .. }),
        }))) => assert_eq!(model, "network-b"),
        other => panic!("a convolutional model on a table: {other:?}"),
    }
}

/// An owner whose data does not fit the job's model declines it when it joins, and the model
/// owner hears why: with one such owner of three the job trains on the other two; with two, too
/// few are left for `min_clients` and the job fails at once, naming them and the shapes (at
/// 59c017e every round ran to its deadline with 0 clients and the cause stayed in the owners'
/// logs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_whose_data_does_not_fit_decline_and_the_model_owner_hears_why() {
    let dir = tempfile::tempdir().unwrap();
    let table = Dataset::load_csv(&breast_cancer("train"), Some("diagnosis"), 2).unwrap();
    let test = Dataset::load_csv(&breast_cancer("test"), Some("diagnosis"), 2).unwrap();
    let digits = Dataset::bundled_mnist(Split::Train).subset(&(0..200).collect::<Vec<_>>());
    let model = tabular_mlp().spec_for(&test.sample_shape, 1).unwrap();
    let opts = options(
        dir.path().to_path_buf(),
        3,
        ServerOptimizer::FedAvg { server_lr: 1.0 },
    );
    let settings = JobSettings {
        round_deadline_ms: 60_000,
        ..simulation_settings(&opts, &model, 200).unwrap()
    };
    assert_eq!(settings.min_clients, 2);
    for (mismatched, trains) in [(1, true), (2, false)] {
        let cluster = LocalCluster::new(3);
        let mut data = table.split_iid(3);
        for d in data.iter_mut().take(mismatched) {
            *d = digits.clone();
        }
        let nodes = cluster.serve(data);
        let trainer = cluster.trainer(
            &settings,
            dir.path().join(format!("{mismatched}")),
            test.clone(),
        );
        let started = std::time::Instant::now();
        let result = run_job(&trainer, &settings).await;
        if trains {
            let summary = result.unwrap();
            assert!(
                summary.metrics.iter().all(|m| m.clients == 2),
                "{:?}",
                summary.metrics
            );
            let status = cluster.services[0].0.status(settings.job_id).await.unwrap();
            assert_eq!(status.declined.len(), 1);
            assert_eq!(status.declined[0].0, PartyId::DataOwner(0));
            assert!(
                status.declined[0].1.contains("[1, 28, 28]"),
                "{:?}",
                status.declined
            );
        } else {
            match result {
                Err(err @ TrainError::Declined { .. }) => {
                    let text = err.to_string();
                    for owner in ["data-owner-0", "data-owner-1"] {
                        assert!(text.contains(owner), "{text}");
                    }
                    assert!(
                        text.contains("[1, 28, 28]") && text.contains("[30]"),
                        "{text}"
                    );
                }
                other => panic!("two of three owners declined: {other:?}"),
            }
            // At once, not after the round's 60 s deadline.
            assert!(started.elapsed() < std::time::Duration::from_secs(30));
        }
        for node in nodes {
            node.abort();
        }
    }
}

fn onnx_model(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/models/onnx")
        .join(name)
}

fn model_for_test(name: &str) -> ModelSpec {
    let model = ModelChoice::load(&onnx_model(name)).unwrap();
    model.spec_for(&[1, 28, 28], 9).unwrap()
}

/// ONNX models train in `simulate` from their own weights (`--model mnist-mlp.onnx`; the files
/// and the script that wrote them are in `examples/models/onnx`).
///
/// First, a round at learning rate 1e-9 leaves the imported weights where they were: one local
/// epoch moves no weight by more than about 1e-7, an owner uploads its delta times its sample
/// count with 16 fractional bits and stochastic rounding, so an encoded delta is 0 or, rarely,
/// one unit of 2^-16, and the mean divides by the thousands of samples of all owners: a weight
/// moves by a few units of 2^-16 / 2,000 = 7.6e-9 at most (seen here: 60 of 50,890 MLP weights
/// moved, by at most 2.9e-9; 33 CNN weights, by at most 7.6e-9). The bound asserted, 1e-7, is
/// far below what fresh weights (burn's initialisers, of size 0.05) would differ by. Then two
/// rounds at the default rate train both models far above chance (seen here: the MLP 0.885, the
/// CNN 0.894 after two rounds; the imported random weights score 0.134 and 0.066).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onnx_models_train_in_simulate_from_their_own_weights() {
    for name in ["mnist-mlp.onnx", "mnist-cnn.onnx"] {
        let model = ModelChoice::load(&onnx_model(name)).unwrap();
        let imported = model.initial_weights().unwrap().to_vec();
        let dir = tempfile::tempdir().unwrap();
        let still = SimulateOptions {
            rounds: 1,
            model: model.clone(),
            learning_rate: 1e-9,
            ..options(
                dir.path().to_path_buf(),
                3,
                ServerOptimizer::FedAvg { server_lr: 1.0 },
            )
        };
        let summary = simulate(still).await.unwrap();
        assert_eq!(summary.metrics[0].clients, 3, "{name}");
        let moved: Vec<f32> = summary
            .weights
            .iter()
            .zip(&imported)
            .map(|(a, b)| (a - b).abs())
            .collect();
        let max = moved.iter().cloned().fold(0.0, f32::max);
        assert!(
            max <= 1e-7,
            "{name}: a weight moved by {max} from the ONNX weights"
        );
        let trained = SimulateOptions {
            rounds: 2,
            model: model.clone(),
            ..options(
                dir.path().to_path_buf(),
                3,
                ServerOptimizer::FedAvg { server_lr: 1.0 },
            )
        };
        let summary = simulate(trained).await.unwrap();
        let spec = model_for_test(name);
        let (before, _) =
            tessera_ml::evaluate(&spec, &imported, &Dataset::bundled_mnist(Split::Test)).unwrap();
        assert!(
            before < 0.3,
            "{name}: the untrained ONNX weights score {before}"
        );
        assert!(
            summary.final_accuracy >= 0.8,
            "{name}: accuracy {}",
            summary.final_accuracy
        );
        let cp = Checkpoint::load(&dir.path().join("checkpoint.json")).unwrap();
        let imported = ModelChoice::load(&onnx_model(name)).unwrap();
        assert_eq!(
            cp.settings.model,
            imported.spec_for(&[1, 28, 28], 9).unwrap()
        );
    }
}
