//! `pods/{name}/portforward` over WebSocket, as the kubelet's port-forward handler serves it
//! (`pkg/kubelet/cri/streaming/portforward/websocket.go`) behind the API server.
//!
//! Protocol `v4.channel.k8s.io` (binary; also the empty protocol): every message carries a
//! one-byte channel prefix. The i-th port of `?ports=a,b` uses data channel `2*i` and error
//! channel `2*i+1`; the server first sends, on both channels, the port number as two
//! little-endian bytes. Then bytes flow both ways on the data channel, and a failure (no
//! target registered, connection refused) is reported as text on the error channel. The
//! server closes the WebSocket once every port's pod side is done; when the client closes it,
//! the connections to the targets are shut down for writing.
//!
//! Targets come from [`Store::set_port_target`](super::Store::set_port_target) instead of the
//! pod's network namespace. Clients that offer only other protocols (kubectl's
//! `SPDY/3.1+portforward.k8s.io` tunnelling) get 403, which is what the real server's
//! WebSocket handshake answers for an unsupported protocol; plain SPDY upgrades get 400.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::http::{Body, ServerState, error_response, full, shutdown_signal};
use super::resources::ResourceKey;
use super::status::ApiError;
use super::store::Store;

/// The subprotocols served, in order of preference.
const PROTOCOLS: &[&str] = &["v4.channel.k8s.io"];

fn header_str(req: &Request<Incoming>, name: header::HeaderName) -> Option<&str> {
    req.headers().get(name).and_then(|h| h.to_str().ok())
}

/// Picks the protocol: the first offered one we serve; `""` when none is offered.
fn negotiate(req: &Request<Incoming>) -> Result<&'static str, String> {
    let offered: Vec<String> = req
        .headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    if offered.is_empty() {
        return Ok("");
    }
    offered
        .iter()
        .find_map(|o| PROTOCOLS.iter().find(|p| **p == o.as_str()).copied())
        .ok_or_else(|| {
            format!("requested protocol(s) are not supported: {offered:?}; supports {PROTOCOLS:?}")
        })
}

pub async fn handle(
    req: Request<Incoming>,
    state: &Arc<ServerState>,
    ns: &str,
    pod: &str,
) -> Response<Body> {
    if state
        .store
        .get(&ResourceKey::pods(), Some(ns), pod)
        .is_none()
    {
        return error_response(&ApiError::not_found(&ResourceKey::pods(), pod));
    }
    let upgrade = header_str(&req, header::UPGRADE).unwrap_or("");
    if upgrade.is_empty() {
        return error_response(&ApiError::bad_request("Upgrade request required"));
    }
    if !upgrade.eq_ignore_ascii_case("websocket") {
        return error_response(&ApiError::bad_request(format!(
            "kubesim: unsupported upgrade {upgrade:?}; only WebSocket ({}) port-forwarding is simulated",
            PROTOCOLS.join(", ")
        )));
    }
    let Some(key) = header_str(&req, header::SEC_WEBSOCKET_KEY).map(String::from) else {
        return error_response(&ApiError::bad_request("missing Sec-WebSocket-Key"));
    };
    let protocol = match negotiate(&req) {
        Ok(p) => p,
        Err(msg) => {
            let mut r = Response::new(full(msg));
            *r.status_mut() = StatusCode::FORBIDDEN;
            return r;
        }
    };
    let ports: Result<Vec<u16>, _> =
        url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
            .filter(|(k, _)| k == "ports")
            .flat_map(|(_, v)| {
                v.split(',')
                    .map(|p| p.trim().parse::<u16>())
                    .collect::<Vec<_>>()
            })
            .collect();
    let ports = match ports {
        Ok(p) if !p.is_empty() => p,
        _ => return error_response(&ApiError::bad_request("invalid or missing ports parameter")),
    };
    let store = state.store.clone();
    let shutdown = state.shutdown.clone();
    let (ns, pod) = (ns.to_string(), pod.to_string());
    tokio::spawn(async move {
        let Ok(upgraded) = hyper::upgrade::on(req).await else {
            return;
        };
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        tokio::select! {
            _ = forward(ws, store, ns, pod, ports) => {}
            _ = shutdown_signal(shutdown) => {}
        }
    });
    let mut r = Response::new(full(Bytes::new()));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&derive_accept_key(key.as_bytes())).expect("header value"),
    );
    if !protocol.is_empty() {
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(protocol),
        );
    }
    r
}

/// What the per-port tasks tell the WebSocket loop.
enum Out {
    Frame(Vec<u8>),
    PodSideDone,
}

fn frame(ch: u8, data: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(data.len() + 1);
    f.push(ch);
    f.extend_from_slice(data);
    f
}

async fn forward<S>(ws: WebSocketStream<S>, store: Store, ns: String, pod: String, ports: Vec<u16>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut sink, mut stream) = ws.split();
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Out>();
    let mut writers: Vec<Option<mpsc::UnboundedSender<Bytes>>> = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let (data_ch, err_ch) = (2 * i as u8, 2 * i as u8 + 1);
        for ch in [data_ch, err_ch] {
            if sink
                .send(Message::binary(frame(ch, &port.to_le_bytes())))
                .await
                .is_err()
            {
                return;
            }
        }
        let conn = match store.port_target(&ns, &pod, *port) {
            None => Err(format!(
                "error forwarding port {port} to pod {pod}: failed to connect to localhost:{port} \
                 inside namespace: connection refused (kubesim: no target registered)"
            )),
            Some(addr) => {
                match tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr)).await {
                    Ok(Ok(s)) => Ok(s),
                    Ok(Err(e)) => Err(format!(
                        "error forwarding port {port} to pod {pod}: failed to connect to localhost:{port} \
                     inside namespace: {e}"
                    )),
                    Err(_) => Err(format!(
                        "error forwarding port {port} to pod {pod}: connect timed out"
                    )),
                }
            }
        };
        match conn {
            Err(msg) => {
                writers.push(None);
                let _ = out_tx.send(Out::Frame(frame(err_ch, msg.as_bytes())));
                let _ = out_tx.send(Out::PodSideDone);
            }
            Ok(tcp) => {
                let (mut rd, mut wr) = tcp.into_split();
                let (w_tx, mut w_rx) = mpsc::unbounded_channel::<Bytes>();
                writers.push(Some(w_tx));
                tokio::spawn(async move {
                    while let Some(b) = w_rx.recv().await {
                        if wr.write_all(&b).await.is_err() {
                            break;
                        }
                    }
                    let _ = wr.shutdown().await;
                });
                let out = out_tx.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 32 * 1024];
                    loop {
                        match rd.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                if out.send(Out::Frame(frame(data_ch, &buf[..n]))).is_err() {
                                    return;
                                }
                            }
                        }
                    }
                    let _ = out.send(Out::PodSideDone);
                });
            }
        }
    }
    drop(out_tx);
    let mut pod_sides_open = ports.len();
    let mut closing = false;
    loop {
        tokio::select! {
            msg = stream.next() => match msg {
                Some(Ok(Message::Binary(b))) if b.len() > 1 => {
                    let ch = b[0] as usize;
                    // Even channels carry data; the client's error channels carry nothing.
                    if ch.is_multiple_of(2)
                        && let Some(Some(w)) = writers.get(ch / 2)
                    {
                        let _ = w.send(b.slice(1..));
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            out = out_rx.recv(), if !closing => match out {
                Some(Out::Frame(f)) => {
                    if sink.send(Message::binary(f)).await.is_err() {
                        break;
                    }
                }
                Some(Out::PodSideDone) => {
                    pod_sides_open -= 1;
                    if pod_sides_open == 0 {
                        closing = true;
                        if sink.send(Message::Close(None)).await.is_err() {
                            break;
                        }
                    }
                }
                None => break,
            },
            // The client answers our Close with its own; do not wait for it forever.
            _ = tokio::time::sleep(Duration::from_secs(5)), if closing => break,
        }
    }
    // Dropping the writers shuts the targets' write side down.
    drop(writers);
    let _ = sink.close().await;
}
