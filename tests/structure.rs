//! The structure the code is meant to keep, checked on the source itself:
//! - no cycle between two top-level modules of the main crate (a feature depends downward:
//!   `server` knows no feature, `app` and `cli` are known by none);
//! - no function outside tests longer than 120 lines (long ones split into named phases).
//!
//! Each check also runs on a small made-up tree that breaks it, so a check that can no longer
//! fail is noticed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_FN_LINES: usize = 120;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// The code of a file without comments, and without its `#[cfg(test)]` tail.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let text = text.split("#[cfg(test)]").next().unwrap_or("");
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Top-level module → the top-level modules it names (`crate::x`, `use crate::{x, ...}`).
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut modules = BTreeMap::new();
    for e in std::fs::read_dir(src).unwrap().flatten() {
        let p = e.path();
        let name = p.file_stem().unwrap().to_string_lossy().into_owned();
        if name == "lib" || name == "main" {
            continue;
        }
        let files = if p.is_dir() { rust_files(&p) } else { vec![p] };
        modules.insert(name, files);
    }
    let names: BTreeSet<String> = modules.keys().cloned().collect();
    let mut graph = BTreeMap::new();
    for (name, files) in &modules {
        let mut deps = BTreeSet::new();
        for f in files {
            let code = code(f);
            for (i, _) in code.match_indices("crate::") {
                let rest = &code[i + "crate::".len()..];
                if let Some(group) = rest.strip_prefix('{') {
                    let group = &group[..group.find('}').unwrap_or(group.len())];
                    for item in group.split(',') {
                        let first = item.trim().split("::").next().unwrap_or("").trim();
                        deps.insert(first.to_owned());
                    }
                } else {
                    let ident: String = rest
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    deps.insert(ident);
                }
            }
        }
        deps.retain(|d| names.contains(d) && d != name);
        graph.insert(name.clone(), deps);
    }
    graph
}

/// A cycle of the graph, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == n) {
            let mut cycle = path[i..].to_vec();
            cycle.push(n.to_owned());
            return Some(cycle);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_owned());
        for d in graph.get(n).into_iter().flatten() {
            if let Some(c) = visit(d, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for n in graph.keys() {
        if let Some(c) = visit(n, graph, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}

/// Functions longer than [`MAX_FN_LINES`]: `(file, name, lines)`.
fn long_functions(dirs: &[PathBuf]) -> Vec<(String, String, usize)> {
    let mut found = Vec::new();
    for dir in dirs {
        for f in rust_files(dir) {
            let code = code(&f);
            let lines: Vec<&str> = code.lines().collect();
            for (i, line) in lines.iter().enumerate() {
                let mut t = line.trim_start();
                for prefix in [
                    "pub(crate) ",
                    "pub(super) ",
                    "pub ",
                    "const ",
                    "async ",
                    "unsafe ",
                ] {
                    t = t.strip_prefix(prefix).unwrap_or(t);
                }
                let Some(rest) = t.strip_prefix("fn ") else {
                    continue;
                };
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                let (mut depth, mut opened) = (0i64, false);
                for (j, l) in lines[i..].iter().enumerate() {
                    if !opened && l.trim_end().ends_with(';') && !l.contains('{') {
                        break;
                    }
                    for c in strip_literals(l).chars() {
                        match c {
                            '{' => {
                                depth += 1;
                                opened = true;
                            }
                            '}' => depth -= 1,
                            _ => {}
                        }
                    }
                    if opened && depth <= 0 {
                        if j + 1 > MAX_FN_LINES {
                            found.push((f.display().to_string(), name.clone(), j + 1));
                        }
                        break;
                    }
                }
            }
        }
    }
    found
}

/// A line without its string and char literals (their braces are not code).
fn strip_literals(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars().peekable();
    let mut in_str = false;
    while let Some(c) = chars.next() {
        match (in_str, c) {
            (true, '\\') => {
                chars.next();
            }
            (true, '"') => in_str = false,
            (true, _) => {}
            (false, '"') => in_str = true,
            (false, '\'') => {
                // A char literal like '{' (lifetimes have no closing quote two chars on).
                let mut ahead = chars.clone();
                let (a, b) = (ahead.next(), ahead.next());
                if b == Some('\'') && a.is_some() {
                    chars.next();
                    chars.next();
                } else {
                    out.push(c);
                }
            }
            (false, _) => out.push(c),
        }
    }
    out
}

#[test]
fn top_level_modules_form_no_cycle() {
    let graph = module_graph(&root().join("src"));
    assert!(graph.contains_key("server") && graph.contains_key("api"));
    if let Some(cycle) = find_cycle(&graph) {
        panic!(
            "the main crate's modules form a cycle: {}",
            cycle.join(" -> ")
        );
    }
    for feature in ["api", "ingest", "replay", "web", "server"] {
        let deps = &graph[feature];
        for top in ["app", "cli"] {
            assert!(!deps.contains(top), "{feature} depends on {top}");
        }
    }
    for feature in ["api", "ingest", "web", "replay"] {
        assert!(
            !graph["server"].contains(feature),
            "the server layer depends on the feature {feature}"
        );
    }
}

#[test]
fn no_function_outside_tests_is_longer_than_120_lines() {
    let r = root();
    let dirs = [
        r.join("src"),
        r.join("events/src"),
        r.join("projections/src"),
        r.join("bench"),
    ];
    let long = long_functions(&dirs);
    assert!(long.is_empty(), "split these into their phases: {long:#?}");
}

#[test]
fn the_checks_find_what_they_look_for() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("a")).unwrap();
    std::fs::write(src.join("lib.rs"), "pub mod a; pub mod b;").unwrap();
    std::fs::write(src.join("a/mod.rs"), "use crate::{b, c::X};\n").unwrap();
    std::fs::write(
        src.join("b.rs"),
        "// crate::c in a comment is no dependency\nfn f() { crate::a::g() }\n",
    )
    .unwrap();
    std::fs::write(src.join("c.rs"), "").unwrap();
    let graph = module_graph(&src);
    assert_eq!(graph["a"], BTreeSet::from(["b".to_owned(), "c".to_owned()]));
    assert_eq!(graph["b"], BTreeSet::from(["a".to_owned()]));
    assert!(find_cycle(&graph).is_some());

    let body = "    let x = \"}\";\n".repeat(MAX_FN_LINES);
    std::fs::write(
        src.join("c.rs"),
        format!("pub async fn long() {{\n{body}}}\nfn short() {{ '{{'; }}\n"),
    )
    .unwrap();
    let long = long_functions(&[src]);
    assert_eq!(long.len(), 1, "{long:?}");
    assert_eq!(long[0].1, "long");
    assert_eq!(long[0].2, MAX_FN_LINES + 2);
}
