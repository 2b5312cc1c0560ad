//! Per-version Chroma Python environments, made with uv and cached outside the repo.
