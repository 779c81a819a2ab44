//! `bench accuracy`: whole encrypted trainings to test accuracy, each beside burn's plaintext
//! run of the same job (`simulate --encrypted --compare-plaintext`: three data owners, the 8,000
//! bundled digits, batches of 128), the runs the guide's protocols chapter shows. A run takes
//! minutes (network C's epoch the most); `--only MODEL` runs one model's cases.

use serde_json::{Value, json};
use tessera_common::model_spec::ModelSpec;
use tessera_common::protocol::ProtocolKind;
use tessera_common::train_job::Optimizer;
use tessera_model_owner::encrypted::{EncryptedOptions, EncryptedSummary, simulate_encrypted};

/// Examples per batch.
const BATCH: usize = 128;
/// Fractional bits (128-bit ring).
const F: u32 = 20;

/// One training: protocol, model, optimizer with its first learning rate, decay per epoch,
/// epochs.
struct Case {
    protocol: ProtocolKind,
    model: &'static str,
    optimizer: Optimizer,
    decay: f64,
    epochs: usize,
}

/// The cases: network A under both comparing protocols with SGD and under ABY3 with Adam and
/// AMSgrad, network D, one epoch of network C (LeNet), and the binary logistic regression
/// (digits 0-4 against 5-9) under all three protocols (Pond with its polynomial sigmoid).
fn cases() -> Vec<Case> {
    use ProtocolKind::{Aby3, Pond, SecureNn};
    let case = |protocol, model, optimizer, decay, epochs| Case {
        protocol,
        model,
        optimizer,
        decay,
        epochs,
    };
    vec![
        case(Aby3, "network_a", Optimizer::sgd(0.5), 0.7, 5),
        case(SecureNn, "network_a", Optimizer::sgd(0.5), 0.7, 5),
        case(Aby3, "network_a", Optimizer::adam(0.002), 0.7, 5),
        case(Aby3, "network_a", Optimizer::amsgrad(0.002), 0.7, 5),
        case(Aby3, "network_d", Optimizer::sgd(0.5), 0.7, 5),
        case(Aby3, "network_c", Optimizer::sgd(0.2), 1.0, 1),
        case(Pond, "logistic_regression", Optimizer::sgd(0.1), 1.0, 5),
        case(SecureNn, "logistic_regression", Optimizer::sgd(0.1), 1.0, 5),
        case(Aby3, "logistic_regression", Optimizer::sgd(0.1), 1.0, 5),
    ]
}

/// The model a case names (the logistic regression is the binary one).
fn spec(model: &str) -> Option<ModelSpec> {
    match model {
        "logistic_regression" => Some(ModelSpec::binary_logistic_regression()),
        other => ModelSpec::preset(&other.replace('_', "-")),
    }
}

/// The whole job of `protocol` on `spec` with `optimizer` (its learning rate decayed by `decay`
/// per epoch) for `epochs`, beside burn's run from the same initial weights and batch order.
pub fn run_job(
    runtime: &tokio::runtime::Runtime,
    protocol: ProtocolKind,
    spec: &ModelSpec,
    optimizer: Optimizer,
    decay: f64,
    epochs: usize,
) -> Result<EncryptedSummary, tessera_model_owner::encrypted::EncryptedError> {
    // One logit: the binary task, digits 0-4 against 5-9.
    let binary = spec
        .resolve()
        .is_ok_and(|(_, out)| out.iter().product::<usize>() == 1);
    let opts = EncryptedOptions {
        protocol,
        model: spec.clone(),
        optimizer,
        epochs,
        batch_size: BATCH,
        data_owners: 3,
        limit: None,
        small_vs_large: binary,
        frac_bits: F,
        compare_plaintext: true,
        loss_every: 0,
        dp: None,
        seed: 1,
        lr_decay: decay,
        servers_init: false,
        start: None,
        out: super::report::bench_dir().join("accuracy-run"),
        interactive: false,
    };
    runtime.block_on(simulate_encrypted(opts))
}

/// Runs the cases (those of model `only`, if given); prints the table, returns the JSON rows.
pub fn run(only: Option<&str>) -> Vec<Value> {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let mut rows = Vec::new();
    for case in cases() {
        if only.is_some_and(|m| m != case.model) {
            continue;
        }
        let Some(spec) = spec(case.model) else {
            eprintln!("{}: no such model", case.model);
            continue;
        };
        let run = run_job(
            &runtime,
            case.protocol,
            &spec,
            case.optimizer,
            case.decay,
            case.epochs,
        );
        match run {
            Ok(s) => rows.push(json!({
                "protocol": case.protocol.name(),
                "model": case.model,
                "optimizer": case.optimizer.name(),
                "learning_rate": case.optimizer.learning_rate(),
                "lr_decay": case.decay,
                "epochs": case.epochs,
                "batch": BATCH,
                "encrypted_accuracy": s.encrypted_accuracy,
                "plaintext_accuracy": s.plaintext_accuracy.unwrap_or(f64::NAN),
                "seconds_per_batch": s.seconds_per_batch,
            })),
            Err(e) => eprintln!("{} {}: the run failed: {e}", case.protocol, case.model),
        }
    }
    super::report::print_rows("accuracy", &rows);
    rows
}
