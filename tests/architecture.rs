//! Tidy tests that hold the source's structural rules (in the style of rust-analyzer's
//! `tidy.rs`): they read `src/` as text and fail naming the file and line that breaks a rule.
//!
//! - The kernels' dependency rule: in `src/encode/kernels/`, the ISA files (`avx2.rs`,
//!   `avx512.rs`, `amx.rs`) refer to no sibling but `cpu` and `common`, those two to no sibling
//!   at all, and the files' references form no cycle.
//! - Every `unsafe fn` in `src/` has a `# Safety` section in its doc comment (clippy's
//!   `missing_safety_doc` covers public functions only).
//! - Every `unsafe` block in `src/` follows a `// SAFETY:` comment.
//! - The crate's layers ([`layers`]): the report never imports the index; cluster, text,
//!   severity and record are leaves; only the workspace spells a run folder's file names; the
//!   command line calls no run-folder internals.
//! - The command line is thin: every file of `src/cli/` is under [`CLI_MAX_LINES`] lines and
//!   names no other cli module than `args` (the shared flag groups and helpers).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The instruction-set files of `src/encode/kernels/`.
const ISA_FILES: [&str; 3] = ["avx2", "avx512", "amx"];
/// The modules an ISA file may refer to.
const ISA_MAY_USE: [&str; 2] = ["cpu", "common"];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The code of a line: empty for a comment line, else the text before a `//` comment.
fn code(line: &str) -> &str {
    let t = line.trim_start();
    if t.starts_with("//") {
        return "";
    }
    match line.find("//") {
        Some(i) => &line[..i],
        None => line,
    }
}

/// The sibling modules of `kernels` a file refers to, with the first line (1-based) of each:
/// `super::NAME` (also inside `use super::{a, b::c}` groups, which may span lines),
/// `super::super::NAME` (from a nested test module) and `crate::encode::kernels::NAME`.
/// `super::*` and comments refer to nothing.
fn sibling_refs(text: &str, siblings: &BTreeSet<String>) -> BTreeMap<String, usize> {
    let mut refs = BTreeMap::new();
    let mut group_open = false;
    for (i, line) in text.lines().enumerate() {
        let c = code(line)
            .replace("crate::encode::kernels::", "super::")
            .replace("super::super::", "super::");
        let mut names = Vec::new();
        let mut rest = c.as_str();
        if group_open {
            let end = rest.find('}');
            names.extend(group_names(&rest[..end.unwrap_or(rest.len())]));
            group_open = end.is_none();
            rest = &rest[end.unwrap_or(rest.len())..];
        }
        while let Some(at) = rest.find("super::") {
            let after = &rest[at + "super::".len()..];
            if let Some(group) = after.strip_prefix('{') {
                let end = group.find('}');
                names.extend(group_names(&group[..end.unwrap_or(group.len())]));
                group_open = end.is_none();
            } else {
                names.extend(group_names(after).into_iter().take(1));
            }
            rest = after;
        }
        for name in names {
            if siblings.contains(&name) {
                refs.entry(name).or_insert(i + 1);
            }
        }
    }
    refs
}

/// Lines a file of `src/cli/` stays under.
const CLI_MAX_LINES: usize = 160;

/// The modules of `src/cli/` (files and folders, `mod.rs` left out).
fn cli_modules() -> BTreeSet<String> {
    let dir = src().join("cli");
    let mut out = BTreeSet::new();
    for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = e.unwrap().path();
        let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
        if stem != "mod" && (p.is_dir() || p.extension().is_some_and(|e| e == "rs")) {
            out.insert(stem);
        }
    }
    out
}

/// What breaks the thin command line rule in the cli file `rel` (relative to `src/cli/`) with
/// `text`: too many lines, or a reference to another cli module than `args` (`super::X`,
/// `super::super::X`, `crate::cli::X`; in `mod.rs`, a `use X::..` of a child).
fn thin_cli_violations(rel: &str, text: &str, modules: &BTreeSet<String>) -> Vec<String> {
    let mut out = Vec::new();
    let lines = text.lines().count();
    if lines >= CLI_MAX_LINES {
        out.push(format!(
            "{rel}: {lines} lines (at most {})",
            CLI_MAX_LINES - 1
        ));
    }
    let own = rel.trim_end_matches(".rs").split('/').next().unwrap_or("");
    let text = if rel == "mod.rs" {
        // the parent names its children without `super::`; only its `use`s import
        (text.lines())
            .map(
                |l| match code(l).trim_start().strip_prefix("pub(crate) use ") {
                    Some(rest) => format!("super::{rest}"),
                    None => match code(l).trim_start().strip_prefix("use ") {
                        Some(rest) => format!("super::{rest}"),
                        None => String::new(),
                    },
                },
            )
            .collect::<Vec<_>>()
            .join("\n")
    } else {
        text.replace("crate::cli::", "super::")
    };
    for (name, line) in sibling_refs(&text, modules) {
        if name != "args" && name != own {
            out.push(format!(
                "{rel}:{line}: refers to cli module `{name}` (only `args` is shared)"
            ));
        }
    }
    out
}

/// The first segment of each path in a `use` group's text (`a, b::c, self` -> a, b, self).
fn group_names(group: &str) -> Vec<String> {
    group
        .split(',')
        .map(|p| {
            p.trim()
                .trim_start_matches('{')
                .chars()
                .take_while(|ch| ch.is_alphanumeric() || *ch == '_')
                .collect::<String>()
        })
        .filter(|n| !n.is_empty())
        .collect()
}

/// The module files of `src/encode/kernels/` (by module name, `mod.rs` left out: it is the
/// parent that may use every child).
fn kernel_files() -> BTreeMap<String, PathBuf> {
    let dir = src().join("encode").join("kernels");
    rust_files(&dir)
        .into_iter()
        .filter(|p| p.parent() == Some(dir.as_path()))
        .filter_map(|p| {
            let name = p.file_stem()?.to_str()?.to_string();
            (name != "mod").then_some((name, p))
        })
        .collect()
}

/// The rule's violations: an ISA file referring to a sibling other than `cpu` / `common`, or
/// `cpu` / `common` referring to any sibling, as `file:line: message` lines.
fn dependency_violations(files: &BTreeMap<String, String>) -> Vec<String> {
    let siblings: BTreeSet<String> = files.keys().cloned().collect();
    let mut bad = Vec::new();
    for (name, text) in files {
        let allowed: &[&str] = if ISA_FILES.contains(&name.as_str()) {
            &ISA_MAY_USE
        } else if ISA_MAY_USE.contains(&name.as_str()) {
            &[]
        } else {
            continue;
        };
        for (used, line) in sibling_refs(text, &siblings) {
            if used != *name && !allowed.contains(&used.as_str()) {
                bad.push(format!(
                    "src/encode/kernels/{name}.rs:{line}: refers to sibling `{used}` \
                     (may refer to: {allowed:?})"
                ));
            }
        }
    }
    bad
}

/// A cycle among the files' sibling references, if any (as the files on it).
fn find_cycle(files: &BTreeMap<String, String>) -> Option<Vec<String>> {
    let siblings: BTreeSet<String> = files.keys().cloned().collect();
    let edges: BTreeMap<&String, Vec<String>> = files
        .iter()
        .map(|(n, t)| {
            let to = sibling_refs(t, &siblings)
                .into_keys()
                .filter(|u| u != n)
                .collect();
            (n, to)
        })
        .collect();
    // depth-first search with the path on a stack
    fn visit(
        n: &str,
        edges: &BTreeMap<&String, Vec<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == n) {
            let mut cycle = path[i..].to_vec();
            cycle.push(n.to_string());
            return Some(cycle);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_string());
        for m in edges.get(&n.to_string()).into_iter().flatten() {
            if let Some(c) = visit(m, edges, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for n in files.keys() {
        if let Some(c) = visit(n, &edges, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}

/// The command line only parses flags, makes one library call and prints: every file of
/// `src/cli/` is under [`CLI_MAX_LINES`] lines and names no other
/// cli module than `args`, the flag groups and helpers they share.
#[test]
fn the_command_line_is_thin() {
    let dir = src().join("cli");
    let modules = cli_modules();
    assert!(
        modules.contains("args") && modules.contains("score"),
        "{modules:?}"
    );
    let mut bad = Vec::new();
    for p in rust_files(&dir) {
        let rel = p
            .strip_prefix(&dir)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        bad.extend(thin_cli_violations(&rel, &read(&p), &modules));
    }
    assert!(
        bad.is_empty(),
        "the command line is not thin:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_thin_command_line_check_sees_what_breaks_it() {
    let modules: BTreeSet<String> = ["args", "score", "search", "topics"]
        .map(String::from)
        .into();
    let ok = "use super::args::{bar, EncoderArgs};\nuse crate::cli::args::spinner;\nfn f() {}\n";
    assert!(thin_cli_violations("topics.rs", ok, &modules).is_empty());
    let bad = "use super::{args::bar, search};\n// super::score in a comment\nfn f() {\n    crate::cli::score::cmd_score(a);\n}\n";
    assert_eq!(
        thin_cli_violations("topics.rs", bad, &modules),
        vec![
            "topics.rs:4: refers to cli module `score` (only `args` is shared)",
            "topics.rs:1: refers to cli module `search` (only `args` is shared)",
        ]
    );
    let nested = "use super::super::search::x;\n";
    assert_eq!(
        thin_cli_violations("args/columns.rs", nested, &modules).len(),
        1
    );
    let parent = "mod score;\npub(crate) use args::{bar, EncoderArgs};\nuse search::x;\nfn run() { score::cmd_score(a) }\n";
    assert_eq!(
        thin_cli_violations("mod.rs", parent, &modules),
        vec!["mod.rs:3: refers to cli module `search` (only `args` is shared)"]
    );
    let long = "fn f() {}\n".repeat(CLI_MAX_LINES);
    assert_eq!(thin_cli_violations("score.rs", &long, &modules).len(), 1);
}

#[test]
fn kernels_isa_files_import_only_cpu_and_common() {
    let files: BTreeMap<String, String> = kernel_files()
        .into_iter()
        .map(|(n, p)| (n, read(&p)))
        .collect();
    for f in ISA_FILES.iter().chain(&ISA_MAY_USE) {
        assert!(
            files.contains_key(*f),
            "src/encode/kernels/{f}.rs is missing"
        );
    }
    let bad = dependency_violations(&files);
    assert!(
        bad.is_empty(),
        "kernels dependency rule broken:\n{}",
        bad.join("\n")
    );
    assert_eq!(
        find_cycle(&files),
        None,
        "a cycle among src/encode/kernels/*.rs"
    );
}

#[test]
fn the_dependency_check_sees_every_form_of_reference() {
    let file = |t: &str| t.to_string();
    let mut files = BTreeMap::new();
    files.insert("cpu".into(), file("pub fn f() {}\n"));
    files.insert("common".into(), file("use super::cpu::NR;\n"));
    files.insert("int8".into(), file("use super::{avx2, cpu};\n"));
    files.insert(
        "avx2".into(),
        file(
            "use super::{\n    common::Top,\n    int8::QLinear,\n};\n// super::amx in a comment\n",
        ),
    );
    files.insert(
        "avx512".into(),
        file("fn g() { super::avx2::tile(); }\nmod tests {\n    use super::super::packed::rnd;\n    use super::*;\n}\n"),
    );
    files.insert(
        "amx".into(),
        file("use crate::encode::kernels::int8::QTile;\n"),
    );
    files.insert("packed".into(), file("use super::avx512;\n"));
    let bad = dependency_violations(&files);
    let says = |s: &str| bad.iter().any(|b| b.contains(s));
    assert!(says("common.rs:1: refers to sibling `cpu`"), "{bad:?}");
    assert!(says("avx2.rs:3: refers to sibling `int8`"), "{bad:?}");
    assert!(says("avx512.rs:1: refers to sibling `avx2`"), "{bad:?}");
    assert!(says("avx512.rs:3: refers to sibling `packed`"), "{bad:?}");
    assert!(says("amx.rs:1: refers to sibling `int8`"), "{bad:?}");
    assert!(!says("amx` "), "comments are not references: {bad:?}");
    assert_eq!(bad.len(), 5, "{bad:?}");
    // int8 -> avx2 -> int8
    let cycle = find_cycle(&files).expect("the cycle int8 -> avx2 -> int8");
    assert!(cycle.contains(&"int8".to_string()) && cycle.contains(&"avx2".to_string()));
}

/// `file:line` of every `unsafe fn` whose doc comment has no `# Safety` section.
fn unsafe_fns_without_safety(path: &str, text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut bad = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let c = code(line);
        if !(c.contains("unsafe fn ") || c.trim_end().ends_with("unsafe fn")) {
            continue;
        }
        let mut has = false;
        let mut j = i;
        while j > 0 {
            let above = lines[j - 1].trim_start();
            if above.starts_with("///") || above.starts_with("#[") || above.starts_with("//!") {
                has |= above.starts_with("///") && above.contains("# Safety");
                j -= 1;
            } else {
                break;
            }
        }
        if !has {
            bad.push(format!("{path}:{}: {}", i + 1, line.trim()));
        }
    }
    bad
}

/// `file:line` of every `unsafe` block with no `// SAFETY:` comment in the comment lines
/// right above it (or above the statement it opens, within three lines).
fn unsafe_blocks_without_safety(path: &str, text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut bad = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let c = code(line);
        if !c.contains("unsafe {") {
            continue;
        }
        let mut has = line.contains("// SAFETY:");
        let mut j = i;
        let mut code_lines = 0;
        while j > 0 && !has && code_lines <= 3 {
            let above = lines[j - 1].trim_start();
            if above.starts_with("//") {
                has |= above.starts_with("// SAFETY:");
            } else if above.starts_with("#[") {
            } else {
                code_lines += 1;
                if above.ends_with(';') || above.ends_with('}') || above.ends_with('{') {
                    break;
                }
            }
            j -= 1;
        }
        if !has {
            bad.push(format!("{path}:{}: {}", i + 1, line.trim()));
        }
    }
    bad
}

#[test]
fn every_unsafe_fn_in_src_has_a_safety_section() {
    let mut bad = Vec::new();
    let mut seen = 0;
    for p in rust_files(&src()) {
        let text = read(&p);
        seen += text
            .lines()
            .filter(|l| code(l).contains("unsafe fn "))
            .count();
        let rel = p
            .strip_prefix(src().parent().unwrap())
            .unwrap()
            .display()
            .to_string();
        bad.extend(unsafe_fns_without_safety(&rel, &text));
    }
    assert!(
        seen > 10,
        "found only {seen} unsafe fns: is src/ where it was?"
    );
    assert!(
        bad.is_empty(),
        "unsafe fn without `# Safety`:\n{}",
        bad.join("\n")
    );
}

#[test]
fn every_unsafe_block_in_src_says_why_it_is_sound() {
    let mut bad = Vec::new();
    for p in rust_files(&src()) {
        let rel = p
            .strip_prefix(src().parent().unwrap())
            .unwrap()
            .display()
            .to_string();
        bad.extend(unsafe_blocks_without_safety(&rel, &read(&p)));
    }
    assert!(
        bad.is_empty(),
        "unsafe block without `// SAFETY:`:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_safety_checks_find_what_is_missing() {
    let text = "/// Adds.\n///\n/// # Safety\n/// `p` valid.\n#[inline]\nunsafe fn ok(p: *const u8) {}\n\
                /// No contract.\n#[cfg(test)]\nunsafe fn bad() {}\n\
                fn f() {\n    // SAFETY: checked above.\n    unsafe { ok(p) };\n    let x = 1;\n    unsafe { bad() };\n}\n";
    assert_eq!(
        unsafe_fns_without_safety("x.rs", text),
        vec!["x.rs:9: unsafe fn bad() {}"]
    );
    assert_eq!(
        unsafe_blocks_without_safety("x.rs", text),
        vec!["x.rs:14: unsafe { bad() };"]
    );
}

/// The dependency rules between the crate's modules (ARCHITECTURE.md, "Invariants").
mod layers {
    use super::common;
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
    fn alerts_sit_above_the_report() {
        only_imports(
            "alerts",
            &[
                "error",
                "record",
                "report",
                "severity",
                "text",
                "workspace",
                "Error",
                "Result",
            ],
        );
        for f in sources("report") {
            assert!(
                !crate_modules(&f).contains("alerts"),
                "{} imports crate::alerts: the report knows nothing of delivery",
                f.display()
            );
        }
    }

    #[test]
    fn cluster_imports_nothing_of_the_pipeline() {
        only_imports("cluster.rs", &["error", "rng", "Error", "Result"]);
        only_imports("cluster", &["error", "rng", "Error", "Result"]);
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
            "\"report.xlsx\"",
            "\"report_tables\"",
            "join(\"index\")",
            "join(\"topics\")",
            "join(\"alerts\")",
            "\"delivered.jsonl\"",
            "\"served.jsonl\"",
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
                // training goes through vocmine::training
                "train_head(",
                "train_prototype_head(",
                "finetune::finetune(",
                "hidden_states(",
                "hidden_states_and_embeddings(",
                ".save(&",
                "read_labelled(",
                "embed_set(",
            ] {
                assert!(
                    !text.contains(banned),
                    "{} calls {banned}: that belongs in the library",
                    f.display()
                );
            }
        }
    }
}
