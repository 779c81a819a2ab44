//! [`Optimizer`]: the optimizer of an encrypted training and its hyper-parameters, as a job
//! names it. The engine's `train::optim` runs its steps on shares.

/// An optimizer and its hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Optimizer {
    /// `v <- momentum v + g; w <- w - lr v` (plain SGD with `momentum = 0`).
    Sgd {
        /// Learning rate.
        lr: f64,
        /// Momentum (0 for none).
        momentum: f64,
    },
    /// Adam.
    Adam {
        /// Learning rate.
        lr: f64,
        /// First-moment decay.
        beta1: f64,
        /// Second-moment decay.
        beta2: f64,
        /// Added to the second moment's square root.
        eps: f64,
    },
    /// AMSgrad: Adam with the running maximum of the second moment in the denominator.
    Amsgrad {
        /// Learning rate.
        lr: f64,
        /// First-moment decay.
        beta1: f64,
        /// Second-moment decay.
        beta2: f64,
        /// Added to the second moment's square root.
        eps: f64,
    },
}

impl Optimizer {
    /// SGD without momentum.
    pub fn sgd(lr: f64) -> Self {
        Optimizer::Sgd { lr, momentum: 0.0 }
    }

    /// Adam with the usual decays (`0.9`, `0.999`) and `eps = 1e-4` (`eps^2` is then within the
    /// range of the engine's inverse square root: `tessera-mpc`'s `train::optim`).
    pub fn adam(lr: f64) -> Self {
        Optimizer::Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-4,
        }
    }

    /// AMSgrad with the same defaults as [`Optimizer::adam`].
    pub fn amsgrad(lr: f64) -> Self {
        Optimizer::Amsgrad {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-4,
        }
    }

    /// The learning rate.
    pub fn learning_rate(&self) -> f64 {
        match *self {
            Optimizer::Sgd { lr, .. }
            | Optimizer::Adam { lr, .. }
            | Optimizer::Amsgrad { lr, .. } => lr,
        }
    }

    /// The same optimizer with learning rate `rate` (a schedule changes it between epochs).
    pub fn with_learning_rate(mut self, rate: f64) -> Self {
        match &mut self {
            Optimizer::Sgd { lr, .. }
            | Optimizer::Adam { lr, .. }
            | Optimizer::Amsgrad { lr, .. } => *lr = rate,
        }
        self
    }

    /// The name (`sgd`, `adam`, `amsgrad`).
    pub fn name(&self) -> &'static str {
        match self {
            Optimizer::Sgd { .. } => "sgd",
            Optimizer::Adam { .. } => "adam",
            Optimizer::Amsgrad { .. } => "amsgrad",
        }
    }
}
