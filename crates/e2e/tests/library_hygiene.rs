//! The e2e library neither prints nor flattens errors into strings.
//!
//! Library code speaks through `tracing` and its return values: a `println!` would interleave
//! with xtask's own output and bypass the caller. An error turned into its text at the call
//! (`map_err(|e| e.to_string())`) loses its `source()` chain; a module names its failure in
//! a `thiserror` type instead, and a report writes the whole chain (`e2e::text::chain`).
//! `#[cfg(test)]` modules, comments and string literals are not judged.
//!
//! Every directory is judged, the direct process backend (`process/`) and the release list
//! (`releases/`) included. Where text is what an API wants (a pod's waiting message, a check's
//! verdict, a `HookRun`'s reason) it is written at that boundary with the chain. The
//! backends' capability answers (`fn limits_memory(&self) -> Result<(), String>`: `Ok`, or why
//! not) carry a reason, not an error, and are not what this rule counts.

mod common;
use common::rust_files;
use std::path::{Path, PathBuf};

/// The shipped code of a file, line by line (1-based numbers kept): no comments, string
/// literals emptied, `#[cfg(test)]` items left out.
fn shipped_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let (mut depth, mut skip_depth, mut pending_cfg_test) = (0usize, None::<usize>, false);
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("//") {
            continue;
        }
        if trimmed.starts_with("#[cfg(test)]") {
            pending_cfg_test = true;
            continue;
        }
        let mut clean = String::new();
        let (mut in_str, mut prev) = (false, ' ');
        for ch in line.chars() {
            if ch == '"' && prev != '\\' {
                in_str = !in_str;
                clean.push('"');
            } else if !in_str {
                clean.push(ch);
            }
            prev = ch;
        }
        let clean = clean.split("//").next().unwrap_or_default().to_string();
        if pending_cfg_test && skip_depth.is_none() && clean.contains('{') {
            skip_depth = Some(depth);
            pending_cfg_test = false;
        } else if pending_cfg_test && clean.trim_end().ends_with(';') {
            pending_cfg_test = false;
            continue;
        }
        depth = clean.chars().fold(depth, |d, c| match c {
            '{' => d + 1,
            '}' => d.saturating_sub(1),
            _ => d,
        });
        if let Some(d) = skip_depth {
            if depth <= d {
                skip_depth = None;
            }
            continue;
        }
        out.push((i + 1, clean));
    }
    out
}

/// `file:line: code` for every shipped line of `crates/e2e/src` that `offends`; also how many
/// files were read.
fn offences(offends: impl Fn(&str) -> bool) -> (Vec<String>, usize) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files: Vec<PathBuf> = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut found = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("source file reads");
        for (n, line) in shipped_lines(&text) {
            if offends(&line) {
                found.push(format!(
                    "{}:{n}: {}",
                    f.strip_prefix(&src).unwrap_or(f).display(),
                    line.trim()
                ));
            }
        }
    }
    (found, files.len())
}

fn prints(line: &str) -> bool {
    ["println!", "eprintln!", "print!", "eprint!", "dbg!"]
        .iter()
        .any(|m| {
            // A method of that name (indicatif's `bar.println`, the progress display) is not the macro.
            line.match_indices(m).any(|(i, _)| {
                !line[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == '.')
            })
        })
}

/// `map_err(|e| e.to_string())` and `map_err(ToString::to_string)`: the error's chain dropped
/// on the spot. (A `format!` of the error cannot be told apart here, its literal is emptied;
/// the count in the report covers those.)
fn stringifies(line: &str) -> bool {
    let compact: String = line.chars().filter(|c| !c.is_whitespace()).collect();
    compact.contains("map_err(ToString::to_string)")
        || compact.match_indices("map_err(|").any(|(i, _)| {
            let rest = &compact[i + "map_err(|".len()..];
            let Some((var, body)) = rest.split_once('|') else {
                return false;
            };
            !var.is_empty() && var != "_" && body.starts_with(&format!("{var}.to_string()"))
        })
}

#[test]
fn library_code_does_not_print() {
    let (found, files) = offences(prints);
    assert!(files > 50, "read only {files} files of crates/e2e/src");
    assert!(
        found.is_empty(),
        "library code prints (use tracing, or return it):\n{}",
        found.join("\n")
    );
}

#[test]
fn library_code_does_not_flatten_errors_into_strings() {
    let (found, files) = offences(stringifies);
    assert!(files > 50, "read only {files} files of crates/e2e/src");
    assert!(
        found.is_empty(),
        "errors turned into their text where they happen (keep them as a thiserror variant's #[source], or write a report's text with e2e::text::chain):\n{}",
        found.join("\n")
    );
}

#[rstest::rstest]
#[case::println_prints("    println!(\"x\");", true)]
#[case::eprintln_prints("eprintln!(\"{e}\")", true)]
#[case::a_progress_bars_own_println_is_a_method("bar.println(msg)", false)]
#[case::a_macro_named_like_it_is_not_it("my_println!(x)", false)]
fn printing_is_recognised(#[case] line: &str, #[case] is: bool) {
    assert_eq!(prints(line), is, "{line}");
}

#[rstest::rstest]
#[case::to_string_of_the_error(".map_err(|e| e.to_string())?", true)]
#[case::to_string_as_a_path(".map_err(ToString::to_string)", true)]
#[case::a_variant_keeping_the_source(
    ".map_err(|source| K3sError::Start { image, source })?",
    false
)]
#[case::the_chain_for_a_report(".map_err(|e| crate::text::chain(&e))", false)]
#[case::a_context_with_the_error_as_source(".map_err(|e| BackendError::step(what, e))", false)]
fn stringification_is_recognised(#[case] line: &str, #[case] is: bool) {
    assert_eq!(stringifies(line), is, "{line}");
}
