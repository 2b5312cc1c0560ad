//! Facts about Chroma itself (not the chart) that the checks need: which HTTP status each
//! era answers with when it refuses something. One table, keyed by version ranges, measured
//! against real servers (docs/chroma-eras.md#measured-behaviour).

use render::ChromaVersion;

const fn v(major: u64, minor: u64, patch: u64) -> ChromaVersion {
    ChromaVersion::new(major, minor, patch)
}

/// `[from, to)` → the statuses that count as the era's answer.
struct Row {
    from: ChromaVersion,
    to: ChromaVersion,
    statuses: &'static [u16],
}

const END: ChromaVersion = v(u64::MAX, 0, 0);

/// A request without valid credentials while auth is on.
const AUTH_REJECTED: &[Row] = &[
    Row {
        from: v(0, 4, 0),
        to: v(0, 5, 0),
        statuses: &[401],
    },
    Row {
        from: v(0, 5, 0),
        to: v(1, 0, 0),
        statuses: &[403],
    },
];

/// `POST …/reset` with `allow_reset` off.
const RESET_REFUSED: &[Row] = &[
    // ValueError surfaced as a 500 (measured through 0.5.16).
    Row {
        from: v(0, 4, 0),
        to: v(0, 5, 17),
        statuses: &[500],
    },
    // InvalidArgumentError (measured from 0.5.17).
    Row {
        from: v(0, 5, 17),
        to: v(1, 0, 0),
        statuses: &[400],
    },
    // "Reset is disabled by config".
    Row {
        from: v(1, 0, 0),
        to: END,
        statuses: &[403],
    },
];

/// 0.4.x puts its auth middleware outside the CORS one: with auth on, a preflight without
/// credentials gets 401 before CORS can answer it (measured 0.4.8–0.4.24).
pub fn preflight_behind_auth(version: &ChromaVersion) -> bool {
    *version < v(0, 5, 0)
}

fn lookup(table: &[Row], version: &ChromaVersion) -> &'static [u16] {
    table
        .iter()
        .find(|r| *version >= r.from && *version < r.to)
        .map_or(&[], |r| r.statuses)
}

pub fn auth_rejected(version: &ChromaVersion) -> &'static [u16] {
    lookup(AUTH_REJECTED, version)
}

pub fn reset_refused(version: &ChromaVersion) -> &'static [u16] {
    lookup(RESET_REFUSED, version)
}

/// The HNSW `search_ef` a collection created without index settings searches with: 10
/// through 0.6.2, 100 from 0.6.3 (source: `hnsw_params.py` at 0.5.23, 0.6.0, 0.6.1, 0.6.2
/// and 0.6.3) and on the Rust server (source: its HNSW configuration's default).
pub fn default_search_ef(version: &ChromaVersion) -> u32 {
    if *version < v(0, 6, 3) { 10 } else { 100 }
}

/// The least mean recall@10 the faults workload's queries reach on an undisturbed server of
/// this era: the lowest of 16 collections (8 seeds × 3,000 and 6,050 records) measured at
/// the era's default search ef, less a margin (docs/chroma-eras.md#faults).
pub fn recall_floor(version: &ChromaVersion) -> f64 {
    match default_search_ef(version) {
        // Measured 0.940 – 0.995 on 0.4.24; less 0.04.
        10 => 0.90,
        // Measured 1.000 on every collection (0.6.3, 1.5.9); one neighbour in 200 may go.
        _ => 0.995,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::ten_on_0_4("0.4.24", 10, 0.90)]
    #[case::still_ten_on_0_6_2("0.6.2", 10, 0.90)]
    #[case::a_hundred_from_0_6_3("0.6.3", 100, 0.995)]
    #[case::a_hundred_on_rust("1.0.0", 100, 0.995)]
    fn search_ef_and_its_recall_floor(#[case] version: &str, #[case] ef: u32, #[case] floor: f64) {
        let v = version.parse().unwrap();
        assert_eq!((default_search_ef(&v), recall_floor(&v)), (ef, floor));
    }

    #[rstest]
    #[case::python_0_4_answers_401("0.4.24", &[401])]
    #[case::python_0_5_answers_403("0.5.0", &[403])]
    #[case::python_0_6_answers_403("0.6.3", &[403])]
    fn auth_rejection_status(#[case] version: &str, #[case] want: &[u16]) {
        assert_eq!(auth_rejected(&version.parse().unwrap()), want);
    }

    #[rstest]
    #[case::value_error_500_on_0_5_16("0.5.16", &[500])]
    #[case::invalid_argument_400_from_0_5_17("0.5.17", &[400])]
    #[case::invalid_argument_400_on_0_5_23("0.5.23", &[400])]
    #[case::forbidden_403_on_rust("1.5.0", &[403])]
    fn reset_refusal_status(#[case] version: &str, #[case] want: &[u16]) {
        assert_eq!(reset_refused(&version.parse().unwrap()), want);
    }
}
