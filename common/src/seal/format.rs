//! The envelope's layout: versions and the sizes of its parts.

/// Envelope format version.
pub const VERSION: u8 = 1;
/// Bytes of the cleartext header.
pub const HEADER_LEN: usize = 36;
/// Bytes of the nonce.
pub const NONCE_LEN: usize = 12;
/// Bytes of the authentication tag.
pub const TAG_LEN: usize = 16;
/// Bytes an envelope adds to its plaintext.
pub const OVERHEAD: usize = HEADER_LEN + NONCE_LEN + TAG_LEN;
/// Envelope version of a forward-secret envelope (an ephemeral key per envelope).
pub const VERSION_EPHEMERAL: u8 = 2;
/// Bytes a forward-secret envelope adds to its plaintext (its ephemeral public key too).
pub const EPHEMERAL_OVERHEAD: usize = OVERHEAD + 32;
