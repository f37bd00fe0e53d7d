//! The shape of `src/`: no cycle between top-level modules, and the pure core imports no edge.
//!
//! Top-level modules are read from the source text (`crate::x` paths, `use crate::{x, y}`
//! groups), so the test needs no build of the crate's internals and names the file at fault.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Modules that decide things without I/O. They may import only each other.
const CORE: &[&str] = &[
    "barman",
    "baseline",
    "catalog",
    "checks",
    "cnpg",
    "duration",
    "exit",
    "hash",
    "lsn",
    "outcome",
    "preflight",
    "report",
    "scenario",
    "target",
    "time",
];

/// Crates and paths that do I/O: none of them may appear in a core module.
const IO: &[&str] = &[
    "tokio::",
    "tokio_postgres::",
    "kube::",
    "k8s_openapi::",
    "object_store::",
    "reqwest::",
    "hyper::",
    "std::process",
    "std::net",
];

/// Files of core modules that are edges by design (they read the store).
const CORE_EDGE_FILES: &[&str] = &[];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`src/catalog/wal.rs` → `catalog`).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main")).then(|| name.to_string())
}

/// Source without `//` comments, so prose that names a module is not an import.
fn code_of(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident_at(s: &str) -> String {
    s.chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// Every top-level module named after `crate::`, including inside `use crate::{a, b::c}`.
fn crate_refs(code: &str) -> BTreeSet<String> {
    let mut refs = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut item_start = true;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => item_start = true,
                    c if c.is_whitespace() => {}
                    _ if item_start && depth == 1 => {
                        refs.insert(ident_at(&group[j..]));
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            refs.insert(ident_at(rest));
        }
    }
    refs.retain(|r| !r.is_empty() && r != "self");
    refs
}

struct Graph {
    /// module → module → the files that make the arrow.
    edges: BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
    io: Vec<String>,
}

fn read_graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph = Graph {
        edges: BTreeMap::new(),
        io: Vec::new(),
    };
    for file in files {
        let Some(module) = module_of(&src, &file) else {
            continue;
        };
        let rel = file.strip_prefix(&src).unwrap().display().to_string();
        let code = code_of(&std::fs::read_to_string(&file).unwrap());
        let node = graph.edges.entry(module.clone()).or_default();
        for r in crate_refs(&code) {
            if r != module {
                node.entry(r).or_default().insert(rel.clone());
            }
        }
        if CORE.contains(&module.as_str()) && !CORE_EDGE_FILES.contains(&rel.as_str()) {
            for io in IO {
                if code.contains(io) {
                    graph.io.push(format!("src/{rel} uses {io}"));
                }
            }
        }
    }
    graph
}

/// Strongly connected components with more than one module (Tarjan).
fn cycles(edges: &BTreeMap<String, BTreeMap<String, BTreeSet<String>>>) -> Vec<Vec<String>> {
    struct State<'a> {
        edges: &'a BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.edges.get(v).into_iter().flat_map(|m| m.keys()) {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low[v];
                s.low.insert(v, lv.min(lw));
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low[v];
                s.low.insert(v, lv.min(iw));
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.out.push(component);
            }
        }
    }
    let mut s = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in edges.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}

#[test]
fn no_cycle_between_top_level_modules() {
    let graph = read_graph();
    let found = cycles(&graph.edges);
    let explain: Vec<String> = found
        .iter()
        .map(|c| {
            let arrows: Vec<String> = c
                .iter()
                .flat_map(|from| {
                    graph.edges[from]
                        .iter()
                        .filter(|(to, _)| c.contains(to))
                        .map(move |(to, files)| {
                            let files: Vec<&str> = files.iter().map(String::as_str).collect();
                            format!("  {from} -> {to} ({})", files.join(", "))
                        })
                })
                .collect();
            format!("cycle through {}:\n{}", c.join(", "), arrows.join("\n"))
        })
        .collect();
    assert!(found.is_empty(), "{}", explain.join("\n"));
}

#[test]
fn the_core_imports_no_edge() {
    let graph = read_graph();
    let mut bad: Vec<String> = graph.io.clone();
    for core in CORE {
        for (to, files) in graph.edges.get(*core).into_iter().flatten() {
            if !CORE.contains(&to.as_str()) {
                let files: Vec<&str> = files.iter().map(String::as_str).collect();
                bad.push(format!(
                    "core {core} imports edge {to} ({})",
                    files.join(", ")
                ));
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn the_reader_sees_grouped_imports() {
    let refs = crate_refs("use crate::{a::b, c, d::{e, f}};\nlet x = crate::g::h();");
    let expected: BTreeSet<String> = ["a", "c", "d", "g"].map(String::from).into();
    assert_eq!(refs, expected);
    let edges: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> =
        [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")]
            .into_iter()
            .fold(BTreeMap::new(), |mut m, (f, t)| {
                m.entry(f.to_string())
                    .or_insert_with(BTreeMap::new)
                    .entry(t.to_string())
                    .or_insert_with(BTreeSet::new);
                m
            });
    assert_eq!(cycles(&edges), vec![vec!["a", "b", "c"]]);
}

/// Functions of `code` as (name, first line, length in lines), read from rustfmt's layout: a
/// `fn` line and the first later line at its indentation that closes it.
fn functions(code: &str) -> Vec<(String, usize, usize)> {
    let lines: Vec<&str> = code.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        let Some(at) = trimmed.find("fn ") else {
            continue;
        };
        let head = &trimmed[..at];
        let is_fn = head.is_empty()
            || head.split_whitespace().all(|w| {
                matches!(w, "pub" | "async" | "const" | "unsafe" | "extern")
                    || w.starts_with("pub(")
            });
        if !is_fn || trimmed.ends_with(';') {
            continue;
        }
        let name = ident_at(&trimmed[at + 3..]);
        let end = lines[i + 1..]
            .iter()
            .position(|l| {
                let t = l.trim_start();
                l.len() - t.len() == indent && t.starts_with('}')
            })
            .map(|p| i + 1 + p);
        if let Some(end) = end {
            out.push((name, i + 1, end - i + 1));
        }
    }
    out
}

const MAX_FILE_LINES: usize = 600;
const MAX_FN_LINES: usize = 80;

#[test]
fn files_and_functions_stay_small() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut bad = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let rel = file.strip_prefix(&src).unwrap().display().to_string();
        let count = text.lines().count();
        if count > MAX_FILE_LINES {
            bad.push(format!(
                "src/{rel}: {count} lines (at most {MAX_FILE_LINES})"
            ));
        }
        for (name, line, len) in functions(&text) {
            if len > MAX_FN_LINES {
                bad.push(format!(
                    "src/{rel}:{line}: fn {name} is {len} lines (at most {MAX_FN_LINES})"
                ));
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn the_reader_measures_functions() {
    let code = "pub async fn a(\n    x: u8,\n) {\n    if x {\n    }\n}\n\nfn b() {}\n";
    assert_eq!(functions(code), vec![("a".to_string(), 1, 6)]);
}
