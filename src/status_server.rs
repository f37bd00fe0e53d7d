//! The scheduler's HTTP endpoints: `/healthz` (the scheduling loop is alive) and `/metrics`
//! (Prometheus text: each scenario's last run, as the textfile sink writes it, plus the next
//! fire time of every scenario).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use crate::report::RunReport;

/// What the endpoints show, updated by the scheduler.
#[derive(Clone, Debug, Default)]
pub struct SchedulerState {
    inner: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    last: BTreeMap<String, RunReport>,
    next: BTreeMap<String, jiff::Timestamp>,
}

impl SchedulerState {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn record(&self, reports: &[RunReport]) {
        let mut s = self.lock();
        for r in reports {
            s.last.insert(r.scenario.clone(), r.clone());
        }
    }

    pub fn set_next(&self, scenario: &str, at: jiff::Timestamp) {
        self.lock().next.insert(scenario.to_string(), at);
    }

    /// The `/metrics` body.
    pub fn metrics(&self, now: jiff::Timestamp) -> String {
        let s = self.lock();
        let reports: Vec<RunReport> = s.last.values().cloned().collect();
        let mut out = crate::publish::metrics::render(&reports, now);
        out.push_str("# HELP pgdrill_scheduler_next_run_timestamp_seconds When the scenario runs next (Unix time).\n");
        out.push_str("# TYPE pgdrill_scheduler_next_run_timestamp_seconds gauge\n");
        for (scenario, at) in &s.next {
            let name = scenario.replace('\\', "\\\\").replace('"', "\\\"");
            out.push_str(&format!(
                "pgdrill_scheduler_next_run_timestamp_seconds{{scenario=\"{name}\"}} {}\n",
                at.as_second()
            ));
        }
        out
    }
}

fn respond(state: &SchedulerState, path: &str) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match path {
        "/healthz" => (StatusCode::OK, "text/plain", "ok\n".to_string()),
        "/metrics" => (
            StatusCode::OK,
            "text/plain; version=0.0.4",
            state.metrics(jiff::Timestamp::now()),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found\n".to_string(),
        ),
    };
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("a valid response")
}

/// Serves until the task is aborted; returns the bound address.
pub async fn serve(
    addr: SocketAddr,
    state: SchedulerState,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), String> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("--listen {addr}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let state = state.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                        let response = respond(&state, req.uri().path());
                        async move { Ok::<_, Infallible>(response) }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok((bound, task))
}
