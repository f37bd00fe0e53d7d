//! A local TCP port that reaches a pod's port through the API server (what
//! `kubectl port-forward` does): one websocket port-forward per accepted connection.

use std::net::SocketAddr;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use tokio::net::TcpListener;

/// Forwards 127.0.0.1:<local> to `<pod>:<port>` until dropped.
#[derive(Debug)]
pub struct PortForward {
    pub local: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl PortForward {
    pub async fn start(pods: Api<Pod>, pod: String, port: u16) -> Result<Self, String> {
        // One forward up front, so a refusal (RBAC, a missing pod) is reported here by name.
        let mut probe = pods
            .portforward(&pod, &[port])
            .await
            .map_err(|e| format!("port-forward to pod {pod}:{port}: {}", super::describe(&e)))?;
        drop(probe.take_stream(port));
        probe.abort();
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("binding a local port for port-forward: {e}"))?;
        let local = listener
            .local_addr()
            .map_err(|e| format!("port-forward listener: {e}"))?;
        let task = tokio::spawn(async move {
            // Connections live in this set: aborting the accept loop ends them too.
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((mut conn, _)) = listener.accept().await {
                let (pods, pod) = (pods.clone(), pod.clone());
                connections.spawn(async move {
                    let mut forwarder = match pods.portforward(&pod, &[port]).await {
                        Ok(f) => f,
                        Err(e) => {
                            tracing::warn!("port-forward to {pod}:{port}: {e}");
                            return;
                        }
                    };
                    let Some(mut upstream) = forwarder.take_stream(port) else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut conn, &mut upstream).await;
                    drop(upstream);
                    forwarder.abort();
                });
            }
        });
        Ok(Self { local, task })
    }
}

impl Drop for PortForward {
    fn drop(&mut self) {
        self.task.abort();
    }
}
