//! The layering of docs/ARCHITECTURE.md, read off the source: which top-level module of
//! `src/` names which (`crate::x`). Requests enter at `api`, rules live in `domain`, the
//! database is touched in `store`, and nothing depends back up that chain.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type Graph = BTreeMap<String, BTreeSet<String>>;

/// Each top-level module and the other top-level modules its files name.
fn module_graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph = Graph::new();
    let mut files = vec![src.clone()];
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let relative = path.strip_prefix(&src).unwrap();
        let top = relative.iter().next().unwrap().to_string_lossy();
        let top = top.trim_end_matches(".rs").to_string();
        if top == "main" || top == "lib" || path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let named = graph.entry(top.clone()).or_default();
        for (at, _) in text.match_indices("crate::") {
            for module in named_after(&text[at + "crate::".len()..]) {
                if module != top {
                    named.insert(module.to_string());
                }
            }
        }
    }
    graph
}

/// The top-level modules `crate::` names in `rest`: `x` in `crate::x::…`, and each of `a`,
/// `b` in `crate::{a, b::c}`.
fn named_after(rest: &str) -> Vec<&str> {
    fn leading(item: &str) -> Option<&str> {
        let item = item.trim_start();
        let end = item
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(item.len());
        (end > 0).then(|| &item[..end])
    }
    let Some(group) = rest.strip_prefix('{') else {
        return leading(rest).into_iter().collect();
    };
    // The group's items at its own depth, up to its closing brace.
    let (mut depth, mut start, mut items) = (0, 0, Vec::new());
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth > 0 => depth -= 1,
            '}' | ',' if depth == 0 => {
                items.push(&group[start..i]);
                start = i + 1;
                if c == '}' {
                    break;
                }
            }
            _ => {}
        }
    }
    items.into_iter().filter_map(leading).collect()
}

/// A cycle through `from`, if there is one: the modules along it.
fn cycle(graph: &Graph, from: &str) -> Option<Vec<String>> {
    fn walk(
        graph: &Graph,
        at: &str,
        goal: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        for next in graph.get(at).into_iter().flatten() {
            if next == goal {
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(graph, next, goal, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![from.to_string()];
    walk(graph, from, from, &mut path, &mut BTreeSet::new()).then_some(path)
}

#[test]
fn no_module_depends_on_itself_through_others() {
    let graph = module_graph();
    assert!(graph.len() > 10, "the source was read: {graph:?}");
    for module in graph.keys() {
        assert_eq!(cycle(&graph, module), None, "a cycle through {module}");
    }
}

#[test]
fn rules_know_no_io_and_the_store_knows_only_rules() {
    let graph = module_graph();
    let allowed = |module: &str, may: &[&str]| {
        let extra: Vec<_> = graph[module]
            .iter()
            .filter(|m| !may.contains(&m.as_str()))
            .collect();
        assert!(
            extra.is_empty(),
            "{module} names {extra:?}; it may name only {may:?}"
        );
    };
    allowed("domain", &[]);
    allowed("store", &["domain", "config", "clock"]);
    let entering: Vec<_> = graph
        .iter()
        .filter(|(_, named)| named.contains("api"))
        .map(|(module, _)| module.as_str())
        .collect();
    assert_eq!(
        entering,
        ["openapi", "startup"],
        "only wiring names the HTTP layer"
    );
}

#[test]
fn grouped_imports_name_each_module() {
    assert_eq!(named_after("store::{self, Db};"), ["store"]);
    assert_eq!(
        named_after("{api, demo::run, openapi};"),
        ["api", "demo", "openapi"]
    );
    assert_eq!(named_after("{a::{b, c}, d};"), ["a", "d"]);
    assert!(named_after("{}").is_empty());
}

#[test]
fn the_cycle_finder_finds_a_cycle() {
    let graph: Graph = [("a", "b"), ("b", "c"), ("c", "a")]
        .into_iter()
        .map(|(from, to)| (from.to_string(), BTreeSet::from([to.to_string()])))
        .collect();
    assert_eq!(
        cycle(&graph, "a"),
        Some(vec!["a".into(), "b".into(), "c".into()])
    );
    let mut open = graph.clone();
    open.remove("c");
    assert_eq!(cycle(&open, "a"), None);
}
