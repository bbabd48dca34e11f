//! The crate's module structure, read from its source: no import circle between sibling modules
//! at any level, and no module of a lower layer importing one above it (the pure core imports
//! nothing but the core; the wire layer and the engine stay below the commands).
//!
//! An edge is every `crate::…` or `super::…` path in code that is not test code (`use` trees with
//! braces included), resolved to the deepest module that exists as a file. Comments and string
//! literals are not code, and `#[cfg(test)]` items and `tests.rs` files are left out: a test may
//! reach anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::project::manifest_dir;

type ModPath = Vec<String>;

/// A layer: its top-level modules, and the layers it may import besides its own. `None`: not
/// constrained beyond having no circles.
struct Layer {
    name: &'static str,
    modules: &'static [&'static str],
    may_import: Option<&'static [&'static str]>,
}

/// ARCHITECTURE's floor order: entry → engine → core ; wire ; sandbox ; output.
const LAYERS: &[Layer] = &[
    Layer {
        name: "entry",
        modules: &["cli", "commands", "embedded", "input"],
        may_import: None,
    },
    Layer {
        name: "engine",
        modules: &["engine"],
        may_import: Some(&["core", "wire"]),
    },
    Layer {
        name: "core",
        modules: &[
            "access",
            "boundary",
            "cloud",
            "clock",
            "config",
            "dice",
            "hint",
            "policy",
            "render",
            "resources",
        ],
        may_import: Some(&[]),
    },
    Layer {
        name: "wire",
        modules: &["azure", "dataplane", "oauth"],
        may_import: Some(&["core"]),
    },
    Layer {
        name: "sandbox",
        modules: &["sandbox"],
        may_import: None,
    },
    Layer {
        name: "output",
        modules: &["output"],
        may_import: None,
    },
];

/// Circles that exist today and are being taken apart. Each must still be found, so that this
/// list only ever shrinks: remove an entry once its circle is gone.
const KNOWN_CIRCLES: &[&str] = &[];

/// The module path of a file under `src`: `a/b.rs` and `a/b/mod.rs` are both `a::b`; `lib.rs`
/// and `main.rs` are the root.
fn module_of(file: &str) -> ModPath {
    let stem = file.strip_suffix(".rs").unwrap_or(file);
    let mut parts: ModPath = stem.split('/').map(str::to_owned).collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

fn is_test_file(file: &str) -> bool {
    let parts: Vec<&str> = file.split('/').collect();
    let name = parts.last().copied().unwrap_or("");
    name == "tests.rs" || name.ends_with("_tests.rs") || parts[..parts.len() - 1].contains(&"tests")
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The code of a file without comments, string and character literals (each replaced by a
/// space), so that a URL or a doc link never counts as an import.
fn strip(source: &str) -> Vec<char> {
    let s: Vec<char> = source.chars().collect();
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    let at = |i: usize| s.get(i).copied().unwrap_or('\0');
    while i < s.len() {
        let c = s[i];
        let prev = if i == 0 { ' ' } else { s[i - 1] };
        if c == '/' && at(i + 1) == '/' {
            while i < s.len() && s[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < s.len() {
                if s[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if s[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if (c == 'r' || (c == 'b' && at(i + 1) == 'r')) && !is_ident(prev) {
            // Possibly a raw string: r"…", r#"…"#, br"…".
            let start = i;
            let mut j = if c == 'b' { i + 2 } else { i + 1 };
            let mut hashes = 0;
            while at(j) == '#' {
                hashes += 1;
                j += 1;
            }
            if at(j) == '"' {
                j += 1;
                loop {
                    if j >= s.len() {
                        break;
                    }
                    if s[j] == '"' && (1..=hashes).all(|k| at(j + k) == '#') {
                        j += 1 + hashes;
                        break;
                    }
                    j += 1;
                }
                i = j;
                out.push(' ');
            } else {
                out.push(s[start]);
                i = start + 1;
            }
        } else if c == '"' {
            i += 1;
            while i < s.len() && s[i] != '"' {
                i += if s[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push(' ');
        } else if c == '\'' && (at(i + 1) == '\\' || at(i + 2) == '\'') {
            // A character literal ('x', '\'', '\u{1F600}'); a lifetime ('a) has no closing quote.
            i += if at(i + 1) == '\\' { 3 } else { 2 };
            while i < s.len() && s[i] != '\'' {
                i += 1;
            }
            i += 1;
            out.push(' ');
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// `code` without the items marked `#[cfg(test)]`.
fn without_test_items(code: &[char]) -> Vec<char> {
    let marker: Vec<char> = "#[cfg(test)]".chars().collect();
    let mut out = Vec::with_capacity(code.len());
    let mut i = 0;
    while i < code.len() {
        if code[i..].starts_with(&marker) {
            i += marker.len();
            while i < code.len() && code[i] != '{' && code[i] != ';' {
                i += 1;
            }
            if i < code.len() && code[i] == '{' {
                let mut depth = 0;
                while i < code.len() {
                    match code[i] {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
            }
            i += 1;
        } else {
            out.push(code[i]);
            i += 1;
        }
    }
    out
}

fn skip_ws(code: &[char], mut i: usize) -> usize {
    while i < code.len() && code[i].is_whitespace() {
        i += 1;
    }
    i
}

fn double_colon(code: &[char], i: usize) -> Option<usize> {
    let i = skip_ws(code, i);
    (code.get(i) == Some(&':') && code.get(i + 1) == Some(&':')).then_some(i + 2)
}

/// The paths a use tree (or an expression path) names from `i` on: `a::b`, `{a, b::{c, d}}`,
/// `self`, `*`.
fn use_tree(code: &[char], i: usize) -> (Vec<ModPath>, usize) {
    let mut i = skip_ws(code, i);
    match code.get(i) {
        Some('{') => {
            let mut paths = Vec::new();
            i += 1;
            loop {
                i = skip_ws(code, i);
                match code.get(i) {
                    None => return (paths, i),
                    Some('}') => return (paths, i + 1),
                    Some(',') => i += 1,
                    Some(_) => {
                        let (more, next) = use_tree(code, i);
                        paths.extend(more);
                        i = if next == i { i + 1 } else { next };
                    }
                }
            }
        }
        Some(&c) if is_ident(c) => {
            let start = i;
            while i < code.len() && is_ident(code[i]) {
                i += 1;
            }
            let name: String = code[start..i].iter().collect();
            let name = if name == "self" { None } else { Some(name) };
            let (rest, next) = match double_colon(code, i) {
                Some(after) => use_tree(code, after),
                None => (vec![Vec::new()], i),
            };
            let rest = if rest.is_empty() {
                vec![Vec::new()]
            } else {
                rest
            };
            let paths = rest
                .into_iter()
                .map(|tail| name.iter().cloned().chain(tail).collect())
                .collect();
            (paths, next)
        }
        Some('*') => (vec![Vec::new()], i + 1),
        _ => (Vec::new(), i),
    }
}

/// Every module-to-module edge of `files` (path under `src` → source).
fn edges(files: &BTreeMap<String, String>) -> BTreeSet<(ModPath, ModPath)> {
    let mut modules: BTreeSet<ModPath> = BTreeSet::new();
    for file in files.keys() {
        let m = module_of(file);
        for n in 0..=m.len() {
            modules.insert(m[..n].to_vec());
        }
    }
    let resolve = |path: ModPath| -> ModPath {
        let mut n = path.len();
        while n > 0 && !modules.contains(&path[..n]) {
            n -= 1;
        }
        path[..n].to_vec()
    };
    let mut edges = BTreeSet::new();
    for (file, source) in files {
        let me = module_of(file);
        if me.is_empty() || file.starts_with("bin/") || is_test_file(file) {
            continue;
        }
        let code = without_test_items(&strip(source));
        let mut i = 0;
        while i < code.len() {
            let word = ["crate", "super"]
                .into_iter()
                .find(|w| code[i..].starts_with(&w.chars().collect::<Vec<_>>()));
            let boundary = i == 0 || !(is_ident(code[i - 1]) || code[i - 1] == ':');
            let Some(word) =
                word.filter(|w| boundary && !code.get(i + w.len()).copied().is_some_and(is_ident))
            else {
                i += 1;
                continue;
            };
            let mut base: ModPath = Vec::new();
            let mut after = i + word.len();
            if word == "super" {
                let mut ups = 1;
                while let Some(next) = double_colon(&code, after) {
                    let j = skip_ws(&code, next);
                    if code[j..].starts_with(&['s', 'u', 'p', 'e', 'r'])
                        && !code.get(j + 5).copied().is_some_and(is_ident)
                    {
                        ups += 1;
                        after = j + 5;
                    } else {
                        break;
                    }
                }
                if ups > me.len() {
                    i = after;
                    continue;
                }
                base = me[..me.len() - ups].to_vec();
            }
            let Some(tree_at) = double_colon(&code, after) else {
                i = after;
                continue;
            };
            let (paths, next) = use_tree(&code, tree_at);
            for path in paths {
                let target = resolve(base.iter().cloned().chain(path).collect());
                if !target.is_empty() && target != me {
                    edges.insert((me.clone(), target));
                }
            }
            i = next.max(i + 1);
        }
    }
    edges
}

/// The circles among siblings at every level, as `level: a <-> b <-> c`.
fn circles(edges: &BTreeSet<(ModPath, ModPath)>) -> Vec<String> {
    let mut levels: BTreeMap<ModPath, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for (a, b) in edges {
        let common = a.iter().zip(b).take_while(|(x, y)| x == y).count();
        if common < a.len() && common < b.len() {
            levels
                .entry(a[..common].to_vec())
                .or_default()
                .entry(a[common].clone())
                .or_default()
                .insert(b[common].clone());
        }
    }
    let mut found = Vec::new();
    for (level, graph) in &levels {
        let where_ = if level.is_empty() {
            "crate".to_owned()
        } else {
            level.join("::")
        };
        for component in strongly_connected(graph) {
            found.push(format!("{where_}: {}", component.join(" <-> ")));
        }
    }
    found
}

/// Tarjan's strongly connected components with more than one member, each sorted.
fn strongly_connected(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'g> {
        graph: &'g BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'g>(s: &mut State<'g>, v: &'g str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.graph.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.to_owned());
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
    let mut state = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !state.index.contains_key(v.as_str()) {
            visit(&mut state, v);
        }
    }
    state.out.sort();
    state.out
}

fn layer_of(module: &str) -> Option<&'static Layer> {
    LAYERS.iter().find(|l| l.modules.contains(&module))
}

/// Imports that point up (or sideways into a layer not allowed), and top-level modules that
/// belong to no layer.
fn layer_violations(edges: &BTreeSet<(ModPath, ModPath)>) -> Vec<String> {
    let mut found = BTreeSet::new();
    for (a, b) in edges {
        let (from, to) = (a[0].as_str(), b[0].as_str());
        for m in [from, to] {
            if layer_of(m).is_none() {
                found.insert(format!(
                    "`{m}` belongs to no layer: add it to LAYERS in tests/integration/architecture.rs"
                ));
            }
        }
        let (Some(from_layer), Some(to_layer)) = (layer_of(from), layer_of(to)) else {
            continue;
        };
        if from_layer.name == to_layer.name {
            continue;
        }
        if let Some(allowed) = from_layer.may_import
            && !allowed.contains(&to_layer.name)
        {
            found.insert(format!(
                "{} imports {} ({} layer imports {} layer)",
                a.join("::"),
                b.join("::"),
                from_layer.name,
                to_layer.name
            ));
        }
    }
    found.into_iter().collect()
}

fn source_files(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            source_files(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(root).unwrap().to_string_lossy();
            let rel = rel.replace(std::path::MAIN_SEPARATOR, "/");
            out.insert(rel, std::fs::read_to_string(&path).unwrap());
        }
    }
}

#[test]
fn no_import_circles_and_no_import_points_up_a_layer() {
    let src = manifest_dir().join("src");
    let mut files = BTreeMap::new();
    source_files(&src, &src, &mut files);
    let edges = edges(&files);
    let found = circles(&edges);
    let new: Vec<&String> = found
        .iter()
        .filter(|c| !KNOWN_CIRCLES.contains(&c.as_str()))
        .collect();
    assert!(new.is_empty(), "import circles: {new:#?}");
    let gone: Vec<&&str> = KNOWN_CIRCLES
        .iter()
        .filter(|k| !found.iter().any(|c| c == *k))
        .collect();
    assert!(
        gone.is_empty(),
        "no longer circles, remove them from KNOWN_CIRCLES: {gone:#?}"
    );
    assert_eq!(layer_violations(&edges), Vec::<String>::new());
}

fn planted(files: &[(&str, &str)]) -> BTreeMap<String, String> {
    files
        .iter()
        .map(|(f, s)| (f.to_string(), s.to_string()))
        .collect()
}

#[test]
fn a_planted_import_circle_is_found_at_its_level() {
    let files = planted(&[
        ("lib.rs", "pub mod config; pub mod render; pub mod policy;"),
        ("config/mod.rs", "mod a; mod b;\nuse crate::render::Thing;"),
        // Through a braced use tree, from a directory module.
        ("render/mod.rs", "use crate::{cloud, policy::{self, Rule}};"),
        ("policy.rs", "pub fn f() { crate::config::load() }"),
        // One level down, through `super`.
        ("config/a.rs", "use super::b::Checker;"),
        ("config/b.rs", "pub fn g() { super :: a :: h() }"),
        ("cloud.rs", ""),
    ]);
    assert_eq!(
        circles(&edges(&files)),
        ["crate: config <-> policy <-> render", "config: a <-> b"]
    );
}

#[test]
fn comments_strings_and_test_code_are_not_imports() {
    let files = planted(&[
        ("lib.rs", ""),
        (
            "config.rs",
            "//! See [`crate::render`].\nconst U: &str = \"crate::render::x\"; \
             const R: &str = r#\"crate::render\"#; const C: char = '\"'; /* crate::render */\n\
             #[cfg(test)]\nmod tests { use crate::render::X; }",
        ),
        ("config/tests.rs", "use crate::render::Y;"),
        ("render.rs", "use crate::config::Blueprint;"),
    ]);
    assert_eq!(
        edges(&files).into_iter().collect::<Vec<_>>(),
        [(vec!["render".to_owned()], vec!["config".to_owned()])]
    );
    assert_eq!(circles(&edges(&files)), Vec::<String>::new());
}

#[test]
fn a_core_module_importing_the_wire_layer_is_refused() {
    let files = planted(&[
        ("lib.rs", ""),
        (
            "config/model.rs",
            "use crate::azure::credential::AuthChoice;",
        ),
        ("azure/credential.rs", "use crate::cloud::Cloud;"),
        ("cloud.rs", ""),
        ("engine.rs", "use crate::output::Printer;"),
        ("gadgets.rs", "use crate::cloud::Cloud;"),
        ("output.rs", ""),
    ]);
    assert_eq!(
        layer_violations(&edges(&files)),
        [
            "`gadgets` belongs to no layer: add it to LAYERS in tests/integration/architecture.rs",
            "config::model imports azure::credential (core layer imports wire layer)",
            "engine imports output (engine layer imports output layer)",
        ]
    );
}
