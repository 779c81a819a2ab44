//! `--model`: a preset name or a model-spec file, and the spec it gives for the data at hand.
//!
//! A model file is JSON (`.json`) or TOML (`.toml`) holding a [`ModelSpec`] whose `input_shape`
//! may be left out: the input then follows the data (30 features of a table make a Dense model
//! on 30 inputs). Presets adapt the same way when their layers allow it (`logreg` and
//! `network-a` start with `flatten`, so they take any sample shape; the convolutional presets
//! need `[channels, height, width]` samples). Either way the spec is checked against the data's
//! sample shape and labels before anything trains, and a mismatch is a typed
//! [`ModelFileError::Data`] naming the model.
//!
//! A path ending in `.onnx` imports an ONNX model ([`crate::onnx`]): its layers, its input
//! shape (fixed by the file) and its weights, which start the training instead of fresh ones.
//!
//! ```toml
//! # input_shape = [30]     (optional: taken from the data)
//! [[layers]]
//! type = "dense"
//! units = 16
//! [[layers]]
//! type = "relu"
//! [[layers]]
//! type = "dense"
//! units = 2
//! ```

use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;

use crate::graph::Node;
use crate::model_spec::{DataMismatch, LayerSpec, ModelSpec};
use crate::onnx::{ImportedModel, OnnxError};

/// The presets' names, as `--help` and errors list them.
pub const PRESETS: &str = "network-a, network-b, network-c, network-d, logreg, residual";

/// A model as a file describes it: the input shape may be left to the data.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelDraft {
    /// Shape of one input sample, if fixed by the file.
    #[serde(default)]
    pub input_shape: Option<Vec<usize>>,
    /// A chain's layers in order; the last one's outputs are the class logits.
    #[serde(default)]
    pub layers: Vec<LayerSpec>,
    /// A graph's nodes in a topological order (instead of `layers`).
    #[serde(default)]
    pub nodes: Vec<Node>,
    /// A graph's output value (the last node's when left out).
    #[serde(default)]
    pub output: Option<String>,
}

impl ModelDraft {
    /// The spec over samples of `input_shape`.
    fn spec(&self, input_shape: &[usize]) -> ModelSpec {
        ModelSpec {
            input_shape: input_shape.to_vec(),
            layers: self.layers.clone(),
            nodes: self.nodes.clone(),
            output: self.output.clone(),
        }
    }
}

/// What `--model` names.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelChoice {
    /// A preset (see [`ModelSpec::preset`]).
    Preset {
        /// Its name as given.
        name: String,
        /// Its spec (MNIST-shaped input until fitted to data).
        spec: ModelSpec,
    },
    /// A spec given whole (by code, not the command line): its input shape is fixed.
    Spec(ModelSpec),
    /// A model-spec file.
    File {
        /// Where it was read from.
        path: PathBuf,
        /// What it holds.
        draft: ModelDraft,
    },
    /// An ONNX model: layers, input shape and weights.
    Onnx {
        /// Where it was read from.
        path: PathBuf,
        /// What it imported as.
        model: ImportedModel,
    },
}

/// Why `--model` gives no usable spec.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelFileError {
    /// Neither a preset nor a `.json`/`.toml`/`.onnx` path.
    #[error(
        "unknown model {0:?}: give a preset ({PRESETS}), a model file ending in .json or .toml, \
         or an ONNX model ending in .onnx"
    )]
    Unknown(String),
    /// The file cannot be read.
    #[error("cannot read model file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a model spec.
    #[error("model file {path}: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },
    /// The ONNX model does not import.
    #[error(transparent)]
    Onnx(#[from] OnnxError),
    /// The model does not fit the data.
    #[error("model {model}: {source}")]
    Data {
        /// The preset's name or the file's path.
        model: String,
        /// How it does not fit.
        source: DataMismatch,
    },
}

impl ModelChoice {
    /// Reads a model file (`.json` or `.toml`) or imports an ONNX model (`.onnx`).
    pub fn load(path: &Path) -> Result<Self, ModelFileError> {
        if path.extension().and_then(|e| e.to_str()) == Some("onnx") {
            let model = crate::onnx::import(path)?;
            return Ok(ModelChoice::Onnx {
                path: path.to_owned(),
                model,
            });
        }
        let text = std::fs::read_to_string(path).map_err(|source| ModelFileError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse_file(&text, path)
    }

    /// [`ModelChoice::load`] of a `.json` or `.toml` model file already read (`path` gives its
    /// format and names it in errors).
    pub fn parse_file(text: &str, path: &Path) -> Result<Self, ModelFileError> {
        let parse = |reason: String| ModelFileError::Parse {
            path: path.to_owned(),
            reason,
        };
        let draft: ModelDraft = match path.extension().and_then(|e| e.to_str()) {
            Some("json") => serde_json::from_str(text).map_err(|e| parse(e.to_string()))?,
            Some("toml") => toml::from_str(text).map_err(|e| parse(e.to_string()))?,
            _ => return Err(ModelFileError::Unknown(path.display().to_string())),
        };
        if draft.layers.is_empty() && draft.nodes.is_empty() {
            return Err(parse("no layers and no nodes".into()));
        }
        Ok(ModelChoice::File {
            path: path.to_owned(),
            draft,
        })
    }

    /// The preset's name, if it is one.
    pub fn preset_name(&self) -> Option<&str> {
        match self {
            ModelChoice::Preset { name, .. } => Some(name),
            ModelChoice::Spec(_) | ModelChoice::File { .. } | ModelChoice::Onnx { .. } => None,
        }
    }

    /// The weights training starts from, when the model brings its own (ONNX).
    pub fn initial_weights(&self) -> Option<&[f32]> {
        match self {
            ModelChoice::Onnx { model, .. } => Some(&model.weights),
            _ => None,
        }
    }

    /// How errors and logs name it.
    pub fn name(&self) -> String {
        match self {
            ModelChoice::Preset { name, .. } => name.clone(),
            ModelChoice::Spec(_) => "(given)".into(),
            ModelChoice::File { path, .. } | ModelChoice::Onnx { path, .. } => {
                path.display().to_string()
            }
        }
    }

    /// The spec for data whose samples have `sample_shape` and whose labels go up to
    /// `max_label`: the input shape follows the data unless the file fixes it, and the data
    /// must fit.
    pub fn spec_for(
        &self,
        sample_shape: &[usize],
        max_label: u8,
    ) -> Result<ModelSpec, ModelFileError> {
        let mismatch = |source: DataMismatch| ModelFileError::Data {
            model: self.name(),
            source,
        };
        let spec = match self {
            ModelChoice::Preset { spec, .. } if spec.takes_shape(sample_shape) => spec.clone(),
            ModelChoice::Preset { spec, .. } => spec
                .with_input_shape(sample_shape)
                .map_err(|e| mismatch(e.into()))?,
            ModelChoice::Spec(spec) => spec.clone(),
            ModelChoice::Onnx { model, .. } => model.spec.clone(),
            ModelChoice::File { draft, .. } => match &draft.input_shape {
                Some(shape) => draft.spec(shape),
                None => draft.spec(sample_shape),
            },
        };
        spec.resolve_graph().map_err(|e| mismatch(e.into()))?;
        spec.check_data(sample_shape, max_label).map_err(mismatch)?;
        Ok(spec)
    }
}

impl From<ModelSpec> for ModelChoice {
    fn from(spec: ModelSpec) -> Self {
        ModelChoice::Spec(spec)
    }
}

impl FromStr for ModelChoice {
    type Err = ModelFileError;

    /// A preset name, else a path to a model file.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match ModelSpec::preset(s) {
            Some(spec) => Ok(ModelChoice::Preset {
                name: s.to_owned(),
                spec,
            }),
            None if [".json", ".toml", ".onnx"].iter().any(|e| s.ends_with(e)) => {
                Self::load(Path::new(s))
            }
            None => Err(ModelFileError::Unknown(s.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOML: &str = "[[layers]]\ntype = \"dense\"\nunits = 16\n[[layers]]\ntype = \"relu\"\n\
                        [[layers]]\ntype = \"dense\"\nunits = 2\n";

    #[test]
    fn files_and_presets_follow_the_data() {
        let dir = tempfile::tempdir().unwrap();
        let toml_path = dir.path().join("mlp.toml");
        std::fs::write(&toml_path, TOML).unwrap();
        let json_path = dir.path().join("mlp.json");
        std::fs::write(
            &json_path,
            r#"{"input_shape": [30], "layers": [{"type": "dense", "units": 16},
                {"type": "relu"}, {"type": "dense", "units": 2}]}"#,
        )
        .unwrap();
        let from_toml: ModelChoice = toml_path.to_str().unwrap().parse().unwrap();
        let from_json: ModelChoice = json_path.to_str().unwrap().parse().unwrap();
        let spec = from_toml.spec_for(&[30], 1).unwrap();
        assert_eq!(spec.input_shape, vec![30]);
        assert_eq!(spec.num_params(), Ok(30 * 16 + 16 + 16 * 2 + 2));
        assert_eq!(from_json.spec_for(&[30], 1).unwrap(), spec);
        // The TOML file's input follows other data; the JSON file fixes it at 30.
        assert_eq!(from_toml.spec_for(&[8], 1).unwrap().input_shape, vec![8]);
        assert!(matches!(
            from_json.spec_for(&[8], 1),
            Err(ModelFileError::Data {
                source: DataMismatch::Shape { .. },
                ..
            })
        ));
        // Two logits cannot express label 4.
        assert!(matches!(
            from_toml.spec_for(&[30], 4),
            Err(ModelFileError::Data {
                source: DataMismatch::Labels {
                    label: 4,
                    outputs: 2,
                    classes: 2
                },
                ..
            })
        ));
        // A flattening preset takes a table's rows; a convolutional one cannot, and says which.
        let logreg: ModelChoice = "logreg".parse().unwrap();
        assert_eq!(logreg.spec_for(&[30], 1).unwrap().num_params(), Ok(310));
        assert_eq!(
            logreg.spec_for(&[1, 28, 28], 9).unwrap(),
            ModelSpec::logistic_regression()
        );
        let conv: ModelChoice = "network-b".parse().unwrap();
        let err = conv.spec_for(&[30], 1).unwrap_err();
        assert!(
            matches!(&err, ModelFileError::Data { model, source: DataMismatch::Spec(_) } if model == "network-b"),
            "{err}"
        );
    }

    #[test]
    fn bad_model_arguments_say_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            "network-z".parse::<ModelChoice>(),
            Err(ModelFileError::Unknown(_))
        ));
        let missing = dir.path().join("missing.json");
        assert!(matches!(
            missing.to_str().unwrap().parse::<ModelChoice>(),
            Err(ModelFileError::Io { .. })
        ));
        let typo = dir.path().join("typo.toml");
        std::fs::write(&typo, "[[layers]]\ntype = \"dense\"\nunit = 16\n").unwrap();
        let err = typo.to_str().unwrap().parse::<ModelChoice>().unwrap_err();
        assert!(
            matches!(&err, ModelFileError::Parse { path, .. } if *path == typo),
            "{err}"
        );
        let empty = dir.path().join("empty.json");
        std::fs::write(&empty, r#"{"layers": []}"#).unwrap();
        assert!(matches!(
            empty.to_str().unwrap().parse::<ModelChoice>(),
            Err(ModelFileError::Parse { .. })
        ));
    }

    #[test]
    fn an_onnx_model_fixes_its_input_and_brings_its_weights() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/models/onnx");
        let mlp = dir.join("mnist-mlp.onnx");
        let choice: ModelChoice = mlp.to_str().unwrap().parse().unwrap();
        assert!(matches!(&choice, ModelChoice::Onnx { path, .. } if *path == mlp));
        let spec = choice.spec_for(&[1, 28, 28], 9).unwrap();
        assert_eq!(
            choice.initial_weights().map(<[f32]>::len),
            spec.num_params().ok()
        );
        // The file fixes the input: a table of 30 features does not fit, and the error names it.
        let err = choice.spec_for(&[30], 1).unwrap_err();
        assert!(
            matches!(&err, ModelFileError::Data { model, source: DataMismatch::Shape { .. } } if model.ends_with("mnist-mlp.onnx")),
            "{err}"
        );
        let missing = dir.join("missing.onnx");
        assert!(matches!(
            missing.to_str().unwrap().parse::<ModelChoice>(),
            Err(ModelFileError::Onnx(OnnxError::Read { .. }))
        ));
        // A model the chain's layers do not express (a tanh) imports as a graph.
        let tanh: ModelChoice = dir.join("tanh-mlp.onnx").to_str().unwrap().parse().unwrap();
        let spec = tanh.spec_for(&[1, 28, 28], 9).unwrap();
        assert!(spec.is_graph());
        assert_eq!(
            tanh.initial_weights().map(<[f32]>::len),
            spec.num_params().ok()
        );
    }
}
