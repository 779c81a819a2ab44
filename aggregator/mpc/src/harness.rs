//! Run one async program as every server in one process, over the in-memory network (the library
//! equivalent of TF Encrypted's `LocalConfig`), optionally with outside parties (data owners,
//! the model owner) that provide inputs and receive outputs.

use crate::error::PartyError;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tessera_common::PartyId;
use tessera_common::net::memory::MemoryNetwork;
use tessera_common::net::{DEFAULT_RECV_TIMEOUT, Network};

use super::{MpcError, Session};

/// Runs `program` as each of `servers` servers concurrently; returns what each returned, in
/// server order.
pub async fn run_local<T, F, Fut>(servers: usize, program: F) -> Result<Vec<T>, MpcError>
where
    T: Send + 'static,
    F: Fn(Arc<Session<MemoryNetwork>>) -> Fut,
    Fut: Future<Output = Result<T, MpcError>> + Send + 'static,
{
    let none = |_: MemoryNetwork| async { Ok(()) };
    Ok(run_local_with(servers, &[], program, none).await?.0)
}

/// Runs `program` as each server and `outsider` as each of the outside parties `outsiders`
/// (each with its own network endpoint); returns the servers' results in server order and the
/// outside parties' results in the order given.
pub async fn run_local_with<T, U, F, Fut, G, Gut>(
    servers: usize,
    outsiders: &[PartyId],
    program: F,
    outsider: G,
) -> Result<(Vec<T>, Vec<U>), MpcError>
where
    T: Send + 'static,
    U: Send + 'static,
    F: Fn(Arc<Session<MemoryNetwork>>) -> Fut,
    Fut: Future<Output = Result<T, MpcError>> + Send + 'static,
    G: Fn(MemoryNetwork) -> Gut,
    Gut: Future<Output = Result<U, MpcError>> + Send + 'static,
{
    run_local_patient(servers, outsiders, DEFAULT_RECV_TIMEOUT, program, outsider).await
}

/// [`run_local_with`] where every receive waits up to `timeout` (a long job's outside party
/// waits for a result as long as the computation takes, e.g. an epoch of training).
pub async fn run_local_patient<T, U, F, Fut, G, Gut>(
    servers: usize,
    outsiders: &[PartyId],
    timeout: Duration,
    program: F,
    outsider: G,
) -> Result<(Vec<T>, Vec<U>), MpcError>
where
    T: Send + 'static,
    U: Send + 'static,
    F: Fn(Arc<Session<MemoryNetwork>>) -> Fut,
    Fut: Future<Output = Result<T, MpcError>> + Send + 'static,
    G: Fn(MemoryNetwork) -> Gut,
    Gut: Future<Output = Result<U, MpcError>> + Send + 'static,
{
    let mut parties: Vec<PartyId> = (0..servers as u8).map(PartyId::Server).collect();
    parties.extend_from_slice(outsiders);
    let mut nets = MemoryNetwork::cluster_with_timeout(&parties, timeout);
    let outside_nets = nets.split_off(servers);
    let outside: Vec<_> = outside_nets
        .into_iter()
        .map(|net| tokio::spawn(outsider(net)))
        .collect();
    let out = run_on(nets, program).await?;
    let mut others = Vec::new();
    for h in outside {
        others.push(h.await.map_err(|e| PartyError::Task {
            what: "outside party",
            message: e.to_string(),
        })??);
    }
    Ok((out, others))
}

/// Runs `program` as every server of `nets` (one endpoint per server, any [`Network`]: the
/// in-memory one or gRPC) concurrently; returns what each returned, in the order of `nets`.
pub async fn run_on<N, T, F, Fut>(nets: Vec<N>, program: F) -> Result<Vec<T>, MpcError>
where
    N: Network + 'static,
    T: Send + 'static,
    F: Fn(Arc<Session<N>>) -> Fut,
    Fut: Future<Output = Result<T, MpcError>> + Send + 'static,
{
    let setups: Vec<_> = nets
        .into_iter()
        .map(|net| tokio::spawn(Session::new(Arc::new(net))))
        .collect();
    let mut handles = Vec::new();
    // Every endpoint stays open until all programs are done: a server that finishes first must
    // not drop its connections while its last messages are still on their way.
    let mut sessions = Vec::new();
    for s in setups {
        let session = Arc::new(s.await.map_err(|e| PartyError::Task {
            what: "setup",
            message: e.to_string(),
        })??);
        sessions.push(Arc::clone(&session));
        handles.push(tokio::spawn(program(session)));
    }
    let mut results = Vec::new();
    for h in handles {
        results.push(h.await);
    }
    drop(sessions);
    let mut out = Vec::new();
    for r in results {
        out.push(r.map_err(|e| PartyError::Task {
            what: "party",
            message: e.to_string(),
        })??);
    }
    Ok(out)
}
