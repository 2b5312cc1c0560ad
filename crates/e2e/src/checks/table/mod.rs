//! The checks, one descriptor per file: what each is called, where it applies, what it needs
//! prepared, whether a backend can exercise it, and its run. Adding a check is its file here
//! and its name in the list below, in the order it runs (reset last: it wipes data).

use super::{About, CheckName, Runner};
use crate::backend::Backend;

macro_rules! table {
    ($($check:ident),* $(,)?) => {
        $(mod $check;)*

        /// Every check's descriptor, in the order they run on a deployment.
        pub const ABOUT: &[About] = &[$($check::ABOUT),*];

        /// The backend half of `check`'s descriptor.
        pub(super) fn runner<B: Backend>(check: CheckName) -> Runner<B> {
            let runners = [$($check::runner::<B> as fn() -> Runner<B>),*];
            runners[check.0]()
        }

        /// The descriptor files the list names (the test compares them with the directory).
        #[cfg(test)]
        const FILES: &[&str] = &[$(stringify!($check)),*];
    };
}

table! {
    api_surface,
    tls,
    tls_proxy,
    tls_rotation,
    auth,
    cors,
    payload,
    persistence,
    chart_test,
    backup_restore,
    telemetry,
    metrics,
    faults_sigkill,
    faults_scale,
    faults_full_volume,
    faults_memory,
    faults_backup_writes,
    faults_restore_interrupted,
    network_policy,
    own_pods,
    reset,
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn every_descriptor_file_is_in_the_table_under_its_own_name() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/checks/table");
        let files: BTreeSet<String> = std::fs::read_dir(&dir)
            .expect("the table's directory")
            .flatten()
            .filter_map(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|n| n.strip_suffix(".rs"))
                    .map(str::to_string)
            })
            .filter(|n| n != "mod")
            .collect();
        assert!(
            files.len() >= 15,
            "found only {files:?} in {}",
            dir.display()
        );
        let listed: BTreeSet<String> = FILES.iter().map(|f| f.to_string()).collect();
        let missing: Vec<&String> = files.difference(&listed).collect();
        assert!(
            missing.is_empty(),
            "descriptor file(s) {missing:?} in {} are not in the table! list: add each name where it runs",
            dir.display()
        );
        for (file, about) in FILES.iter().zip(ABOUT) {
            assert_eq!(
                about.name.replace('-', "_"),
                *file,
                "the descriptor in {file}.rs is named `{}`",
                about.name
            );
        }
        let names: BTreeSet<&str> = ABOUT.iter().map(|a| a.name).collect();
        assert_eq!(names.len(), ABOUT.len(), "two descriptors share a name");
    }

    #[test]
    fn every_check_round_trips_through_its_name_and_reset_runs_last() {
        let all: Vec<CheckName> = CheckName::all().collect();
        assert_eq!(all.len(), ABOUT.len());
        for c in &all {
            assert_eq!(c.as_str().parse::<CheckName>().as_ref(), Ok(c));
        }
        assert_eq!(
            all.last().map(|c| c.as_str()),
            Some("reset"),
            "reset wipes the data: it must run last"
        );
    }
}
