//! [`ProtocolKind`]: which MPC protocol a job runs, as a value (job descriptions, command lines),
//! and the fixed-point limits every protocol shares ([`max_frac_bits`]). The engine
//! (`tessera-mpc`) runs the protocols; the parties outside the servers only need to name one and
//! know how its servers hold a value ([`ProtocolKind::scheme`]).

use serde::{Deserialize, Serialize};

use crate::sharing::outside::Scheme;

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

    /// Whether the protocol compares (ReLU, max-pooling, argmax): SecureNN and ABY3 do; Pond
    /// runs polynomial activations instead.
    pub fn compares(self) -> bool {
        !matches!(self, ProtocolKind::Pond)
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

/// The most fractional bits a fixed-point value may have in the 64-bit ring: a product carries
/// twice as many, and with the approximations' extra bits it must stay well inside the ring.
pub const MAX_FRAC_BITS: u32 = 30;

/// The most fractional bits in a ring of `ring_bits`: 30 in the 64-bit ring; 40 in the 128-bit
/// one, where the bound is the comparisons' (they run modulo `2^64`, so a value must stay below
/// `2^62` raw: 22 integer bits at 40 fractional).
pub fn max_frac_bits(ring_bits: u32) -> u32 {
    if ring_bits >= 128 {
        40
    } else {
        (ring_bits / 2).saturating_sub(2).min(MAX_FRAC_BITS)
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

    #[test]
    fn frac_bits_bounds() {
        assert_eq!(max_frac_bits(64), 30);
        assert_eq!(max_frac_bits(128), 40);
        assert_eq!(max_frac_bits(32), 14);
    }
}
