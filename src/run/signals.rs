//! The signals that end pgdrill, in one place: SIGINT (Ctrl-C), SIGTERM (a CronJob's deadline,
//! `kubectl delete pod`), SIGHUP (a closed terminal) and SIGQUIT. Each stops the run the same
//! way: running drills are torn down and the reports say what was interrupted.

use tokio::signal::unix::{SignalKind, signal};

/// Waits for the first signal that should stop pgdrill and names it. An `Err` means a handler
/// could not be installed (the caller has no way to stop gracefully).
pub async fn stop_requested() -> Result<&'static str, String> {
    let install = |kind: SignalKind, name: &str| {
        signal(kind).map_err(|e| format!("installing the {name} handler: {e}"))
    };
    let mut int = install(SignalKind::interrupt(), "SIGINT")?;
    let mut term = install(SignalKind::terminate(), "SIGTERM")?;
    let mut hup = install(SignalKind::hangup(), "SIGHUP")?;
    let mut quit = install(SignalKind::quit(), "SIGQUIT")?;
    Ok(tokio::select! {
        _ = int.recv() => "stopped by SIGINT",
        _ = term.recv() => "terminated",
        _ = hup.recv() => "stopped by SIGHUP",
        _ = quit.recv() => "stopped by SIGQUIT",
    })
}
