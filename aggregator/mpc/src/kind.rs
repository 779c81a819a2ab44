//! [`ProtocolKind`]: which protocol a job runs, as a value (job descriptions, command lines).

use serde::{Deserialize, Serialize};

use super::io::Scheme;
use super::model::Activations;

/// The MPC protocol of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProtocolKind {
    /// ABY3 (three servers, replicated sharing).
    Aby3,
    /// SecureNN (two servers and a helper).
    #[serde(rename = "securenn")]
    SecureNn,
    /// Pond (two servers and a producer; polynomial activations only).
    Pond,
}

impl ProtocolKind {
    /// How the servers hold a value under this protocol.
    pub fn scheme(self) -> Scheme {
        match self {
            ProtocolKind::Aby3 => Scheme::Replicated,
            _ => Scheme::Additive,
        }
    }

    /// The activations a model runs with: exact comparisons, or Pond's polynomials.
    pub fn activations(self) -> Activations {
        match self {
            ProtocolKind::Pond => Activations::Polynomial,
            _ => Activations::Exact,
        }
    }

    /// The protocol's name.
    pub fn name(self) -> &'static str {
        match self {
            ProtocolKind::Aby3 => "aby3",
            ProtocolKind::SecureNn => "securenn",
            ProtocolKind::Pond => "pond",
        }
    }
}

impl std::fmt::Display for ProtocolKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_names_are_the_cli_names() {
        for kind in [
            ProtocolKind::Aby3,
            ProtocolKind::SecureNn,
            ProtocolKind::Pond,
        ] {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.name()));
            assert_eq!(serde_json::from_str::<ProtocolKind>(&json).unwrap(), kind);
        }
    }
}
