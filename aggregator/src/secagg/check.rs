//! A job's robust-aggregation check of one upload as the service runs it (see
//! [`super::robust`]): the leader runs its part once every helper staged its seed, each helper as
//! soon as it staged its own. The three meet in an MPC session named by the job, round and
//! forward ([`secagg_session_id`]); only the verdict is opened, and the leader's decides.

use std::sync::Arc;
use std::time::Duration;

use tessera_common::job::JobSettings;
use tessera_common::net::Network;
use tessera_common::rule::AggregationRule;

use super::robust::{Component, check_upload};
use super::{AggregatorService, ServiceError};
use crate::mpc::Session;
use crate::mpc::session::{secagg_session_id, session_prefix};

/// How long a helper lets a check the leader dropped run on before stopping it.
pub(super) const CHECK_GRACE: Duration = Duration::from_secs(5);

/// How long an abandoned check's session is kept for messages still on their way before they
/// are dropped.
pub(super) const CHECK_LINGER: Duration = Duration::from_secs(10);

impl<N: Network + 'static> AggregatorService<N> {
    /// This server's part of the check of the upload forwarded as `seq` in `round`, from its
    /// `component` of the upload: `Ok` if the upload passes the job's rule (always under `mean`).
    pub(super) async fn run_check(
        &self,
        settings: &JobSettings,
        round: u64,
        seq: u64,
        component: Component,
    ) -> Result<(), ServiceError> {
        let AggregationRule::NormBound { bound } = settings.rule else {
            return Ok(());
        };
        let check = settings
            .norm_bound(bound)
            .map_err(|e| ServiceError::CheckFailed(e.to_string()))?;
        let id = secagg_session_id(settings.job_id, round, seq);
        let len = settings.update_len();
        let verdict = async {
            let session = Session::with_id(Arc::clone(&self.network), id).await?;
            check_upload(&session, &component, len, &check).await
        }
        .await;
        self.network.forget(&session_prefix(id));
        match verdict {
            Ok(true) => Ok(()),
            Ok(false) => Err(ServiceError::RuleRejected {
                rule: settings.rule.to_string(),
            }),
            Err(e) => Err(ServiceError::CheckFailed(e.to_string())),
        }
    }

    /// Drops, after [`CHECK_LINGER`], whatever of an abandoned check's session arrives late.
    pub(super) fn forget_check_later(self: &Arc<Self>, job: u64, round: u64, seq: u64) {
        let service = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep(CHECK_LINGER).await;
            service
                .network
                .forget(&session_prefix(secagg_session_id(job, round, seq)));
        });
    }
}
