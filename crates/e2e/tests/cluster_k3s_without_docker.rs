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
        Err(BackendError::Unavailable {
            backend: "k3s",
            reason,
        }) => assert_eq!(
            reason,
            format!(
                "no Docker daemon at unix://{} (connect: No such file or directory); use --backend process",
                socket.display()
            )
        ),
        Err(other) => panic!("expected the k3s backend to be unavailable, got: {other}"),
        Ok(_) => panic!("a k3s cluster started without a Docker daemon"),
    }
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
}
