//! The Prometheus endpoint of a server (`aggregator serve --metrics-addr HOST:PORT`).
//!
//! `GET /metrics` answers in the Prometheus text exposition format (version 0.0.4): the
//! aggregation service's counters (rounds by outcome, uploads accepted and refused by reason,
//! bytes of accepted uploads), the MPC jobs by kind and outcome, and gauges read at scrape time:
//! bytes staged by uploads in flight, uploads kept for a close, jobs held, bytes held by MPC
//! jobs' inputs and outputs, and the traffic with the other servers. Before the server has
//! linked with its peers the services do not exist yet and only `tessera_up 0` is served.
//!
//! The endpoint serves counts only, nothing about any data owner's data; bind it to an address
//! only operators reach.

use std::fmt::Write as _;
use std::sync::Arc;

use tessera_common::net::Network;
use tokio::net::TcpListener;

use crate::jobs::MpcService;
use tessera_secagg::AggregatorService;

/// The `Content-Type` of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Writes one metric family: its help and type lines and its samples (`labels` is the text
/// inside the braces, empty for none).
fn family(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    samples: impl IntoIterator<Item = (String, u64)>,
) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}

fn one(value: u64) -> Vec<(String, u64)> {
    vec![(String::new(), value)]
}

/// The exposition of a server's services (either may not be up yet).
pub fn render<N: Network + 'static>(
    secagg: Option<&AggregatorService<N>>,
    mpc: Option<&MpcService<N>>,
) -> String {
    let mut out = String::new();
    let up = u64::from(secagg.is_some() && mpc.is_some());
    family(
        &mut out,
        "tessera_up",
        "gauge",
        "1 once the server is linked with its peers and serving.",
        one(up),
    );
    if let Some(s) = secagg {
        let c = s.counts();
        family(
            &mut out,
            "tessera_rounds_opened_total",
            "counter",
            "Federated rounds opened (leader).",
            one(c.rounds_opened),
        );
        family(
            &mut out,
            "tessera_rounds_total",
            "counter",
            "Federated rounds closed, by outcome (leader).",
            [
                ("outcome=\"aggregated\"".to_string(), c.rounds_aggregated),
                ("outcome=\"failed\"".to_string(), c.rounds_failed),
            ],
        );
        family(
            &mut out,
            "tessera_uploads_accepted_total",
            "counter",
            "Uploads committed to a round (leader).",
            one(c.uploads_accepted),
        );
        family(
            &mut out,
            "tessera_upload_bytes_total",
            "counter",
            "Bytes of the sealed envelopes of committed uploads (leader).",
            one(c.upload_bytes),
        );
        family(
            &mut out,
            "tessera_uploads_rejected_total",
            "counter",
            "Uploads refused, by reason (leader).",
            c.uploads_rejected
                .iter()
                .map(|(reason, n)| (format!("reason=\"{reason}\""), *n)),
        );
        family(
            &mut out,
            "tessera_upload_staged_bytes",
            "gauge",
            "Bytes staged by uploads in flight now.",
            one(s.staged_bytes() as u64),
        );
        family(
            &mut out,
            "tessera_uploads_kept",
            "gauge",
            "Uploads kept for a round's close (clip, trimmed-mean, median) now.",
            one(s.kept_uploads() as u64),
        );
        family(
            &mut out,
            "tessera_jobs_held",
            "gauge",
            "Federated jobs held now.",
            one(s.jobs_held() as u64),
        );
        let net = s.peer_stats();
        family(
            &mut out,
            "tessera_peer_bytes_total",
            "counter",
            "Payload bytes exchanged with the other servers, by direction.",
            [
                ("direction=\"sent\"".to_string(), net.bytes_sent),
                ("direction=\"received\"".to_string(), net.bytes_received),
            ],
        );
    }
    if let Some(m) = mpc {
        family(
            &mut out,
            "tessera_mpc_jobs_total",
            "counter",
            "MPC jobs, by kind and outcome (launched, done, failed, aborted).",
            m.job_counts()
                .iter()
                .map(|((kind, outcome), n)| (format!("kind=\"{kind}\",outcome=\"{outcome}\""), *n)),
        );
        family(
            &mut out,
            "tessera_mpc_held_bytes",
            "gauge",
            "Bytes held in MPC jobs' partial inputs and unfetched outputs now.",
            one(m.held_bytes() as u64),
        );
    }
    out
}

/// Serves `GET /metrics` on `listener` with [`render`] of what `exposition` returns, until the
/// process ends.
pub async fn serve_metrics(
    listener: TcpListener,
    exposition: Arc<dyn Fn() -> String + Send + Sync>,
) -> std::io::Result<()> {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let exposition = Arc::clone(&exposition);
            async move {
                (
                    [(axum::http::header::CONTENT_TYPE, CONTENT_TYPE)],
                    exposition(),
                )
            }
        }),
    );
    axum::serve(listener, app).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_common::net::memory::MemoryNetwork;

    #[test]
    fn a_server_not_yet_linked_says_it_is_down_and_nothing_else() {
        let text = render::<MemoryNetwork>(None, None);
        assert!(
            text.contains("# TYPE tessera_up gauge\ntessera_up 0\n"),
            "{text}"
        );
        assert!(!text.contains("tessera_rounds_total"), "{text}");
    }
}
