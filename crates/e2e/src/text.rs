//! Text helpers every layer uses (backends, checks, upgrade): kept at the bottom so that
//! none of them reaches into another for them.

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// An error and each of its sources, `: `-joined: what a report shows of an error it keeps
/// only as text.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        let said = s.to_string();
        // Messages that already quote their source (`…: {source}`) are not repeated.
        if !out.contains(&said) {
            out.push_str(": ");
            out.push_str(&said);
        }
        next = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    #[rstest::rstest]
    #[case::fewer_lines_than_asked_gives_all("a\nb", 5, "a\nb")]
    #[case::more_lines_than_asked_gives_the_last("a\nb\nc", 2, "b\nc")]
    #[case::zero_gives_nothing("a\nb", 0, "")]
    fn tail_keeps_the_last_lines(#[case] text: &str, #[case] n: usize, #[case] want: &str) {
        assert_eq!(super::tail(text, n), want);
    }

    #[derive(Debug, thiserror::Error)]
    #[error("preparing 1.5.0")]
    struct Outer(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("preparing 1.5.0: {0}")]
    struct Quoting(#[source] std::io::Error);

    #[test]
    fn chain_names_each_source_once() {
        let io = || std::io::Error::other("uv: no such file");
        assert_eq!(
            super::chain(&Outer(io())),
            "preparing 1.5.0: uv: no such file"
        );
        assert_eq!(
            super::chain(&Quoting(io())),
            "preparing 1.5.0: uv: no such file"
        );
    }
}
