//! The crate's modules depend on each other in one direction only: no import cycles, and the hub knows no
//! transport. Read from the source, so that a new `use crate::…` that breaks the layering fails here with
//! the path it took, rather than being found by a reader later.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The top-level modules of `src/` (files and folders), without the crate roots.
fn modules(src: &Path) -> BTreeSet<String> {
    std::fs::read_dir(src)
        .expect("src/ is readable")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let name = name.strip_suffix(".rs").map(str::to_owned).unwrap_or(name);
            (name != "lib" && name != "main" && name != "bin").then_some(name)
        })
        .collect()
}

/// Every `.rs` file under `path`.
fn files(path: &Path) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_owned()];
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
    out
}

/// The source without its comments (doc comments included: a link in a comment is not a dependency).
fn code(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            // A `//` inside a string (a URL) is kept; the strings here that hold one have no quote before it.
            Some(i) if !line[..i].contains('"') => &line[..i],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Module → the other modules it names as `crate::x`.
fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let names = modules(src);
    let mut out = BTreeMap::new();
    for module in &names {
        let mut uses = BTreeSet::new();
        let root = if src.join(module).is_dir() { src.join(module) } else { src.join(format!("{module}.rs")) };
        for file in files(&root) {
            let text = code(&std::fs::read_to_string(&file).expect("readable source"));
            for (i, _) in text.match_indices("crate::") {
                let rest = &text[i + "crate::".len()..];
                let used: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                if names.contains(&used) && used != *module {
                    uses.insert(used);
                }
            }
            // `use crate::{a, b}` names several at once.
            for (i, _) in text.match_indices("crate::{") {
                let rest = &text[i + "crate::{".len()..];
                let list = &rest[..rest.find('}').unwrap_or(0)];
                for item in list.split(',') {
                    let used = item.trim().split("::").next().unwrap_or("").to_owned();
                    if names.contains(&used) && used != *module {
                        uses.insert(used);
                    }
                }
            }
        }
        out.insert(module.clone(), uses);
    }
    out
}

/// A cycle of the graph, if there is one, as the path that closes it.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| n == node) {
            let mut found = path[start..].to_vec();
            found.push(node.to_owned());
            return Some(found);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, graph, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn the_modules_have_no_import_cycle() {
    let graph = graph(&src());
    assert!(graph.contains_key("hub") && graph.contains_key("ws"), "the modules were found: {graph:?}");
    if let Some(cycle) = cycle(&graph) {
        panic!("an import cycle: {}\nthe whole graph: {graph:#?}", cycle.join(" → "));
    }
}

#[test]
fn the_hub_and_the_protocol_know_no_transport_and_no_adapter() {
    let graph = graph(&src());
    for (module, forbidden) in [
        ("protocol", &["adapter", "config", "http", "hub", "monitor", "server", "webhook", "ws"][..]),
        ("monitor", &["adapter", "http", "hub", "server", "webhook", "ws"][..]),
        ("webhook", &["adapter", "http", "hub", "server", "ws"][..]),
        ("hub", &["adapter", "http", "server", "ws"][..]),
        ("ws", &["adapter", "http", "server"][..]),
        ("adapter", &["http", "server", "ws"][..]),
    ] {
        let uses = &graph[module];
        let wrong: Vec<_> = forbidden.iter().filter(|f| uses.contains(**f)).collect();
        assert!(wrong.is_empty(), "{module} depends on {wrong:?} (it uses {uses:?})");
    }
}

#[test]
fn the_checker_finds_a_cycle_when_there_is_one() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a".to_owned(), ["b".to_owned()].into()),
        ("b".to_owned(), ["c".to_owned()].into()),
        ("c".to_owned(), ["a".to_owned()].into()),
        ("d".to_owned(), BTreeSet::new()),
    ]
    .into();
    assert_eq!(cycle(&graph), Some(vec!["a".into(), "b".into(), "c".into(), "a".into()]));
    let fine: BTreeMap<String, BTreeSet<String>> =
        [("a".to_owned(), ["b".to_owned()].into()), ("b".to_owned(), BTreeSet::new())].into();
    assert_eq!(cycle(&fine), None);
}

#[test]
fn comments_do_not_count_as_dependencies() {
    assert_eq!(code("use crate::hub; // see crate::server\n/// [`crate::http::router`]"), "use crate::hub; \n");
}
