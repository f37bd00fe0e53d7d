//! A simulated CloudNativePG operator over the Kubernetes API simulator. For a Cluster with
//! `bootstrap.recovery` it does what CNPG 1.30 does (facts: `../shared/vendor/CNPG-FACTS.md`):
//! the `CreatingInstance` event, phase `Setting up primary`, the `<cluster>-1` PVC, a
//! `<cluster>-1-full-recovery-xxxxx` job pod per attempt whose log carries PostgreSQL's lines
//! as JSON (`"logger":"postgres"`), a real restore through pgdrill's local engine
//! (barman-cloud-restore + PostgreSQL), and on success the `<cluster>-1` primary pod, the
//! `-rw` Service, the `-app` Secret and `Ready=True`. It fails as CNPG does: unrecoverable
//! after the job's retries, an unknown plugin, or (on request) never ready.

#![allow(dead_code)]

mod joblog;
mod objects;
mod reconcile;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::kubesim::{EventKind, ResourceKey, Store};

#[derive(Clone, Debug)]
pub struct OperatorOptions {
    /// Failed job pods before the Cluster is unrecoverable (Kubernetes' default is 6).
    pub backoff_limit: u32,
    /// Stay in `Setting up primary` forever.
    pub never_ready: bool,
    /// Plugins registered with the operator.
    pub known_plugins: Vec<String>,
    /// Pause before each restore attempt (to catch a drill mid-restore).
    pub restore_delay: Duration,
    /// The job pod's image cannot be pulled (`ImagePullBackOff`).
    pub image_pull_backoff: bool,
    /// Every attempt fails to reach the object store (barman-cloud exit 2).
    pub store_unreachable: bool,
}

impl Default for OperatorOptions {
    fn default() -> Self {
        Self {
            backoff_limit: 6,
            never_ready: false,
            known_plugins: vec!["barman-cloud.cloudnative-pg.io".into()],
            restore_delay: Duration::ZERO,
            image_pull_backoff: false,
            store_unreachable: false,
        }
    }
}

/// What the operator is doing for one Cluster; dropping it stops the instance.
struct Running {
    task: tokio::task::JoinHandle<()>,
    server: Arc<Mutex<Option<pgdrill::backend::local::ScratchServer>>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(mut s) = self.server.lock().unwrap().take() {
            s.teardown();
        }
    }
}

pub struct Operator {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _work: tempfile::TempDir,
}

impl Operator {
    pub fn start(store: Store, opts: OperatorOptions) -> Operator {
        let work = tempfile::tempdir().unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let work_root = work.path().to_path_buf();
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let mut events = store.subscribe();
        let thread =
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                let mut running: BTreeMap<(String, String), Running> = BTreeMap::new();
                let clusters = ResourceKey::cnpg_clusters();
                loop {
                    let ev = tokio::select! {
                        _ = &mut stopped => break,
                        ev = events.recv() => match ev {
                            Ok(ev) => ev,
                            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                            Err(_) => break,
                        },
                    };
                    if ev.res.plural != clusters.plural || ev.res.group != clusters.group {
                        continue;
                    }
                    let ns = ev.object["metadata"]["namespace"].as_str().unwrap_or("").to_string();
                    let name = ev.object["metadata"]["name"].as_str().unwrap_or("").to_string();
                    match ev.kind {
                        EventKind::Added => {
                            if ev.object["spec"]["bootstrap"]["recovery"].is_null() {
                                continue;
                            }
                            let server = Arc::new(Mutex::new(None));
                            let task = tokio::spawn(reconcile::bootstrap(
                                store.clone(),
                                opts.clone(),
                                work_root.clone(),
                                ns.clone(),
                                name.clone(),
                                server.clone(),
                            ));
                            running.insert((ns, name), Running { task, server });
                        }
                        EventKind::Deleted => {
                            // Owned objects go with the Cluster; PVCs stay, as with CNPG.
                            running.remove(&(ns.clone(), name.clone()));
                            objects::delete_owned(&store, &ns, &name);
                        }
                        _ => {}
                    }
                }
                drop(running);
            });
            });
        Operator {
            stop: Some(stop),
            thread: Some(thread),
            _work: work,
        }
    }

    /// Where scratch data directories go.
    pub fn work_root(&self) -> PathBuf {
        self._work.path().to_path_buf()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
