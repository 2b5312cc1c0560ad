//! Kubernetes quantities of bytes (`resources.requests.storage`, `resources.limits.memory`):
//! one parser for the spec model and the node that enforces them.

/// A Kubernetes quantity of bytes (`16Mi`, `1Gi`, `500M`, `1e6`, `2048`) as a number.
pub fn parse_quantity(q: &str) -> Result<u64, String> {
    let q = q.trim();
    const SUFFIXES: [(&str, u64); 12] = [
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("Ti", 1 << 40),
        ("Pi", 1 << 50),
        ("Ei", 1 << 60),
        ("k", 1_000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
        ("T", 1_000_000_000_000),
        ("P", 1_000_000_000_000_000),
        ("E", 1_000_000_000_000_000_000),
    ];
    let bad = || format!("`{q}` is not a quantity of bytes (e.g. 16Mi, 1Gi, 500M, 2048)");
    let (number, unit) = SUFFIXES
        .iter()
        .find_map(|(s, m)| q.strip_suffix(s).map(|n| (n, *m)))
        .unwrap_or((q, 1));
    let value: f64 = number.parse().map_err(|_| bad())?;
    if !value.is_finite() || value <= 0.0 {
        return Err(bad());
    }
    Ok((value * unit as f64).ceil() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rstest::rstest]
    #[case::binary_mebibytes("16Mi", 16 << 20)]
    #[case::binary_gibibytes("1Gi", 1 << 30)]
    #[case::decimal_megabytes("500M", 500_000_000)]
    #[case::plain_bytes("2048", 2048)]
    #[case::exponent("1e6", 1_000_000)]
    #[case::fraction_rounds_up("1.5Ki", 1536)]
    fn quantities_in_bytes(#[case] q: &str, #[case] bytes: u64) {
        assert_eq!(parse_quantity(q).unwrap(), bytes);
    }

    #[rstest::rstest]
    #[case::a_word("lots")]
    #[case::zero("0Mi")]
    #[case::negative("-1Gi")]
    #[case::empty("")]
    fn a_bad_quantity_is_named(#[case] q: &str) {
        let e = parse_quantity(q).unwrap_err();
        assert!(e.contains(&format!("`{}`", q.trim())), "{e}");
    }
}
