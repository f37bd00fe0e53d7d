//! A Kubernetes API server simulator for integration tests.
//!
//! [`KubeSim::start`] serves plain HTTP/1.1 on a random port of 127.0.0.1 from its own thread
//! and multi-threaded tokio runtime (so it works from sync tests and from `#[tokio::test]`
//! alike), and writes a kubeconfig (cluster and context `kubesim`, namespace `default`, a
//! bearer token) that the real kube-rs client and real kubectl use unchanged. (kubectl sends
//! no credentials over plain http; such requests are served as `system:anonymous` unless
//! [`KubeSim::require_token`] is on, see [`http::authenticate`].) What it
//! mimics, module by module:
//!
//! * [`resources`]: the served types (core namespaces, secrets, configmaps, services, pods,
//!   PVCs, events; CNPG `clusters` and Barman Cloud `objectstores`, each removable to mimic a
//!   missing CRD) and the discovery documents.
//! * [`store`], [`registry`], [`strategy`]: objects, resourceVersions, watch history,
//!   server-set metadata, finalizers, namespace termination, per-type defaulting.
//! * [`http`] and [`handlers`]: routing, authentication, verbs and their Status errors.
//! * [`apply`]: merge patch, JSON patch, server-side apply.
//! * [`faults`]: injected error statuses and watches cut mid-stream.
//! * [`watch`], [`logs`], [`portforward`]: the streaming endpoints. [`table`]: kubectl's
//!   server-side printing.
//!
//! Dropping the [`KubeSim`] ends open streams and stops the server.

#![allow(dead_code)]

pub mod apply;
pub mod faults;
pub mod handlers;
pub mod http;
pub mod logs;
pub mod portforward;
pub mod registry;
pub mod resources;
pub mod selectors;
pub mod status;
pub mod store;
pub mod strategy;
pub mod table;
pub mod watch;

use std::hash::{BuildHasher, RandomState};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::json;

// Re-exported for test files; not every test binary uses all of them.
#[allow(unused_imports)]
pub use faults::Fault;
#[allow(unused_imports)]
pub use resources::ResourceKey;
#[allow(unused_imports)]
pub use status::ApiError;
#[allow(unused_imports)]
pub use store::{EventKind, RequestRecord, Store, StoreEvent};

/// What the simulated cluster has installed.
#[derive(Clone, Debug)]
pub struct SimOptions {
    /// Serve `postgresql.cnpg.io/v1` (CloudNativePG's CRDs).
    pub cnpg_crds_installed: bool,
    /// Serve `barmancloud.cnpg.io/v1` (the Barman Cloud plugin's ObjectStore CRD).
    pub barman_plugin_crd_installed: bool,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            cnpg_crds_installed: true,
            barman_plugin_crd_installed: true,
        }
    }
}

/// A running simulator. Dropping it shuts the server down.
pub struct KubeSim {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// A kubeconfig file pointing at the simulator (inside a temporary directory it owns).
    pub kubeconfig: PathBuf,
    pub store: Store,
    /// The bearer token the server accepts.
    pub token: String,
    dir: tempfile::TempDir,
    require_token: Arc<AtomicBool>,
    faults: faults::Faults,
    shutdown: tokio::sync::watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn kubeconfig_yaml(url: &str, token: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: kubesim
  cluster:
    server: {url}
users:
- name: kubesim
  user:
    token: {token}
contexts:
- name: kubesim
  context:
    cluster: kubesim
    user: kubesim
    namespace: default
current-context: kubesim
preferences: {{}}
"
    )
}

impl KubeSim {
    /// Starts a simulator with namespaces `default` and `kube-system`. Needs no runtime.
    pub fn start(opts: SimOptions) -> KubeSim {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let addr = listener.local_addr().expect("local addr").to_string();
        let url = format!("http://{addr}");
        let random = RandomState::new();
        let token = format!(
            "kubesim-{:016x}{:016x}",
            random.hash_one(1u8),
            random.hash_one(2u8)
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, kubeconfig_yaml(&url, &token)).expect("write kubeconfig");

        let store = Store::new();
        for ns in ["default", "kube-system"] {
            store
                .create(
                    &ResourceKey::namespaces(),
                    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
                )
                .expect("seed namespace");
        }

        let require_token = Arc::new(AtomicBool::new(false));
        let faults = faults::Faults::default();
        let (shutdown, shutdown_rx) = tokio::sync::watch::channel(false);
        let state = Arc::new(http::ServerState {
            store: store.clone(),
            opts,
            token: token.clone(),
            addr,
            shutdown: shutdown_rx,
            require_token: require_token.clone(),
            faults: faults.clone(),
        });
        let thread = std::thread::Builder::new()
            .name("kubesim".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("kubesim-worker")
                    .enable_all()
                    .build()
                    .expect("kubesim runtime");
                rt.block_on(http::serve(listener, state));
                rt.shutdown_timeout(Duration::from_secs(1));
            })
            .expect("spawn kubesim thread");
        KubeSim {
            url,
            kubeconfig,
            store,
            token,
            dir,
            require_token,
            faults,
            shutdown,
            thread: Some(thread),
        }
    }

    /// Refuse (401) requests that carry no credentials. Off by default so that kubectl,
    /// which never sends a kubeconfig's token over plain http, works; a wrong token is
    /// refused either way.
    pub fn require_token(&self, on: bool) {
        self.require_token.store(on, Ordering::Relaxed);
    }

    /// The next `n` requests with RBAC verb `verb` on `resource` (a plural) get `fault`;
    /// `usize::MAX` for every one until [`KubeSim::clear_faults`]. See [`faults`].
    pub fn inject(&self, verb: &str, resource: &str, n: usize, fault: Fault) {
        self.faults.add(verb, resource, n, fault);
    }

    /// Serves every request normally again.
    pub fn clear_faults(&self) {
        self.faults.clear();
    }

    /// The temporary directory the simulator owns (kubeconfig, kubectl cache).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A kube-rs client built from the kubeconfig file, as a program given `KUBECONFIG`
    /// would build it. Installs rustls' ring provider if none is installed yet.
    pub async fn client(&self) -> kube::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let kc = kube::config::Kubeconfig::read_from(&self.kubeconfig).expect("read kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .expect("kube config");
        kube::Client::try_from(config).expect("kube client")
    }

    /// `kubectl --kubeconfig K --cache-dir D` (discovery cache inside the temporary dir).
    pub fn kubectl(&self) -> Command {
        let mut c = Command::new("kubectl");
        c.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir.path().join("kube-cache"))
            .env_remove("KUBECONFIG");
        c
    }

    /// Stops the server now (also done on drop): open watches and log streams end.
    pub fn shutdown(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for KubeSim {
    fn drop(&mut self) {
        self.shutdown();
    }
}
