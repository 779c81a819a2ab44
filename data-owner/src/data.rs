//! A data owner's local data as its commands name it (`--data`, `--label-column`, `--limit`,
//! `--shard`): loaded once, the same way for federated rounds and encrypted training.

use tessera_common::dataset::{Dataset, Split};

/// Errors of loading a data owner's local data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// The data does not load.
    #[error("--data {path}: {source}")]
    Load {
        /// The data as given.
        path: String,
        /// What went wrong.
        source: tessera_common::dataset::DatasetError,
    },
    /// A bad `--shard`.
    #[error("--shard {0:?}: expected K/N with K < N")]
    BadShard(String),
    /// Nothing left to use.
    #[error("--data {0}: no examples (after --limit and --shard)")]
    Empty(String),
}

/// Loads a data owner's training data: `bundled` (the bundled MNIST training digits), a folder
/// of IDX files or a CSV file; the first `limit` examples, then part `K/N` of them.
pub fn load_dataset(
    data: &str,
    label_column: Option<&str>,
    limit: Option<usize>,
    shard: Option<&str>,
) -> Result<Dataset, DataError> {
    let mut set = if data == "bundled" {
        Dataset::bundled_mnist(Split::Train)
    } else {
        Dataset::load_path(std::path::Path::new(data), Split::Train, label_column).map_err(
            |source| DataError::Load {
                path: data.to_string(),
                source,
            },
        )?
    };
    if let Some(limit) = limit {
        set = set.subset(&(0..limit.min(set.len())).collect::<Vec<_>>());
    }
    if let Some(spec) = shard {
        let bad = || DataError::BadShard(spec.to_string());
        let (k, n) = spec.split_once('/').ok_or_else(bad)?;
        let (k, n): (usize, usize) = (k.parse().map_err(|_| bad())?, n.parse().map_err(|_| bad())?);
        if k >= n {
            return Err(bad());
        }
        set = set.split_iid(n).swap_remove(k);
    }
    if set.is_empty() {
        return Err(DataError::Empty(data.to_string()));
    }
    Ok(set)
}
