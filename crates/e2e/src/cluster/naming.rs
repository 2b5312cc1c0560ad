//! Namespace names: one throwaway namespace per release, recognisable and unique per run.

/// Every namespace this harness creates starts with this, so a human (or a cleanup script)
/// can tell them apart from the cluster's own.
pub const NAMESPACE_PREFIX: &str = "chroma-e2e";

/// Kubernetes caps namespace names (DNS-1123 labels) at 63 characters.
const MAX_LABEL: usize = 63;

/// Six lowercase alphanumerics: enough that two runs against one shared cluster (the
/// kubeconfig backend) do not collide, short enough to leave room for the release id.
pub fn run_suffix() -> String {
    crate::random::dns_suffix(6)
}

/// `chroma-e2e-<id>-<suffix>` as a valid DNS-1123 label: the id is lowercased, every run of
/// other characters becomes one `-`, and the id is shortened (never the suffix) to fit.
pub fn namespace_for(release_id: &str, suffix: &str) -> String {
    let mut id = String::with_capacity(release_id.len());
    for c in release_id.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            id.push(c);
        } else if !id.ends_with('-') {
            id.push('-');
        }
    }
    let id = id.trim_matches('-');
    let budget = MAX_LABEL - NAMESPACE_PREFIX.len() - suffix.len() - 2;
    let id = id[..id.len().min(budget)].trim_end_matches('-');
    if id.is_empty() {
        format!("{NAMESPACE_PREFIX}-{suffix}")
    } else {
        format!("{NAMESPACE_PREFIX}-{id}-{suffix}")
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    /// The DNS-1123 label rule the API server applies to namespace names.
    fn is_dns1123_label(s: &str) -> bool {
        !s.is_empty()
            && s.len() <= MAX_LABEL
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-')
            && !s.ends_with('-')
    }

    #[rstest]
    #[case::plain_id_kept("1.5.0-defaults", "chroma-e2e-1-5-0-defaults-abc123")]
    #[case::uppercase_lowered("V0.4.3-Token", "chroma-e2e-v0-4-3-token-abc123")]
    #[case::symbol_runs_collapse_to_one_dash(
        "0.5.0__basic//auth",
        "chroma-e2e-0-5-0-basic-auth-abc123"
    )]
    #[case::leading_and_trailing_symbols_dropped("--x--", "chroma-e2e-x-abc123")]
    #[case::id_of_only_symbols_leaves_prefix_and_suffix("...", "chroma-e2e-abc123")]
    fn namespace_is_sanitized_release_id(#[case] id: &str, #[case] expected: &str) {
        assert_eq!(namespace_for(id, "abc123"), expected);
    }

    #[test]
    fn long_id_is_cut_to_63_characters_keeping_the_suffix() {
        let ns = namespace_for(&"a".repeat(200), "zz9zz9");
        assert_eq!(ns.len(), 63);
        assert!(ns.ends_with("-zz9zz9"), "{ns}");
        assert!(is_dns1123_label(&ns), "{ns}");
    }

    #[test]
    fn cut_never_leaves_a_dash_before_the_suffix_separator() {
        // The budget for the id is 63 - 10 - 6 - 2 = 45 characters; put a '-' at position 45.
        let id = format!("{}-{}", "b".repeat(44), "c".repeat(30));
        let ns = namespace_for(&id, "abc123");
        assert!(!ns.contains("--"), "{ns}");
        assert!(is_dns1123_label(&ns), "{ns}");
    }

    #[test]
    fn different_runs_get_different_namespaces_for_one_release() {
        let a = namespace_for("1.5.0-defaults", &run_suffix());
        let b = namespace_for("1.5.0-defaults", &run_suffix());
        assert_ne!(a, b);
    }

    #[test]
    fn run_suffix_is_six_label_characters() {
        let s = run_suffix();
        assert_eq!(s.len(), 6);
        assert!(is_dns1123_label(&s) && !s.contains('-'), "{s}");
    }
}
