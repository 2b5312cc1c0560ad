//! `--backend k3s` on a machine without a Docker daemon must fail fast with advice. Its own
//! test binary because it points `DOCKER_HOST` at a socket that does not exist, and the
//! environment is process-wide.

use std::time::{Duration, Instant};

use e2e::BackendError;
use e2e::cluster::{self, ClusterKind, ClusterOptions};

#[tokio::test]
async fn k3s_without_a_docker_daemon_fails_within_seconds_suggesting_the_process_backend() {
    let dir = tempfile::tempdir().expect("temp dir");
    let socket = dir.path().join("docker.sock");
    // SAFETY: the only test in this binary; nothing else reads the environment concurrently.
    unsafe { std::env::set_var("DOCKER_HOST", format!("unix://{}", socket.display())) };
    // start() checks the helm path exists before anything else; it is never run here.
    let helm = dir.path().join("helm");
    std::fs::write(&helm, "").expect("placeholder helm");

    let started = Instant::now();
    let result = cluster::start(ClusterKind::K3s, ClusterOptions::new(&helm)).await;
    let elapsed = started.elapsed();

    match result {
        Err(BackendError::Unreachable {
            backend: "k3s",
            source,
        }) => {
            assert_eq!(
                source.to_string(),
                format!(
                    "no Docker daemon at unix://{} (connect: No such file or directory); use --backend process",
                    socket.display()
                )
            );
            // The chain down to the refused connect stays walkable: k3s → no daemon → ping → io.
            let k3s = source
                .downcast_ref::<cluster::K3sError>()
                .expect("the k3s error is the source");
            let no_daemon = std::error::Error::source(k3s)
                .and_then(|s| s.downcast_ref::<cluster::NoDaemon>())
                .expect("then the missing daemon");
            let io = std::error::Error::source(&no_daemon.why)
                .and_then(|s| s.downcast_ref::<std::io::Error>())
                .expect("then the connect error");
            assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
        }
        Err(other) => panic!("expected the k3s backend to be unavailable, got: {other}"),
        Ok(_) => panic!("a k3s cluster started without a Docker daemon"),
    }
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
}
