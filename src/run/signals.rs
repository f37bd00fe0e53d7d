//! The signals that end pgdrill, in one place: Ctrl-C (SIGINT) and SIGTERM (a CronJob's
//! deadline, `kubectl delete pod`).

use tokio::signal::unix::{SignalKind, signal};

/// Waits for the first signal that should stop pgdrill and names it. An `Err` means the
/// handler could not be installed (the caller has no way to stop gracefully).
pub async fn stop_requested() -> Result<&'static str, String> {
    let mut term = signal(SignalKind::terminate())
        .map_err(|e| format!("installing the SIGTERM handler: {e}"))?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => Ok("interrupted"),
        _ = term.recv() => Ok("terminated"),
    }
}
