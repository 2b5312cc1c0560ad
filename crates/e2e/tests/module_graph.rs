//! No import circles among the workspace's modules.
//!
//! Every reference from one file to a module of its own crate (`use crate::…`, `use super::…`,
//! and inline `crate::a::b` paths) is an edge. An edge between a module and one of its own
//! descendants is the module tree's structure (a parent runs its children, a child uses its
//! parent's types) and is not judged. Every other edge is lifted to the level where the two
//! sides part — the two sibling modules under their closest common ancestor — and at every level
//! the siblings must form a DAG: `dataset → checks → … → dataset` or `upgrade::plan ↔
//! upgrade::signature` fail. `cargo test -p e2e --test module_graph -- --nocapture` prints
//! the edges.

mod common;
use common::rust_files;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module path inside its crate, e.g. `["upgrade", "plan"]`; the crate root is `[]`.
type Module = Vec<String>;

fn module_of(src: &Path, file: &Path) -> Module {
    let rel = file.strip_prefix(src).expect("file under src");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap_or_default();
    let stem = last.trim_end_matches(".rs");
    if !matches!(stem, "mod" | "lib" | "main") {
        parts.push(stem.to_string());
    }
    parts
}

/// The code of a file without comments, string literals and `#[cfg(test)]` modules (tests may
/// reach anywhere; the shape is about the code that ships).
fn code(text: &str) -> String {
    let mut out = String::new();
    let mut skip_depth: Option<usize> = None;
    let mut depth = 0usize;
    let mut pending_cfg_test = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("//") {
            continue;
        }
        if trimmed.starts_with("#[cfg(test)]") {
            pending_cfg_test = true;
            continue;
        }
        let line = line.split("//").next().unwrap_or_default();
        // Strings are blanked so that a `"crate::x"` in a message is no edge.
        let mut clean = String::new();
        let mut in_str = false;
        let mut prev = ' ';
        for ch in line.chars() {
            if ch == '"' && prev != '\\' {
                in_str = !in_str;
                clean.push('"');
            } else if !in_str {
                clean.push(ch);
            }
            prev = ch;
        }
        if pending_cfg_test && skip_depth.is_none() && clean.contains('{') {
            skip_depth = Some(depth);
            pending_cfg_test = false;
        } else if pending_cfg_test && clean.trim_end().ends_with(';') {
            // `#[cfg(test)] use …;` or `mod tests;`
            pending_cfg_test = false;
            continue;
        }
        for ch in clean.chars() {
            match ch {
                '{' => depth += 1,
                '}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        if let Some(d) = skip_depth {
            if depth <= d {
                skip_depth = None;
            }
            continue;
        }
        out.push_str(&clean);
        out.push('\n');
    }
    out
}

/// Expands `a::{b, c::{d, e}}` into `a::b`, `a::c::d`, `a::c::e`.
fn expand(tree: &str) -> Vec<String> {
    let tree: String = tree.chars().filter(|c| !c.is_whitespace()).collect();
    let Some(open) = tree.find('{') else {
        return vec![tree];
    };
    let prefix = &tree[..open];
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let mut items = Vec::new();
    let (mut level, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => level += 1,
            '}' => level -= 1,
            ',' if level == 0 => {
                items.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&inner[start..]);
    items
        .into_iter()
        .filter(|i| !i.is_empty())
        .flat_map(|i| expand(i).into_iter().map(move |x| format!("{prefix}{x}")))
        .collect()
}

/// Paths a file's code names in its own crate, as written (`crate::…`, `super::…`).
fn paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    // `use` statements, possibly spread over lines and grouped.
    let mut rest = code;
    while let Some(i) = rest.find("use ") {
        let before = rest[..i].chars().last();
        let after = &rest[i + 4..];
        rest = after;
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let Some(end) = after.find(';') else { break };
        let tree = &after[..end];
        if tree.trim_start().starts_with("crate::") || tree.trim_start().starts_with("super::") {
            out.extend(expand(tree));
        }
    }
    // Inline paths: `crate::a::b::f(…)`.
    for (i, _) in code.match_indices("crate::") {
        let before = code[..i].chars().last();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let p: String = code[i..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        out.push(p);
    }
    out
}

/// The module a path reaches: its longest prefix that is a module of the crate.
fn target(from: &Module, path: &str, modules: &BTreeSet<Module>) -> Option<Module> {
    let segs: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    let mut base: Module;
    let mut i = 0;
    if segs.first() == Some(&"crate") {
        base = Vec::new();
        i = 1;
    } else {
        // `super` in `a/b.rs` (module a::b) is `a`; in `a/b/mod.rs` (also a::b) it is `a` too.
        base = from.clone();
        while segs.get(i) == Some(&"super") {
            base.pop();
            i += 1;
        }
    }
    let mut best = None;
    for s in &segs[i..] {
        base.push((*s).to_string());
        if modules.contains(&base) {
            best = Some(base.clone());
        } else {
            break;
        }
    }
    best
}

/// Edges between modules of one crate (source directory), each with the file that makes it.
fn edges(src: &Path) -> BTreeMap<(Module, Module), String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let modules: BTreeSet<Module> = files.iter().map(|f| module_of(src, f)).collect();
    let mut out = BTreeMap::new();
    for f in &files {
        let from = module_of(src, f);
        let text = std::fs::read_to_string(f).expect("readable source");
        for p in paths(&code(&text)) {
            if let Some(to) = target(&from, &p, &modules)
                && to != from
            {
                out.entry((from.clone(), to))
                    .or_insert_with(|| f.strip_prefix(src).unwrap_or(f).display().to_string());
            }
        }
    }
    out
}

fn name(m: &Module) -> String {
    if m.is_empty() {
        "crate".into()
    } else {
        m.join("::")
    }
}

/// Edges lifted to sibling level: (parent, child a, child b) for each edge whose sides part
/// below `parent`; ancestor/descendant edges are dropped.
fn sibling_edges(
    edges: &BTreeMap<(Module, Module), String>,
) -> BTreeMap<Module, BTreeSet<(String, String)>> {
    let mut out: BTreeMap<Module, BTreeSet<(String, String)>> = BTreeMap::new();
    for (from, to) in edges.keys() {
        let common = from.iter().zip(to).take_while(|(a, b)| a == b).count();
        if common == from.len() || common == to.len() {
            continue;
        }
        out.entry(from[..common].to_vec())
            .or_default()
            .insert((from[common].clone(), to[common].clone()));
    }
    out
}

/// A cycle among the siblings of one level, if any (depth-first search).
fn cycle(edges: &BTreeSet<(String, String)>) -> Option<Vec<String>> {
    let nodes: BTreeSet<&String> = edges.iter().flat_map(|(a, b)| [a, b]).collect();
    fn visit<'a>(
        n: &'a String,
        edges: &'a BTreeSet<(String, String)>,
        stack: &mut Vec<&'a String>,
        done: &mut BTreeSet<&'a String>,
    ) -> Option<Vec<String>> {
        if let Some(pos) = stack.iter().position(|s| *s == n) {
            let mut c: Vec<String> = stack[pos..].iter().map(|s| s.to_string()).collect();
            c.push(n.clone());
            return Some(c);
        }
        if done.contains(n) {
            return None;
        }
        stack.push(n);
        for (_, b) in edges.iter().filter(|(a, _)| a == n) {
            if let Some(c) = visit(b, edges, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(n);
        None
    }
    let mut done = BTreeSet::new();
    nodes
        .into_iter()
        .find_map(|n| visit(n, edges, &mut Vec::new(), &mut done))
}

fn workspace_sources() -> Vec<(String, PathBuf)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut out = vec![("xtask".to_string(), root.join("xtask/src"))];
    let mut crates: Vec<PathBuf> = std::fs::read_dir(root.join("crates"))
        .expect("crates/")
        .flatten()
        .map(|e| e.path())
        .collect();
    crates.sort();
    for c in crates {
        if c.join("src").is_dir() {
            out.push((
                c.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
                c.join("src"),
            ));
        }
    }
    out
}

/// The cycles of every crate, as readable lines (empty when the workspace has none).
fn cycles_of(src: &Path) -> Vec<String> {
    let edges = edges(src);
    let lifted = sibling_edges(&edges);
    let mut found = Vec::new();
    for (parent, sib) in &lifted {
        if let Some(c) = cycle(sib) {
            let prefix = if parent.is_empty() {
                String::new()
            } else {
                format!("{}::", name(parent))
            };
            let why: Vec<String> = c
                .windows(2)
                .map(|w| {
                    let files: Vec<String> = edges
                        .iter()
                        .filter(|((f, t), _)| {
                            f.len() > parent.len()
                                && t.len() > parent.len()
                                && f[..parent.len()] == parent[..]
                                && t[..parent.len()] == parent[..]
                                && f[parent.len()] == w[0]
                                && t[parent.len()] == w[1]
                        })
                        .map(|((f, t), file)| format!("{file}: {} → {}", name(f), name(t)))
                        .collect();
                    files.join(", ")
                })
                .collect();
            found.push(format!(
                "{}: {} ({})",
                name(parent),
                c.iter()
                    .map(|m| format!("{prefix}{m}"))
                    .collect::<Vec<_>>()
                    .join(" → "),
                why.join("; ")
            ));
        }
    }
    found
}

#[test]
fn no_module_imports_in_a_circle() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for (krate, src) in workspace_sources() {
        let edges = edges(&src);
        println!("== {krate}: {} edges", edges.len());
        for ((from, to), file) in &edges {
            println!("{krate}: {} -> {}  ({file})", name(from), name(to));
        }
        checked += edges.len();
        failures.extend(cycles_of(&src).into_iter().map(|c| format!("{krate}: {c}")));
    }
    assert!(
        checked > 100,
        "the scan found only {checked} edges: it is not reading the sources"
    );
    assert!(
        failures.is_empty(),
        "import circles:\n{}",
        failures.join("\n")
    );
}

#[test]
fn a_circle_between_siblings_is_found_and_a_parent_child_pair_is_not() {
    let dir = tempfile::tempdir().expect("temp dir");
    let src = dir.path();
    std::fs::create_dir_all(src.join("checks")).unwrap();
    std::fs::create_dir_all(src.join("upgrade")).unwrap();
    std::fs::write(
        src.join("lib.rs"),
        "pub mod checks;\npub mod dataset;\npub mod upgrade;\n",
    )
    .unwrap();
    // checks ↔ its child: structure, not a circle.
    std::fs::write(
        src.join("checks/mod.rs"),
        "mod probes;\nfn f() { probes::x(); }\n",
    )
    .unwrap();
    std::fs::write(
        src.join("checks/probes.rs"),
        "use super::Ctx;\n// use crate::dataset;\n",
    )
    .unwrap();
    // upgrade::plan ↔ upgrade::signature: a circle one level down, through a grouped use.
    std::fs::write(
        src.join("upgrade/mod.rs"),
        "pub mod plan;\npub mod signature;\n",
    )
    .unwrap();
    std::fs::write(
        src.join("upgrade/plan.rs"),
        "use super::{signature::Signature, mod_thing};\n",
    )
    .unwrap();
    std::fs::write(
        src.join("upgrade/signature.rs"),
        "use super::plan::Verdict;\n",
    )
    .unwrap();
    std::fs::write(src.join("dataset.rs"), "fn f(_: crate::checks::Api) {}\n#[cfg(test)]\nmod tests {\n    use crate::upgrade::plan;\n}\n").unwrap();
    let found = cycles_of(src);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("upgrade::plan → upgrade::signature → upgrade::plan")
            || found[0].contains("upgrade::signature → upgrade::plan → upgrade::signature"),
        "{found:?}"
    );

    // An inline path closes a top-level circle: dataset → checks → dataset.
    std::fs::write(
        src.join("checks/probes.rs"),
        "use super::Ctx;\nfn g() { crate::dataset::write(); }\n",
    )
    .unwrap();
    let found = cycles_of(src);
    assert!(
        found
            .iter()
            .any(|c| c.starts_with("crate: ") && c.contains("dataset") && c.contains("checks")),
        "{found:?}"
    );
}
