//! Text helpers every layer uses (backends, checks, upgrade): kept at the bottom so that
//! none of them reaches into another for them.

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
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
}
