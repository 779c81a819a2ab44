//! The workspace's structure, read from its sources: which file imports which, and which crate
//! depends on which. `tests/tests/architecture.rs` holds the invariants over it (no import
//! cycles between files, role crates never on the server crate).
//!
//! A file imports another when one of its `use` declarations or one of its paths in code
//! (`crate::…`, `super::…`, `self::…`) names an item the other defines. Re-exports are followed
//! to the file that defines the item, so `use crate::MpcError` ties a file to `session.rs`, not
//! to `lib.rs`. Comments are not read (an intra-doc link is not an import), nor are `mod`
//! declarations (a parent declaring a child is the tree, not an import). External crates are
//! not followed: a cycle between crates is impossible in Cargo.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// One crate root's module tree: module path (`["grpc", "gate"]`) to file.
#[derive(Debug, Default)]
pub struct ModuleTree {
    files: BTreeMap<Vec<String>, PathBuf>,
}

/// Every file of the workspace and the files it imports.
#[derive(Debug, Default)]
pub struct ImportGraph {
    /// File -> the files it imports (never itself).
    pub edges: BTreeMap<PathBuf, BTreeSet<PathBuf>>,
}

/// The source with comments removed (line and block comments, outside string literals) and
/// string literals emptied, so neither is read as code.
fn code_of(source: &str) -> String {
    let b = source.as_bytes();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mut depth = 0;
                while i < b.len() {
                    if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                        depth += 1;
                        i += 2;
                    } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
            }
            b'"' => {
                out.push('"');
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                out.push('"');
                i += 1;
            }
            b'\'' if b.get(i + 2) == Some(&b'\'') || b.get(i + 1) == Some(&b'\\') => {
                // A char literal ('"', '\n'); lifetimes ('a) pass through.
                i += 1;
                while i < b.len() && b[i] != b'\'' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            c => {
                out.push(c as char);
                i += 1;
            }
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The `mod name;` declarations of a file's code (not inline `mod name { … }`).
fn declared_modules(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in code.lines() {
        let t = line.trim();
        let t = t
            .strip_prefix("pub(crate) ")
            .or_else(|| t.strip_prefix("pub(super) "))
            .or_else(|| t.strip_prefix("pub "))
            .unwrap_or(t);
        if let Some(rest) = t.strip_prefix("mod ")
            && let Some(name) = rest.strip_suffix(';')
            && name.chars().all(is_ident)
        {
            out.push(name.to_string());
        }
    }
    out
}

impl ModuleTree {
    /// The modules reachable from the crate root `root` (`lib.rs`, `main.rs`, a binary's file).
    pub fn load(root: &Path) -> Self {
        let mut tree = ModuleTree::default();
        tree.walk(Vec::new(), root, true);
        tree
    }

    fn walk(&mut self, path: Vec<String>, file: &Path, owns_dir: bool) {
        let Ok(source) = std::fs::read_to_string(file) else {
            return;
        };
        self.files.insert(path.clone(), file.to_path_buf());
        let dir = if owns_dir {
            file.parent().expect("a file has a folder").to_path_buf()
        } else {
            file.with_extension("")
        };
        for name in declared_modules(&code_of(&source)) {
            let mut child = path.clone();
            child.push(name.clone());
            let flat = dir.join(format!("{name}.rs"));
            if flat.exists() {
                self.walk(child, &flat, false);
            } else {
                self.walk(child, &dir.join(&name).join("mod.rs"), true);
            }
        }
    }

    /// The files of the tree.
    pub fn files(&self) -> impl Iterator<Item = (&Vec<String>, &PathBuf)> {
        self.files.iter()
    }
}

/// `tree` without its renames (`x as y` becomes `x`).
fn without_renames(tree: &str) -> String {
    let words: Vec<&str> = tree.split_whitespace().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < words.len() {
        if words[i] == "as" {
            // Drop `as` and the new name, keeping what punctuation follows it.
            let rest = words
                .get(i + 1)
                .map_or("", |w| w.trim_start_matches(is_ident));
            out.push_str(rest);
            i += 2;
        } else {
            out.push_str(words[i]);
            i += 1;
        }
    }
    out
}

/// Splits a `use` tree (`a::{b, c::{d, e}}`) into its paths.
fn expand_use(tree: &str) -> Vec<String> {
    let tree = without_renames(tree);
    let Some(open) = tree.find('{') else {
        return vec![tree];
    };
    let prefix = &tree[..open];
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|p| !p.is_empty())
        .flat_map(|p| expand_use(&format!("{prefix}{p}")))
        .collect()
}

/// Which of a file's paths [`crate_paths`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// Every path: to resolve what a file re-exports.
    All,
    /// The file's own imports: not its re-exports (`pub use`: whoever names the item through it
    /// is tied to the file that defines it), not its `#[cfg(test)]` modules (tests of a file may
    /// use what uses the file).
    Imports,
}

/// The paths a file's code names from its own crate: each with the module path of the (inline)
/// module it is written in.
fn crate_paths(code: &str, module: &[String], reading: Reading) -> Vec<(Vec<String>, String)> {
    let mut out = Vec::new();
    // Inline modules (`mod tests {`) shift `super` and `self` by one level per depth.
    let mut inline: Vec<(String, i32, bool)> = Vec::new();
    let mut depth = 0i32;
    let mut statement = String::new();
    let mut previous = "";
    for line in code.lines() {
        let t = line.trim();
        if let Some(rest) = t
            .strip_prefix("pub mod ")
            .or_else(|| t.strip_prefix("mod "))
            .and_then(|r| r.strip_suffix('{'))
        {
            inline.push((rest.trim().to_string(), depth, previous == "#[cfg(test)]"));
        }
        if !t.is_empty() {
            previous = t;
        }
        depth += t.matches('{').count() as i32 - t.matches('}').count() as i32;
        while inline.last().is_some_and(|(_, d, _)| depth <= *d) {
            inline.pop();
        }
        if reading == Reading::Imports && inline.iter().any(|(_, _, test)| *test) {
            continue;
        }
        let mut here: Vec<String> = module.to_vec();
        here.extend(inline.iter().map(|(n, _, _)| n.clone()));
        if reading == Reading::Imports
            && (t.starts_with("pub use ") || t.starts_with("pub(crate) use "))
            && statement.is_empty()
        {
            if !t.ends_with(';') {
                statement.push_str("skip ");
            }
            continue;
        }
        if statement.starts_with("skip ") {
            if t.ends_with(';') {
                statement.clear();
            }
            continue;
        }
        if !statement.is_empty()
            || t.starts_with("use ")
            || t.starts_with("pub use ")
            || t.starts_with("pub(crate) use ")
        {
            statement.push_str(t);
            statement.push(' ');
            if t.ends_with(';') {
                let body = statement
                    .trim()
                    .trim_start_matches("pub(crate) ")
                    .trim_start_matches("pub ")
                    .trim_start_matches("use ")
                    .trim_end_matches(';')
                    .to_string();
                for p in expand_use(&body) {
                    out.push((here.clone(), p));
                }
                statement.clear();
            }
            continue;
        }
        for start in ["crate::", "super::", "self::"] {
            let mut from = 0;
            while let Some(i) = line[from..].find(start) {
                let at = from + i;
                from = at + start.len();
                if line[..at].ends_with(|c: char| is_ident(c) || c == ':') {
                    continue;
                }
                let end = line[at..]
                    .find(|c: char| !(is_ident(c) || c == ':'))
                    .map_or(line.len(), |e| at + e);
                out.push((
                    here.clone(),
                    line[at..end].trim_end_matches(':').to_string(),
                ));
            }
        }
    }
    out
}

/// Whether `code` defines `name` at its top level as an item (or declares it as a module).
fn defines(code: &str, name: &str) -> bool {
    code.lines().any(|line| {
        let t = line.trim_start();
        let t = t
            .strip_prefix("pub(crate) ")
            .or_else(|| t.strip_prefix("pub(super) "))
            .or_else(|| t.strip_prefix("pub "))
            .unwrap_or(t);
        let t = t.strip_prefix("async ").unwrap_or(t);
        [
            "struct ", "enum ", "fn ", "trait ", "type ", "const ", "static ", "union ", "mod ",
        ]
        .iter()
        .any(|k| {
            t.strip_prefix(k).is_some_and(|r| {
                r.starts_with(name) && !r[name.len()..].starts_with(|c: char| is_ident(c))
            })
        }) || t.starts_with(&format!("macro_rules! {name}"))
    })
}

struct Crate {
    tree: ModuleTree,
    code: HashMap<PathBuf, String>,
}

impl Crate {
    fn new(root: &Path) -> Self {
        let tree = ModuleTree::load(root);
        let code = tree
            .files()
            .map(|(_, f)| {
                (
                    f.clone(),
                    code_of(&std::fs::read_to_string(f).unwrap_or_default()),
                )
            })
            .collect();
        Crate { tree, code }
    }

    /// The file that defines what `path` (absolute, in module segments) names, following
    /// re-exports; `None` outside this crate.
    fn resolve(&self, path: &[String], hops: usize) -> Option<PathBuf> {
        if hops > 8 {
            return None;
        }
        // The longest prefix that is a module.
        let mut k = path.len();
        while k > 0 && !self.tree.files.contains_key(&path[..k]) {
            k -= 1;
        }
        let file = self.tree.files.get(&path[..k])?;
        let Some(name) = path.get(k) else {
            return Some(file.clone()); // the module itself
        };
        let code = &self.code[file];
        if name == "*" || defines(code, name) {
            return Some(file.clone());
        }
        // A re-export: `pub use x::y::Name` (or a group naming it) in that file.
        for (_, used) in crate_paths(code, &path[..k], Reading::All) {
            let last = used.rsplit("::").next().unwrap_or("");
            if last == name.as_str() {
                let target = absolute(&self.tree, &path[..k], &used)?;
                if target != path {
                    return self.resolve(&target, hops + 1);
                }
            }
        }
        Some(file.clone())
    }
}

/// `written` (as written in module `here` of `tree`) as an absolute module path, or `None` for a
/// path into another crate. A path that starts with a child module of `here` is relative to it
/// (`use a::b` in `lib.rs`).
fn absolute(tree: &ModuleTree, here: &[String], written: &str) -> Option<Vec<String>> {
    let mut segments = written.split("::").filter(|s| !s.is_empty());
    let first = segments.next()?;
    let mut out: Vec<String> = match first {
        "crate" => Vec::new(),
        "self" => here.to_vec(),
        "super" => here[..here.len().saturating_sub(1)].to_vec(),
        child => {
            let mut path = here.to_vec();
            path.push(child.to_string());
            if !tree.files.contains_key(&path) {
                return None;
            }
            path
        }
    };
    for s in segments {
        if s == "super" {
            out.pop();
        } else if s != "self" {
            out.push(s.to_string());
        }
    }
    Some(out)
}

impl ImportGraph {
    /// The import graph of the crate whose root file is `root`.
    pub fn of_crate(root: &Path) -> Self {
        let krate = Crate::new(root);
        let mut graph = ImportGraph::default();
        for (module, file) in krate.tree.files() {
            let targets = graph.edges.entry(file.clone()).or_default();
            for (here, written) in crate_paths(&krate.code[file], module, Reading::Imports) {
                if let Some(path) = absolute(&krate.tree, &here, &written)
                    && let Some(target) = krate.resolve(&path, 0)
                    && &target != file
                {
                    targets.insert(target);
                }
            }
        }
        graph
    }

    /// Adds `other`'s files and edges.
    pub fn merge(&mut self, other: ImportGraph) {
        for (file, targets) in other.edges {
            self.edges.entry(file).or_default().extend(targets);
        }
    }

    /// The strongly connected components of more than one file (Tarjan): each is a set of files
    /// that import each other around a loop.
    pub fn cycles(&self) -> Vec<Vec<PathBuf>> {
        struct State<'a> {
            graph: &'a ImportGraph,
            index: HashMap<&'a PathBuf, usize>,
            low: HashMap<&'a PathBuf, usize>,
            stack: Vec<&'a PathBuf>,
            on_stack: BTreeSet<&'a PathBuf>,
            next: usize,
            out: Vec<Vec<PathBuf>>,
        }
        fn visit<'a>(s: &mut State<'a>, v: &'a PathBuf) {
            s.index.insert(v, s.next);
            s.low.insert(v, s.next);
            s.next += 1;
            s.stack.push(v);
            s.on_stack.insert(v);
            for w in s.graph.edges.get(v).into_iter().flatten() {
                if !s.index.contains_key(w) {
                    visit(s, w);
                    let lw = s.low[w];
                    let lv = s.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(lw);
                } else if s.on_stack.contains(w) {
                    let iw = s.index[w];
                    let lv = s.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(iw);
                }
            }
            if s.low[v] == s.index[v] {
                let mut component = Vec::new();
                while let Some(w) = s.stack.pop() {
                    s.on_stack.remove(w);
                    component.push(w.clone());
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
            graph: self,
            index: HashMap::new(),
            low: HashMap::new(),
            stack: Vec::new(),
            on_stack: BTreeSet::new(),
            next: 0,
            out: Vec::new(),
        };
        for v in self.edges.keys() {
            if !s.index.contains_key(v) {
                visit(&mut s, v);
            }
        }
        s.out
    }
}

/// The workspace's packages: name and folder.
pub fn members(workspace: &Path) -> Vec<(String, PathBuf)> {
    let manifest = std::fs::read_to_string(workspace.join("Cargo.toml")).expect("Cargo.toml");
    let members: Vec<String> = manifest
        .split("members = [")
        .nth(1)
        .and_then(|r| r.split(']').next())
        .expect("workspace members")
        .split(',')
        .map(|m| m.trim().trim_matches('"').to_string())
        .filter(|m| !m.is_empty())
        .collect();
    members
        .into_iter()
        .map(|member| {
            let dir = workspace.join(member);
            let text = std::fs::read_to_string(dir.join("Cargo.toml")).expect("member manifest");
            let name = text
                .lines()
                .find_map(|l| l.strip_prefix("name = "))
                .expect("package name")
                .trim_matches('"')
                .to_string();
            (name, dir)
        })
        .collect()
}

/// The workspace's packages and the workspace packages each depends on (normal, dev and build
/// dependencies alike).
pub fn crate_graph(workspace: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut out = BTreeMap::new();
    for (name, dir) in members(workspace) {
        let text = std::fs::read_to_string(dir.join("Cargo.toml")).expect("member manifest");
        let deps = text
            .lines()
            .filter_map(|l| l.trim().split(['.', ' ', '=']).next())
            .filter(|d| d.starts_with("tessera-") && *d != name)
            .map(str::to_string)
            .collect();
        out.insert(name, deps);
    }
    out
}

/// Every workspace package `name` depends on, directly or through others.
pub fn depends_on(graph: &BTreeMap<String, BTreeSet<String>>, name: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![name.to_string()];
    while let Some(n) = todo.pop() {
        for d in graph.get(&n).into_iter().flatten() {
            if seen.insert(d.clone()) {
                todo.push(d.clone());
            }
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn use_trees_expand_into_paths() {
        assert_eq!(
            expand_use("crate::a::{b, c::{d, e as f}, self}"),
            [
                "crate::a::b",
                "crate::a::c::d",
                "crate::a::c::e",
                "crate::a::self"
            ]
        );
        assert_eq!(expand_use("super::x as basis"), ["super::x"]);
    }

    #[test]
    fn comments_and_strings_are_not_code() {
        let code = code_of("let a = \"crate::x\"; // crate::y\n/* crate::z */ crate::w::v();");
        assert!(!code.contains("crate::x") && !code.contains("crate::y"));
        assert!(!code.contains("crate::z") && code.contains("crate::w::v"));
    }

    /// Two files that import each other form one cycle; a third that only imports is outside it.
    #[test]
    fn a_loop_of_two_files_is_found() {
        let mut graph = ImportGraph::default();
        let (a, b, c) = (PathBuf::from("a"), PathBuf::from("b"), PathBuf::from("c"));
        graph.edges.insert(a.clone(), [b.clone()].into());
        graph.edges.insert(b.clone(), [a.clone()].into());
        graph.edges.insert(c.clone(), [a.clone()].into());
        assert_eq!(graph.cycles(), vec![vec![a, b]]);
    }
}
