//! Run one async program as every server in one process, over the in-memory network.

use std::future::Future;
use std::sync::Arc;

use tessera_common::PartyId;
use tessera_common::net::memory::MemoryNetwork;

use super::{MpcError, Session};

/// Runs `program` as each of `servers` servers concurrently; returns what each returned, in
/// server order.
pub async fn run_local<T, F, Fut>(servers: usize, program: F) -> Result<Vec<T>, MpcError>
where
    T: Send + 'static,
    F: Fn(Arc<Session<MemoryNetwork>>) -> Fut,
    Fut: Future<Output = Result<T, MpcError>> + Send + 'static,
{
    let parties: Vec<PartyId> = (0..servers as u8).map(PartyId::Server).collect();
    let mut handles = Vec::new();
    let nets = MemoryNetwork::cluster(&parties);
    let mut sessions = Vec::new();
    let mut setups = Vec::new();
    for net in nets {
        setups.push(tokio::spawn(Session::new(Arc::new(net))));
    }
    for s in setups {
        let session = s
            .await
            .map_err(|e| MpcError::Party(format!("setup task: {e}")))??;
        sessions.push(Arc::new(session));
    }
    for session in &sessions {
        handles.push(tokio::spawn(program(Arc::clone(session))));
    }
    let mut out = Vec::new();
    for h in handles {
        out.push(
            h.await
                .map_err(|e| MpcError::Party(format!("party task: {e}")))??,
        );
    }
    Ok(out)
}
