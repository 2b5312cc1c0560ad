//! Results: the version × check matrix on stdout, JSON and JUnit for CI.
