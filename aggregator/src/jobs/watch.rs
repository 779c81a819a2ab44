//! A job's failure reaches every server at once: a server whose part of a job fails tells the
//! others ([`tell_peers`]), and each server watches its peers during the job ([`watch_peers`]),
//! so a server waiting on a third one does not sit out its receive timeout when the job is
//! already lost. The watch also ends the job as soon as a peer's link drops.

use std::sync::Arc;

use tessera_common::PartyId;
use tessera_common::net::{NetError, Network, Tag};
use tokio::task::JoinSet;

use tessera_mpc::MpcError;
use tessera_mpc::error::PartyError;
use tessera_mpc::session::session_prefix;

/// The tag of the message that says a job failed at its sender.
fn failed_tag(job_id: u64) -> Tag {
    Tag::new(format!("{}failed", session_prefix(job_id)))
}

/// The other servers of `peers`.
fn others<N: Network>(peers: &N) -> Vec<PartyId> {
    let me = peers.me();
    peers
        .parties()
        .iter()
        .copied()
        .filter(|p| p.is_server() && *p != me)
        .collect()
}

/// Waits until a peer reports that job `job_id` failed there, or a peer's link drops; returns
/// that as the job's error. Runs until cancelled otherwise.
pub async fn watch_peers<N: Network + 'static>(peers: Arc<N>, job_id: u64) -> MpcError {
    let mut watchers = JoinSet::new();
    for peer in others(&*peers) {
        let peers = Arc::clone(&peers);
        watchers.spawn(async move {
            let tag = failed_tag(job_id);
            loop {
                match peers.recv(peer, &tag).await {
                    Ok(reason) => {
                        break PartyError::FailedAt {
                            peer,
                            reason: String::from_utf8_lossy(&reason).into_owned(),
                        }
                        .into();
                    }
                    Err(NetError::Timeout { .. }) => continue,
                    Err(e) => break MpcError::Net(e),
                }
            }
        });
    }
    match watchers.join_next().await {
        Some(Ok(error)) => error,
        Some(Err(e)) => PartyError::Task {
            what: "peer watch",
            message: e.to_string(),
        }
        .into(),
        // No peers to watch: never report anything.
        None => std::future::pending().await,
    }
}

/// Tells the other servers that job `job_id` failed here, and why (best effort: a peer that is
/// gone is skipped).
pub async fn tell_peers<N: Network>(peers: &N, job_id: u64, reason: &str) {
    let tag = failed_tag(job_id);
    for peer in others(peers) {
        let _ = peers.send(peer, &tag, reason.as_bytes().to_vec()).await;
    }
}
