//! The `private-predict` example's command line (here so the guide's test can check its flags).

use clap::Parser;

/// Encrypted prediction of MNIST digits under Pond, SecureNN and ABY3.
#[derive(Parser, Debug)]
#[command(name = "private-predict")]
pub struct PrivatePredictArgs {
    /// Test digits to predict (one batch).
    #[arg(long, default_value_t = 100)]
    pub samples: usize,
    /// Epochs of plaintext training before prediction.
    #[arg(long, default_value_t = 2)]
    pub epochs: usize,
}
