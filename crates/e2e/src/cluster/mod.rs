//! Cluster backends: k3s in a container (testcontainers) and an existing cluster from $KUBECONFIG; both install with the real helm.
