//! Runs the matrix: render, deploy, check, tear down, with progress on stderr.
