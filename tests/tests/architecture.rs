//! The workspace's structural invariants, checked from its sources (see `tessera_tests::arch`
//! for how imports are read):
//!
//! - no file imports a file that imports it back, directly or around a loop, in any crate root
//!   (libraries, binaries, integration tests);
//! - the role crates (`tessera-data-owner`, `tessera-model-owner`) never depend on the server
//!   crate (`tessera-aggregator`), directly or through another workspace crate;
//! - the engine (`tessera-mpc`) depends on no other crate of the workspace but `tessera-common`,
//!   and does no I/O of its own (no `tokio::net`, `std::net`, `std::fs` or `tonic`);
//! - the job contract (`tessera-jobs`) stands on `tessera-common` alone, and a data owner, which
//!   runs no MPC itself, does not depend on the engine: common <- (mpc, secagg, jobs) <-
//!   aggregator, and common <- jobs <- the role crates.

use std::path::{Path, PathBuf};

use tessera_tests::arch::{ImportGraph, crate_graph, depends_on, members};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the workspace")
        .to_path_buf()
}

/// Every crate root of every workspace member: `src/lib.rs`, `src/main.rs`, `src/bin/*.rs`, and
/// a member's integration tests (`tests/*.rs`, `tests/*/main.rs`).
fn crate_roots(root: &Path) -> Vec<PathBuf> {
    let mut roots = Vec::new();
    for (_, dir) in members(root) {
        for f in ["src/lib.rs", "src/main.rs"] {
            if dir.join(f).exists() {
                roots.push(dir.join(f));
            }
        }
        for sub in ["src/bin", "tests"] {
            let Ok(entries) = std::fs::read_dir(dir.join(sub)) else {
                continue;
            };
            for e in entries.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "rs") {
                    roots.push(p);
                } else if p.join("main.rs").exists() {
                    roots.push(p.join("main.rs"));
                }
            }
        }
    }
    roots.sort();
    roots
}

/// The folder of workspace package `name`.
fn member_dir(root: &Path, name: &str) -> PathBuf {
    members(root)
        .into_iter()
        .find_map(|(n, dir)| (n == name).then_some(dir))
        .unwrap_or_else(|| panic!("{name} is a workspace member"))
}

/// Every `.rs` file under the members' `src/` and `tests/` folders.
fn rust_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo: Vec<PathBuf> = members(root)
        .into_iter()
        .flat_map(|(_, dir)| [dir.join("src"), dir.join("tests")])
        .collect();
    while let Some(p) = todo.pop() {
        if p.is_dir() {
            todo.extend(std::fs::read_dir(&p).unwrap().flatten().map(|e| e.path()));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out
}

#[test]
fn no_file_imports_a_file_that_imports_it_back() {
    let root = workspace();
    let roots = crate_roots(&root);
    assert!(
        roots.len() >= 20,
        "every crate root is read: {roots:?} (libraries, binaries, test crates)"
    );
    let mut graph = ImportGraph::default();
    for r in &roots {
        graph.merge(ImportGraph::of_crate(r));
    }
    let on_disk = rust_files(&root);
    let read: Vec<&PathBuf> = graph.edges.keys().collect();
    let unread: Vec<&PathBuf> = on_disk
        .iter()
        .filter(|f| !graph.edges.contains_key(*f))
        .collect();
    assert!(
        unread.is_empty() && read.len() == on_disk.len(),
        "every source file is a module of some crate root; not reached: {unread:?}"
    );
    let cycles = graph.cycles();
    assert!(
        cycles.is_empty(),
        "files that import each other around a loop:\n{}",
        cycles
            .iter()
            .map(|c| format!("  {c:?}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// The reading finds a loop where there is one: two modules of a throwaway crate that import
/// each other (one by `use`, one by a path in code), and a third that imports only.
#[test]
fn the_reading_finds_a_loop_through_use_and_paths_in_code() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("a")).unwrap();
    std::fs::write(
        src.join("lib.rs"),
        "pub mod a;\npub mod c;\npub use a::b::Thing;\n",
    )
    .unwrap();
    std::fs::write(
        src.join("a/mod.rs"),
        "//! Uses crate::c only in a comment.\npub mod b;\npub fn helper() {}\n",
    )
    .unwrap();
    std::fs::write(
        src.join("a/b.rs"),
        "use super::helper;\npub struct Thing;\n#[cfg(test)]\nmod tests {\n    use super::super::helper;\n}\n",
    )
    .unwrap();
    std::fs::write(
        src.join("c.rs"),
        "use crate::Thing;\npub fn f() { crate::a::helper() }\n",
    )
    .unwrap();
    let graph = ImportGraph::of_crate(&src.join("lib.rs"));
    // b imports a (helper); a imports nothing but its child; c imports b (through the
    // re-export) and a: no loop yet.
    assert_eq!(graph.cycles(), Vec::<Vec<PathBuf>>::new(), "{graph:?}");
    assert!(graph.edges[&src.join("c.rs")].contains(&src.join("a/b.rs")));
    // Now a uses b's item in code: a <-> b.
    std::fs::write(
        src.join("a/mod.rs"),
        "pub mod b;\npub fn helper() { let _ = self::b::Thing; }\n",
    )
    .unwrap();
    let graph = ImportGraph::of_crate(&src.join("lib.rs"));
    assert_eq!(
        graph.cycles(),
        vec![vec![src.join("a/b.rs"), src.join("a/mod.rs")]]
    );
}

#[test]
fn role_crates_never_depend_on_the_server() {
    let graph = crate_graph(&workspace());
    for role in ["tessera-data-owner", "tessera-model-owner"] {
        let deps = depends_on(&graph, role);
        assert!(deps.contains("tessera-common"), "{role}: {deps:?}");
        assert!(
            !deps.contains("tessera-aggregator"),
            "{role} depends on the server crate: {deps:?}"
        );
    }
    // The reading is not blind: the integration tests do depend on the server.
    assert!(depends_on(&graph, "tessera-tests").contains("tessera-aggregator"));
}

#[test]
fn the_contract_stands_on_common_and_the_data_owner_runs_no_engine() {
    let graph = crate_graph(&workspace());
    assert_eq!(
        depends_on(&graph, "tessera-jobs"),
        ["tessera-common".to_string()].into()
    );
    let owner = depends_on(&graph, "tessera-data-owner");
    assert!(owner.contains("tessera-jobs"), "{owner:?}");
    assert!(!owner.contains("tessera-mpc"), "{owner:?}");
    assert!(!owner.contains("tessera-secagg"), "{owner:?}");
}

#[test]
fn the_engine_stands_on_common_alone_and_does_no_io() {
    let root = workspace();
    let graph = crate_graph(&root);
    assert_eq!(
        depends_on(&graph, "tessera-mpc"),
        ["tessera-common".to_string()].into()
    );
    let src = member_dir(&root, "tessera-mpc").join("src");
    let mut files = vec![src.clone()];
    let mut read = 0;
    while let Some(p) = files.pop() {
        if p.is_dir() {
            files.extend(std::fs::read_dir(&p).unwrap().flatten().map(|e| e.path()));
            continue;
        }
        let text = std::fs::read_to_string(&p).unwrap();
        read += 1;
        for io in ["tokio::net", "std::net", "std::fs", "tonic::"] {
            assert!(!text.contains(io), "{}: {io}", p.display());
        }
    }
    assert!(read > 30, "the engine's files are read: {read}");
}
