//! How a run learns it must stop (Ctrl-C, or SIGTERM from a CI runner cancelling) and the
//! error it ends with; shared by the backends and the local cluster, which both clean up on it.

/// Ctrl-C or SIGTERM arrived while a job ran; everything it had started was cleaned up.
#[derive(Debug)]
pub struct Interrupted(pub &'static str);

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "interrupted ({}); every server, namespace and temp dir the run had made was removed",
            self.0
        )
    }
}

impl std::error::Error for Interrupted {}

/// Resolves when the user (Ctrl-C) or a supervisor (SIGTERM, e.g. a CI runner cancelling)
/// asks the run to stop.
pub async fn interrupt() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => tokio::select! {
            _ = tokio::signal::ctrl_c() => "Ctrl-C",
            _ = term.recv() => "SIGTERM",
        },
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            "Ctrl-C"
        }
    }
}
