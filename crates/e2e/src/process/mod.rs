//! The process backend: a stand-in for kubelet plus the official image, running real Chroma servers from per-version Python environments.
