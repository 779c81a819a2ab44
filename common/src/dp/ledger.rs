//! A data owner's own privacy ledger: every round it contributed to, across jobs, kept on disk
//! so that neither a restart nor a new job resets it, and the refusal of any round that would
//! take its epsilon past its budget (`data-owner serve --dp-budget EPS`). Encrypted trainings
//! are charged in the same ledger (`data-owner share-data --dp-budget EPS`): one Gaussian
//! mechanism per epoch under DP-SGD, all epochs before any example is shared, and a training
//! without DP-SGD is refused. The model owner's
//! accountant counts per job; only the owner's own ledger counts what the owner spent.
//!
//! Each round is the Gaussian mechanism over the owner's clipped vector with the job's effective
//! noise multiplier `z` (no sampling credited, see [`super`]): RDP `a / (2 z^2)` at order `a`,
//! added over every round of every job, converted at the owner's own `delta` by the accountant
//! ([`super::accountant::spent_of_rdp`]). A round is charged before its upload leaves (a round
//! that fails afterwards still counts: its shares may have been opened), once per job and
//! round. The file is written atomically (a temporary file, fsync, rename); a file that does not
//! parse is refused with its path, never half-read or started afresh.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::DpSettings;
use super::accountant::spent_of_rdp;
use super::policy::PrivacyRefusal;

/// One charged round.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Charge {
    /// The job.
    pub job: u64,
    /// The round.
    pub round: u64,
    /// The job's effective noise multiplier.
    pub noise_multiplier: f64,
    /// An encrypted training's epoch (`round` is the epoch), not a federated round: the two
    /// kinds of job number their ids apart, so the kind is part of what is charged once.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub encrypted: bool,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Book {
    rounds: Vec<Charge>,
}

/// The book in the file at `path`, `None` if there is no file.
fn read_book(path: &Path) -> Result<Option<Book>, LedgerError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| LedgerError::Corrupt {
                path: path.to_path_buf(),
                reason: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(LedgerError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Why the ledger cannot be used or refuses a round.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// The file could not be read or written.
    #[error("dp ledger {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The file is not a ledger (truncated, edited, another format).
    #[error("dp ledger {path} is not a ledger: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },
    /// A budget or delta that cannot work.
    #[error("dp budget {budget} at delta {delta}: must be positive, delta in (0, 1)")]
    BadBudget {
        /// The budget.
        budget: f64,
        /// The delta.
        delta: f64,
    },
    /// The round would go past the budget (or has no noise at all).
    #[error(transparent)]
    Refused(#[from] PrivacyRefusal),
}

/// A data owner's ledger, bound to its file.
#[derive(Debug)]
pub struct Ledger {
    path: PathBuf,
    budget: f64,
    delta: f64,
    book: Book,
}

impl Ledger {
    /// The ledger at `path` (empty if there is no file yet) for a budget of `budget` epsilon
    /// at `delta`.
    pub fn open(path: &Path, budget: f64, delta: f64) -> Result<Self, LedgerError> {
        if !(budget.is_finite() && budget > 0.0 && delta > 0.0 && delta < 1.0) {
            return Err(LedgerError::BadBudget { budget, delta });
        }
        Ok(Ledger {
            path: path.to_path_buf(),
            budget,
            delta,
            book: read_book(path)?.unwrap_or_default(),
        })
    }

    /// An exclusive lock on the ledger (a `.lock` file beside it), held while a charge reads,
    /// decides and writes: `data-owner serve` and `share-data` keep the same ledger, and
    /// neither may write over a charge the other made.
    fn lock(&self) -> Result<std::fs::File, LedgerError> {
        let mut lock = self.path.clone().into_os_string();
        lock.push(".lock");
        let io = |source| LedgerError::Io {
            path: self.path.clone(),
            source,
        };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(PathBuf::from(lock))
            .map_err(io)?;
        file.lock().map_err(io)?;
        Ok(file)
    }

    /// The rounds charged so far.
    pub fn charges(&self) -> &[Charge] {
        &self.book.rounds
    }

    /// The epsilon spent so far, at the ledger's delta.
    pub fn spent(&self) -> f64 {
        self.epsilon_with(None)
    }

    fn epsilon_with(&self, extra: impl IntoIterator<Item = f64>) -> f64 {
        // Sum over rounds of 1 / z^2: the Gaussian's RDP at order a is a / 2 times it.
        let inv: f64 = self
            .book
            .rounds
            .iter()
            .map(|c| c.noise_multiplier)
            .chain(extra)
            .map(|z| 1.0 / (z * z))
            .sum();
        spent_of_rdp(|a| f64::from(a) / 2.0 * inv, self.delta).epsilon
    }

    /// Charges round `round` of job `job` under differential privacy `dp` (at `frac_bits`
    /// fractional bits) and writes the ledger, before the owner uploads; refuses a round that
    /// would take the epsilon past the budget, and a job without noise. A round charged before
    /// is not charged again. Returns the epsilon spent afterwards.
    pub fn charge(
        &mut self,
        job: u64,
        round: u64,
        dp: Option<&DpSettings>,
        frac_bits: u32,
    ) -> Result<f64, LedgerError> {
        self.charge_all(job, &[round], false, dp, frac_bits)
    }

    /// Charges every epoch of encrypted training `job` under DP-SGD `dp` (each example is in
    /// one noised sum per epoch: one Gaussian mechanism each), before the owner shares anything;
    /// refuses a training that would go past the budget, and one without DP-SGD. A training
    /// charged before is not charged again. Returns the epsilon spent afterwards.
    pub fn charge_training(
        &mut self,
        job: u64,
        epochs: u64,
        dp: Option<&DpSettings>,
        frac_bits: u32,
    ) -> Result<f64, LedgerError> {
        let epochs: Vec<u64> = (0..epochs).collect();
        self.charge_all(job, &epochs, true, dp, frac_bits)
    }

    /// Charges `rounds` of `job` (of its kind) at once, or none of them.
    fn charge_all(
        &mut self,
        job: u64,
        rounds: &[u64],
        encrypted: bool,
        dp: Option<&DpSettings>,
        frac_bits: u32,
    ) -> Result<f64, LedgerError> {
        let _locked = self.lock()?;
        // What another process charged since this one read the file counts too.
        if let Some(book) = read_book(&self.path)? {
            self.book = book;
        }
        let charged = |round: u64| {
            self.book
                .rounds
                .iter()
                .any(|c| c.job == job && c.round == round && c.encrypted == encrypted)
        };
        let new: Vec<u64> = rounds.iter().copied().filter(|r| !charged(*r)).collect();
        if new.is_empty() {
            return Ok(self.spent());
        }
        let Some(dp) = dp else {
            return Err(PrivacyRefusal::OverBudget {
                would: f64::INFINITY,
                budget: self.budget,
                delta: self.delta,
            }
            .into());
        };
        let z = dp.effective_noise_multiplier(frac_bits);
        let would = self.epsilon_with(new.iter().map(|_| z));
        if would > self.budget {
            return Err(PrivacyRefusal::OverBudget {
                would,
                budget: self.budget,
                delta: self.delta,
            }
            .into());
        }
        let before = self.book.rounds.len();
        self.book.rounds.extend(new.iter().map(|round| Charge {
            job,
            round: *round,
            noise_multiplier: z,
            encrypted,
        }));
        if let Err(e) = self.save() {
            self.book.rounds.truncate(before);
            return Err(e);
        }
        Ok(would)
    }

    /// Writes the ledger atomically: a temporary file beside it, fsynced, renamed over it.
    fn save(&self) -> Result<(), LedgerError> {
        let io = |source| LedgerError::Io {
            path: self.path.clone(),
            source,
        };
        let json = serde_json::to_vec_pretty(&self.book).map_err(|e| io(e.into()))?;
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp).map_err(io)?;
            f.write_all(&json).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, &self.path).map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dp(z: f64) -> DpSettings {
        DpSettings {
            noise_multiplier: z,
            clip: 1.0,
            delta: 1e-5,
        }
    }

    #[test]
    fn rounds_add_up_across_jobs_and_restarts_until_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.json");
        // z = 2 at delta 1e-5: one round costs 2.17, two 3.19, three 4.01, four 4.75
        // (dp_accounting's RDP accountant agrees); a budget of 4.5 takes three rounds.
        let mut ledger = Ledger::open(&path, 4.5, 1e-5).unwrap();
        let one = ledger.charge(1, 1, Some(&dp(2.0)), 16).unwrap();
        let expect = |rounds| super::super::accountant::spent(1.0, 2.0, rounds, 1e-5).epsilon;
        assert!((one - expect(1)).abs() < 1e-9);
        // The same round again is not charged twice.
        assert_eq!(ledger.charge(1, 1, Some(&dp(2.0)), 16).unwrap(), one);
        ledger.charge(1, 2, Some(&dp(2.0)), 16).unwrap();
        drop(ledger);
        // A restart and another job: the ledger goes on from the file.
        let mut ledger = Ledger::open(&path, 4.5, 1e-5).unwrap();
        assert_eq!(ledger.charges().len(), 2);
        assert!((ledger.spent() - expect(2)).abs() < 1e-9);
        let three = ledger.charge(2, 1, Some(&dp(2.0)), 16).unwrap();
        assert!((three - 4.0119).abs() < 1e-4 && (three - expect(3)).abs() < 1e-9);
        // The fourth round would pass 4.5: refused, and nothing is written.
        assert!(matches!(
            ledger.charge(2, 2, Some(&dp(2.0)), 16),
            Err(LedgerError::Refused(PrivacyRefusal::OverBudget { .. }))
        ));
        // A job without noise is refused whatever the budget left.
        let mut roomy = Ledger::open(&dir.path().join("roomy.json"), 100.0, 1e-5).unwrap();
        assert!(matches!(
            roomy.charge(3, 1, None, 16),
            Err(LedgerError::Refused(PrivacyRefusal::OverBudget { .. }))
        ));
        assert_eq!(Ledger::open(&path, 4.5, 1e-5).unwrap().charges().len(), 3);
        // A truncated file is refused with its path, not read as empty.
        let text = std::fs::read(&path).unwrap();
        std::fs::write(&path, &text[..text.len() / 2]).unwrap();
        match Ledger::open(&path, 4.5, 1e-5) {
            Err(LedgerError::Corrupt { path: p, .. }) => assert_eq!(p, path),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            Ledger::open(&path, 0.0, 1e-5),
            Err(LedgerError::BadBudget { .. })
        ));
    }

    /// An encrypted training is charged one mechanism per epoch, all at once and before any
    /// example is shared, in the same ledger as federated rounds: job 1's federated round 1 and
    /// encrypted training 1 are different charges (the two kinds number their jobs apart), a
    /// training charged before is not charged again, one that would pass the budget is refused
    /// whole, and one without DP-SGD is refused.
    #[test]
    fn an_encrypted_training_is_charged_per_epoch_beside_federated_rounds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.json");
        let expect = |rounds| super::super::accountant::spent(1.0, 2.0, rounds, 1e-5).epsilon;
        let mut ledger = Ledger::open(&path, 4.5, 1e-5).unwrap();
        ledger.charge(1, 1, Some(&dp(2.0)), 16).unwrap();
        let three = ledger.charge_training(1, 2, Some(&dp(2.0)), 16).unwrap();
        assert!((three - expect(3)).abs() < 1e-9, "{three}");
        assert_eq!(
            ledger.charge_training(1, 2, Some(&dp(2.0)), 16).unwrap(),
            three
        );
        // Two more epochs would pass 4.5 (4.75 after one): refused, none of them written.
        assert!(matches!(
            ledger.charge_training(2, 2, Some(&dp(2.0)), 16),
            Err(LedgerError::Refused(PrivacyRefusal::OverBudget { .. }))
        ));
        assert!(matches!(
            ledger.charge_training(3, 1, None, 16),
            Err(LedgerError::Refused(PrivacyRefusal::OverBudget { .. }))
        ));
        let reopened = Ledger::open(&path, 4.5, 1e-5).unwrap();
        assert_eq!(reopened.charges().len(), 3);
        assert_eq!(reopened.charges().iter().filter(|c| c.encrypted).count(), 2);
    }

    /// Two processes keep one ledger (`serve` and `share-data`): each charge reads the file
    /// under its lock first, so neither writes over the other's charges.
    #[test]
    fn two_holders_of_one_ledger_see_each_others_charges() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.json");
        let mut serve = Ledger::open(&path, 100.0, 1e-5).unwrap();
        let mut share = Ledger::open(&path, 100.0, 1e-5).unwrap();
        serve.charge(1, 1, Some(&dp(2.0)), 16).unwrap();
        share.charge_training(7, 2, Some(&dp(2.0)), 16).unwrap();
        serve.charge(1, 2, Some(&dp(2.0)), 16).unwrap();
        let book = Ledger::open(&path, 100.0, 1e-5).unwrap();
        assert_eq!(book.charges().len(), 4);
        let expect = super::super::accountant::spent(1.0, 2.0, 4, 1e-5).epsilon;
        assert!((book.spent() - expect).abs() < 1e-9);
    }
}
