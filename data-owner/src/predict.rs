//! `data-owner predict`: encrypted prediction on a model deployed to the servers. The examples
//! are secret-shared to the servers (sealed for each), the servers run the model on shares, and
//! only this client can open the logits; one MPC job per batch.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tessera_common::cli::{PartyArgs, PartyLoadError};
use tessera_common::dataset::{Dataset, DatasetError, Split};
use tessera_jobs::ClientError;
use tessera_proto::GrpcJobs;

/// Arguments of `predict`.
#[derive(Debug, Clone, clap::Args)]
pub struct PredictArgs {
    /// Cluster file, name and key file.
    #[command(flatten)]
    pub party: PartyArgs,
    /// The deployed model's id (the cluster file's `[models.<id>]` must name this client).
    #[arg(long)]
    pub model_id: String,
    /// The examples: a folder of MNIST IDX files (t10k-*), a CSV file (features then a label
    /// column), or `bundled` for the bundled MNIST test digits. Labels, where given, are used
    /// only to print the accuracy here; they are never sent.
    #[arg(long)]
    pub input: String,
    /// The label column of a CSV table (default: the column named `label` in any case, else the
    /// last column).
    #[arg(long)]
    pub label_column: Option<String>,
    /// Predict only the first N examples.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Examples per MPC job.
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Write `index,class,logit_0,...` rows to this CSV file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Seconds one batch may take from launch to its logits.
    #[arg(long, default_value_t = 120)]
    pub timeout_secs: u64,
}

/// Errors of `predict`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PredictError {
    /// The cluster file or key file.
    #[error(transparent)]
    Party(#[from] PartyLoadError),
    /// The examples.
    #[error("--input {path}: {source}")]
    Data {
        /// The input as given.
        path: String,
        /// What went wrong.
        source: DatasetError,
    },
    /// `--batch-size 0`.
    #[error("--batch-size must be at least 1")]
    ZeroBatch,
    /// An input without examples.
    #[error("--input {0}: no examples")]
    NoExamples(String),
    /// A server refused, failed or could not be reached.
    #[error(transparent)]
    Job(#[from] ClientError),
    /// Writing `--out`.
    #[error("--out {path}: {source}")]
    Out {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
}

/// What a prediction run produced.
#[derive(Debug, Clone)]
pub struct Predictions {
    /// Logits per example.
    pub logits: Vec<Vec<f64>>,
    /// The predicted class per example (the largest logit, the first on ties; for one logit,
    /// 1 if it is positive).
    pub classes: Vec<usize>,
}

fn load(
    input: &str,
    label_column: Option<&str>,
    limit: Option<usize>,
) -> Result<Dataset, PredictError> {
    let data = if input == "bundled" {
        Dataset::bundled_mnist(Split::Test)
    } else {
        Dataset::load_path(Path::new(input), Split::Test, label_column).map_err(|source| {
            PredictError::Data {
                path: input.to_string(),
                source,
            }
        })?
    };
    Ok(match limit {
        Some(n) => data.subset(&(0..n.min(data.len())).collect::<Vec<_>>()),
        None => data,
    })
}

/// The class a row of logits predicts.
pub fn predicted_class(row: &[f64]) -> usize {
    if row.len() == 1 {
        return usize::from(row[0] > 0.0);
    }
    (0..row.len()).fold(0, |best, i| if row[i] > row[best] { i } else { best })
}

fn write_csv(path: &Path, p: &Predictions) -> Result<(), PredictError> {
    use std::fmt::Write as _;
    let mut text = String::from("index,class");
    for i in 0..p.logits.first().map_or(0, Vec::len) {
        let _ = write!(text, ",logit_{i}");
    }
    text.push('\n');
    for (i, (row, class)) in p.logits.iter().zip(&p.classes).enumerate() {
        let _ = write!(text, "{i},{class}");
        for v in row {
            let _ = write!(text, ",{v}");
        }
        text.push('\n');
    }
    std::fs::write(path, text).map_err(|source| PredictError::Out {
        path: path.to_owned(),
        source,
    })
}

/// Runs `predict`: prints a summary (and the accuracy against the labels the input carries),
/// writes `--out`.
pub async fn predict_command(args: PredictArgs) -> Result<Predictions, PredictError> {
    if args.batch_size == 0 {
        return Err(PredictError::ZeroBatch);
    }
    let (cluster, identity) = args.party.load()?;
    let data = load(&args.input, args.label_column.as_deref(), args.limit)?;
    if data.is_empty() {
        return Err(PredictError::NoExamples(args.input.clone()));
    }
    let jobs = GrpcJobs::new(&cluster, &identity)?;
    let client = jobs.client(Duration::from_secs(args.timeout_secs));
    let started = Instant::now();
    let width = data.sample_len();
    let mut logits = Vec::with_capacity(data.len());
    for batch in data.features.chunks(args.batch_size * width) {
        let n = batch.len() / width;
        let flat = client.predict(&args.model_id, n, batch).await?;
        let outputs = flat.len() / n;
        logits.extend(flat.chunks(outputs).map(<[f64]>::to_vec));
    }
    let classes: Vec<usize> = logits.iter().map(|r| predicted_class(r)).collect();
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "predicted {} examples on model {:?} in {seconds:.2} s ({} jobs)",
        classes.len(),
        args.model_id,
        data.len().div_ceil(args.batch_size)
    );
    let shown: Vec<String> = classes.iter().take(20).map(usize::to_string).collect();
    println!(
        "classes: {}{}",
        shown.join(" "),
        if classes.len() > 20 { " ..." } else { "" }
    );
    if !data.labels.is_empty() {
        let right = classes
            .iter()
            .zip(&data.labels)
            .filter(|(c, l)| **c == usize::from(**l))
            .count();
        println!(
            "accuracy against the input's labels: {:.4}",
            right as f64 / classes.len() as f64
        );
    }
    let predictions = Predictions { logits, classes };
    if let Some(path) = &args.out {
        write_csv(path, &predictions)?;
        println!("wrote {}", path.display());
    }
    Ok(predictions)
}
