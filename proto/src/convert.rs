//! Conversions between the wire messages and `tessera-common`'s transport-free types, and between
//! gRPC statuses and [`ApiError`].

use tessera_common::api::{ApiError, JobStatus, RoundAnnouncement, RoundState, UploadReceipt};
use tessera_common::job::JobSettings;
use tessera_common::refusal::ServiceError;
use tonic::{Code, Status};

use crate::refusal::refusal_of;
use crate::v1;

/// A round state on the wire.
pub fn round_state_to_wire(s: RoundState) -> v1::RoundState {
    match s {
        RoundState::Idle => v1::RoundState::Unspecified,
        RoundState::Open => v1::RoundState::Open,
        RoundState::Collecting => v1::RoundState::Collecting,
        RoundState::Closed => v1::RoundState::Closed,
        RoundState::Aggregated => v1::RoundState::Aggregated,
        RoundState::Failed => v1::RoundState::Failed,
    }
}

/// A round state from the wire (unknown values read as idle).
pub fn round_state_from_wire(v: i32) -> RoundState {
    match v1::RoundState::try_from(v).unwrap_or(v1::RoundState::Unspecified) {
        v1::RoundState::Unspecified => RoundState::Idle,
        v1::RoundState::Open => RoundState::Open,
        v1::RoundState::Collecting => RoundState::Collecting,
        v1::RoundState::Closed => RoundState::Closed,
        v1::RoundState::Aggregated => RoundState::Aggregated,
        v1::RoundState::Failed => RoundState::Failed,
    }
}

/// A job status on the wire.
pub fn status_to_wire(s: &JobStatus) -> v1::JobStatus {
    v1::JobStatus {
        job_id: s.job_id,
        round: s.round,
        state: round_state_to_wire(s.state) as i32,
        contributors: s.contributors.iter().map(ToString::to_string).collect(),
        message: s.message.clone(),
        declined: s
            .declined
            .iter()
            .map(|(party, reason)| v1::Declined {
                party: party.to_string(),
                reason: reason.clone(),
            })
            .collect(),
    }
}

/// A job status from the wire.
pub fn status_from_wire(s: v1::JobStatus) -> Result<JobStatus, ApiError> {
    let contributors = s
        .contributors
        .iter()
        .map(|c| {
            c.parse()
                .map_err(|e| ApiError::BadAnswer(format!("bad contributor: {e}")))
        })
        .collect::<Result<_, _>>()?;
    let declined = s
        .declined
        .into_iter()
        .map(|d| {
            d.party
                .parse()
                .map(|p| (p, d.reason))
                .map_err(|e| ApiError::BadAnswer(format!("bad declined party: {e}")))
        })
        .collect::<Result<_, _>>()?;
    Ok(JobStatus {
        job_id: s.job_id,
        round: s.round,
        state: round_state_from_wire(s.state),
        contributors,
        message: s.message,
        declined,
    })
}

/// A round announcement on the wire.
pub fn announcement_to_wire(a: &RoundAnnouncement) -> Result<v1::RoundAnnouncement, Status> {
    Ok(v1::RoundAnnouncement {
        job_id: a.settings.job_id,
        round: a.round,
        state: round_state_to_wire(a.state) as i32,
        settings_json: serde_json::to_string(&a.settings)
            .map_err(|e| Status::internal(e.to_string()))?,
        num_params: a.settings.num_params as u64,
        deadline_unix_ms: a.deadline_unix_ms,
        job_done: a.job_done,
    })
}

/// A round announcement from the wire (the settings are re-validated).
pub fn announcement_from_wire(a: v1::RoundAnnouncement) -> Result<RoundAnnouncement, ApiError> {
    let settings: JobSettings = serde_json::from_str(&a.settings_json)
        .map_err(|e| ApiError::BadAnswer(format!("bad job settings: {e}")))?;
    settings
        .validate()
        .map_err(|e| ApiError::BadAnswer(format!("unusable job settings: {e}")))?;
    Ok(RoundAnnouncement {
        settings,
        round: a.round,
        state: round_state_from_wire(a.state),
        deadline_unix_ms: a.deadline_unix_ms,
        job_done: a.job_done,
    })
}

/// An upload receipt from the wire.
pub fn receipt_from_wire(r: v1::UploadReceipt) -> UploadReceipt {
    UploadReceipt {
        job_id: r.job_id,
        round: r.round,
        chunks_accepted: r.chunks_accepted,
    }
}

/// An upload receipt on the wire.
pub fn receipt_to_wire(r: &UploadReceipt) -> v1::UploadReceipt {
    v1::UploadReceipt {
        job_id: r.job_id,
        round: r.round,
        chunks_accepted: r.chunks_accepted,
    }
}

/// How a client should treat a gRPC status: a refusal that names its variant
/// ([`crate::refusal::REFUSAL_KEY`]) is [`ApiError::Rejected`] with [`ServiceError::Remote`],
/// whatever its code.
pub fn api_error_from_status(s: Status) -> ApiError {
    let text = format!("{:?}: {}", s.code(), s.message());
    match (refusal_of::<ServiceError>(&s), s.code()) {
        (Some(refusal), _) => ApiError::Rejected(refusal),
        (None, Code::NotFound) => ApiError::NotReady(text),
        (
            None,
            Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Cancelled
            | Code::Unknown
            | Code::Aborted
            | Code::ResourceExhausted,
        ) => ApiError::Unavailable(text),
        (None, code) => ApiError::Front {
            code: format!("{code:?}"),
            message: s.message().to_string(),
        },
    }
}
