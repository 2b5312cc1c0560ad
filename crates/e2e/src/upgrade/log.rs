//! Server logs around the upgrade, cleaned for reports: B's own lines (what the log gained
//! after the upgrade), without colour codes and the 1.x ASCII-art banner.

/// What `after` added to `before`: B's own log on a backend that appends to one log file
/// (the process backend), all of `after` where B's pod starts a fresh log (a cluster).
pub fn since<'a>(before: &str, after: &'a str) -> &'a str {
    after.strip_prefix(before).unwrap_or(after)
}

/// The first `n` lines of `log` that carry something.
pub fn head(log: &str, n: usize) -> String {
    log.lines()
        .map(strip_ansi)
        .filter(|l| !is_banner(l))
        .take(n)
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_banner(line: &str) -> bool {
    line.chars().all(|c| matches!(c, '(' | '#' | ' '))
}

/// A log excerpt without colour codes and banner lines, for reports.
pub fn clean(text: &str) -> String {
    text.lines()
        .map(strip_ansi)
        .filter(|l| !is_banner(l))
        .collect::<Vec<_>>()
        .join("\n")
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            // CSI: parameters up to the final byte in @..~.
            for d in chars.by_ref() {
                if ('@'..='~').contains(&d) && d != '[' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn b_log_is_what_the_file_gained_after_the_upgrade() {
        let a = "--- harness: start 1 of chromadb 0.6.3 ---\nA says hi\n";
        let after = format!("{a}--- harness: start 2 of chromadb 1.0.0 ---\nB line 1\n");
        assert_eq!(
            since(a, &after),
            "--- harness: start 2 of chromadb 1.0.0 ---\nB line 1\n"
        );
    }

    #[test]
    fn a_b_that_never_started_has_no_log_of_its_own() {
        let a = "A says hi\nA says bye\n";
        assert_eq!(since(a, a), "");
    }

    #[test]
    fn a_fresh_pod_log_is_all_b() {
        assert_eq!(since("A says hi\n", "B line 1\n"), "B line 1\n");
    }

    #[test]
    fn the_banner_and_colour_codes_are_dropped_from_the_head() {
        let log = "--- harness: start 2 ---\n\n   \u{1b}[38;5;069m((((\u{1b}[38;5;220m####\u{1b}[0m\nListening on 127.0.0.1:1\nmore";
        assert_eq!(
            head(log, 2),
            "--- harness: start 2 ---\nListening on 127.0.0.1:1"
        );
    }
}
