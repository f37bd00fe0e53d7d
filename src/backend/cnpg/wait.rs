//! Watching the recovery Cluster until it is `Ready`, CNPG gives up, a full-recovery attempt
//! fails decisively, or the deadline passes.

use std::ops::ControlFlow;
use std::time::Duration;

use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, DynamicObject, WatchParams};
use kube::core::WatchEvent;

use super::CnpgRequest;
use super::diagnose::{self, Attempts};
use super::observe::{pod_log, recovery_pods, warnings};
use super::status::{self, Progress};
use crate::backend::{Failure, Stage, error};
use crate::k8s::{DrillObjects, clusters, describe};

/// `Some` when the wait is over: Ready, or the failure.
type Done = Option<Result<(), Failure>>;

/// API failures in a row after which the wait is an error rather than a wait for the deadline:
/// each round is a watch that cannot be opened and a read of the Cluster two seconds later,
/// so about ten seconds of an API server that serves nothing.
const API_FAILURES: u32 = 12;

/// A phase worth a progress line: set (empty before the operator acts) and not the last one.
fn is_news(last: &(String, String), phase: &str, reason: &str) -> bool {
    !phase.is_empty() && (last.0 != phase || last.1 != reason)
}

/// Waits for the Cluster: Ready, or the reason it never will be, within the deadline.
pub(super) async fn wait_ready(
    req: &CnpgRequest,
    objects: &DrillObjects,
    rv: String,
) -> Result<(), Failure> {
    let mut last = (String::new(), String::new());
    let watch = Watcher::new(req, objects, rv, &mut last).run();
    match tokio::time::timeout(req.deadline, watch).await {
        Ok(result) => result,
        Err(_) => {
            let events = warnings(&req.client, &objects.namespace, &objects.cluster).await;
            Err(diagnose::timed_out(req.deadline, &last, &events))
        }
    }
}

struct Watcher<'w> {
    req: &'w CnpgRequest,
    objects: &'w DrillObjects,
    api: Api<DynamicObject>,
    rv: String,
    /// The last (phase, reason) reported.
    last: &'w mut (String, String),
    /// Failed full-recovery pods whose log was read already.
    seen_failed: Vec<String>,
    tick: tokio::time::Interval,
    /// Why the last watch ended, when it broke rather than ended.
    broken: Option<kube::Error>,
    /// API failures (opening a watch, reading the Cluster) since a watch last opened.
    failures: u32,
}

impl<'w> Watcher<'w> {
    fn new(
        req: &'w CnpgRequest,
        objects: &'w DrillObjects,
        rv: String,
        last: &'w mut (String, String),
    ) -> Self {
        let api = Api::namespaced_with(req.client.clone(), &objects.namespace, &clusters());
        Watcher {
            req,
            objects,
            api,
            rv,
            last,
            seen_failed: Vec::new(),
            tick: tokio::time::interval(Duration::from_secs(2)),
            broken: None,
            failures: 0,
        }
    }

    fn name(&self) -> &'w str {
        self.objects.cluster.as_str()
    }

    async fn run(mut self) -> Result<(), Failure> {
        let wp = WatchParams::default()
            .fields(&format!("metadata.name={}", self.name()))
            .timeout(55);
        // The state right after apply, then every change.
        if let Some(done) = self.resync().await {
            return done;
        }
        loop {
            let (ns, name) = (&self.objects.namespace, self.name());
            match self.api.watch(&wp, &self.rv).await {
                Ok(s) => {
                    self.failures = 0;
                    if let Some(done) = self.follow(s.boxed()).await {
                        return done;
                    }
                    // The server ended the watch (timeoutSeconds): watch on from here.
                    let Some(e) = self.broken.take() else {
                        continue;
                    };
                    tracing::debug!("watch of Cluster {ns}/{name} broke: {}", describe(&e));
                }
                Err(e) => {
                    tracing::warn!("watching Cluster {ns}/{name}: {}", describe(&e));
                    if let Some(done) = self.api_failed(&e) {
                        return done;
                    }
                }
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
            if let Some(done) = self.resync().await {
                return done;
            }
        }
    }

    /// Reads the Cluster to watch on from where it is now. The API failing
    /// [`API_FAILURES`] times in a row ends the wait: pgdrill cannot tell how recovery went.
    async fn resync(&mut self) -> Done {
        match self.api.get(self.name()).await {
            Ok(obj) => {
                if let Some(rv) = obj.metadata.resource_version.clone() {
                    self.rv = rv;
                }
                self.evaluate(&obj).await
            }
            Err(e) => self.api_failed(&e),
        }
    }

    /// Counts a failed request; the wait is over (an error) at [`API_FAILURES`] in a row.
    fn api_failed(&mut self, e: &kube::Error) -> Done {
        self.failures += 1;
        let (ns, name) = (&self.objects.namespace, self.name());
        (self.failures >= API_FAILURES).then(|| {
            Err(error(
                Stage::Recover,
                format!(
                    "cannot follow Cluster {ns}/{name}: {} Kubernetes API failures in a row, \
                     the last: {}",
                    self.failures,
                    describe(e)
                ),
            ))
        })
    }

    /// Follows one watch until the server ends it (`None`) or the wait is over.
    async fn follow(
        &mut self,
        mut stream: BoxStream<'static, kube::Result<WatchEvent<DynamicObject>>>,
    ) -> Done {
        loop {
            let flow = tokio::select! {
                ev = stream.try_next() => self.on_event(ev).await,
                _ = self.tick.tick() => self.on_tick().await,
            };
            if let ControlFlow::Break(done) = flow {
                return done;
            }
        }
    }

    /// `Break(None)` ends this watch (start another), `Break(Some)` the wait.
    async fn on_event(
        &mut self,
        ev: kube::Result<Option<WatchEvent<DynamicObject>>>,
    ) -> ControlFlow<Done> {
        match ev {
            Ok(Some(WatchEvent::Added(o) | WatchEvent::Modified(o))) => {
                if let Some(rv) = o.metadata.resource_version.clone() {
                    self.rv = rv;
                }
                match self.evaluate(&o).await {
                    Some(done) => ControlFlow::Break(Some(done)),
                    None => ControlFlow::Continue(()),
                }
            }
            Ok(Some(WatchEvent::Bookmark(b))) => {
                self.rv = b.metadata.resource_version;
                ControlFlow::Continue(())
            }
            Ok(Some(WatchEvent::Deleted(_))) => {
                let (ns, name) = (&self.objects.namespace, self.name());
                ControlFlow::Break(Some(Err(error(
                    Stage::Recover,
                    format!("Cluster {ns}/{name} was deleted by someone else"),
                ))))
            }
            Ok(Some(WatchEvent::Error(e))) => {
                // 410 Gone and the like: start again from the current state.
                tracing::debug!("watch error {}: {}", e.code, e.message);
                if let Ok(obj) = self.api.get(self.name()).await {
                    self.rv = obj.metadata.resource_version.clone().unwrap_or_default();
                    if let Some(done) = self.evaluate(&obj).await {
                        return ControlFlow::Break(Some(done));
                    }
                }
                ControlFlow::Break(None)
            }
            // The server ended the watch (timeoutSeconds).
            Ok(None) => ControlFlow::Break(None),
            // The connection dropped: read the Cluster again, then watch on.
            Err(e) => {
                self.broken = Some(e);
                ControlFlow::Break(None)
            }
        }
    }

    /// CNPG retries a broken restore several times; the first decisive failure is the answer.
    /// A pod that cannot start is an error.
    async fn on_tick(&mut self) -> ControlFlow<Done> {
        match self.failed_pods().await {
            Some(f) => ControlFlow::Break(Some(Err(f))),
            None => ControlFlow::Continue(()),
        }
    }

    /// What one look at the Cluster says: done (Ready or a failure), or keep waiting.
    async fn evaluate(&mut self, cluster: &DynamicObject) -> Done {
        match status::progress(&cluster.data["status"]) {
            Progress::Ready => Some(Ok(())),
            Progress::Waiting { phase, reason } => {
                if is_news(self.last, &phase, &reason) {
                    (self.req.progress)(&phase, &reason);
                    *self.last = (phase, reason);
                }
                None
            }
            Progress::Broken { phase, reason } => Some(Err(diagnose::broken(&phase, &reason))),
            Progress::Unrecoverable { reason } => Some(Err(self.unrecoverable(&reason).await)),
        }
    }

    /// What the failed full-recovery pods say, for pods not examined yet.
    async fn failed_pods(&mut self) -> Option<Failure> {
        let (req, objects, seen) = (self.req, self.objects, &mut self.seen_failed);
        let (client, ns) = (&req.client, objects.namespace.as_str());
        let outcome = async {
            for pod in recovery_pods(client, ns, &objects.cluster).await? {
                if let Some(f) = diagnose::cannot_start(ns, &pod) {
                    return Ok(Some(f));
                }
                if pod.phase != "Failed" || seen.contains(&pod.name) {
                    continue;
                }
                seen.push(pod.name.clone());
                let log = pod_log(client, ns, &pod.name).await?;
                if let Some(f) = diagnose::decisive(&pod.name, &log) {
                    return Ok(Some(f));
                }
            }
            Ok::<_, String>(None)
        };
        outcome.await.unwrap_or_else(|e| {
            tracing::warn!("{e}");
            None
        })
    }

    /// Why CNPG gave up, from every attempt's log: the first decisive failure, else an
    /// infrastructure error (the store was unreachable), else CNPG's own reason.
    async fn unrecoverable(&self, reason: &str) -> Failure {
        let (client, ns, cluster) = (&self.req.client, &self.objects.namespace, self.name());
        let pods = match recovery_pods(client, ns, cluster).await {
            Ok(p) => p,
            Err(e) => return error(Stage::Recover, e),
        };
        let mut attempts = Attempts::default();
        for pod in &pods {
            let log = pod_log(client, ns, &pod.name).await;
            if let Some(f) = attempts.read(&pod.name, log) {
                return f;
            }
        }
        if let Some(f) = attempts.unreachable_store() {
            return f;
        }
        let events = warnings(client, ns, cluster).await;
        diagnose::gave_up(reason, &events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_progress_line_for_each_new_phase() {
        let last = ("Setting up primary".to_string(), "Creating c-1".to_string());
        let cases = [
            (
                "the same phase and reason",
                "Setting up primary",
                "Creating c-1",
                false,
            ),
            (
                "a new reason",
                "Setting up primary",
                "Waiting for c-1",
                true,
            ),
            ("a new phase", "Cluster in healthy state", "", true),
            ("no phase yet", "", "", false),
            ("no phase, a reason", "", "Creating c-1", false),
        ];
        for (name, phase, reason, expected) in cases {
            assert_eq!(is_news(&last, phase, reason), expected, "{name}");
        }
        assert!(
            is_news(&Default::default(), "Setting up primary", ""),
            "the first phase"
        );
    }
}
