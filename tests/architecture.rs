//! The dependency rules of ARCHITECTURE.md, checked on the source (in the manner of
//! rust-analyzer's tidy tests): each rule that the compiler does not hold is held here.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Every `.rs` file under `src/<rel>` (a file or a folder).
fn sources(rel: &str) -> Vec<PathBuf> {
    let p = common::root().join("src").join(rel);
    let mut out = Vec::new();
    let mut stack = vec![p];
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// The code of a file without comments (line comments and doc comments).
fn code(p: &Path) -> String {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(|l| match l.find("//") {
            // a `//` inside a string literal ("http://") is rare in the checked modules and
            // only makes the check stricter
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level crate modules a file refers to (`crate::X`, `crate::{X, ..}`).
fn crate_modules(p: &Path) -> BTreeSet<String> {
    let text = code(p);
    let mut out = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        if let Some(list) = rest.strip_prefix('{') {
            let end = list.find('}').unwrap_or(list.len());
            for item in list[..end].split(',') {
                let m = ident(item.trim());
                if !m.is_empty() {
                    out.insert(m);
                }
            }
        } else {
            out.insert(ident(rest));
        }
    }
    out
}

/// Asserts that the files of `module` refer to no crate module outside `allowed` (itself is
/// always allowed).
fn only_imports(module: &str, allowed: &[&str]) {
    let own = module.trim_end_matches(".rs");
    let files = sources(module);
    assert!(!files.is_empty(), "no sources for {module}");
    for f in files {
        for m in crate_modules(&f) {
            assert!(
                m == own || allowed.contains(&m.as_str()),
                "{} imports crate::{m}: {module} may import only {allowed:?}",
                f.display()
            );
        }
    }
}

#[test]
fn the_report_never_imports_the_search_index() {
    for f in sources("report") {
        assert!(
            !crate_modules(&f).contains("index"),
            "{} imports crate::index: severity and topic tags live in severity and workspace",
            f.display()
        );
    }
}

#[test]
fn cluster_imports_nothing_of_the_pipeline() {
    only_imports("cluster.rs", &["error", "rng", "Error", "Result"]);
}

#[test]
fn text_helpers_and_severity_are_leaves() {
    only_imports("text", &["error", "Error", "Result"]);
    only_imports("severity.rs", &["error", "record", "Error", "Result"]);
    only_imports("record.rs", &["error", "Error", "Result"]);
}

#[test]
fn only_the_workspace_spells_the_file_names_of_a_run_folder() {
    let names = [
        "\"scored.jsonl\"",
        "\"rejects.jsonl\"",
        "\"summary.json\"",
        "\"settings.json\"",
        "\"assignments.jsonl\"",
        "\"report.json\"",
        "\"report.html\"",
        "join(\"index\")",
        "join(\"topics\")",
    ];
    for f in sources("") {
        let rel = f.strip_prefix(common::root().join("src")).unwrap();
        if rel.starts_with("workspace") {
            continue;
        }
        let text = code(&f);
        for n in names {
            assert!(
                !text.contains(n),
                "{} spells {n}: use vocmine::workspace::RunDir",
                f.display()
            );
        }
    }
}

#[test]
fn the_command_line_holds_no_training_or_run_logic() {
    // the CLI reaches the run folder through RunDir, not by opening its files
    for f in sources("cli") {
        let text = code(&f);
        for banned in [
            "read_scored_file(",
            "cluster::update(",
            "write_atomic(",
            "load_aligned(",
        ] {
            assert!(
                !text.contains(banned),
                "{} calls {banned}: that belongs in the library",
                f.display()
            );
        }
    }
}
