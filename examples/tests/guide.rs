//! The README and the guide (`examples/guide/`) against the code they document:
//!
//! - every command line in their `sh` blocks names a command of a Tessera binary and only flags
//!   that command has, and every flag named in their prose is a flag of some command;
//! - the reference chapter is exactly what the binaries' argument definitions render;
//! - every benchmark table is between `<!-- bench:SUITE -->` markers and is what `bench report`
//!   renders from the committed JSON of that suite (`examples/guide/bench/SUITE.json`);
//! - the README is a short entry (at most 250 lines) and every file it or the guide links exists.
//!
//! After changing a command's flags, `TESSERA_BLESS=1 cargo test -p tessera-examples --test
//! guide` rewrites the reference chapter.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use tessera_examples::bench::cli::BenchCli;
use tessera_examples::bench::tables;
use tessera_examples::private_predict::PrivatePredictArgs;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("examples/ is in the workspace")
        .to_path_buf()
}

fn guide() -> PathBuf {
    root().join("examples/guide")
}

/// The README and every chapter, with their text.
fn documents() -> Vec<(PathBuf, String)> {
    let mut out = vec![root().join("README.md")];
    let mut chapters: Vec<PathBuf> = std::fs::read_dir(guide())
        .expect("the guide")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    chapters.sort();
    out.extend(chapters);
    out.into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("readable");
            (p, text)
        })
        .collect()
}

/// The binaries' commands: binary -> (subcommand or "" for the binary itself) -> its long flags.
fn commands() -> BTreeMap<&'static str, BTreeMap<String, BTreeSet<String>>> {
    fn flags(c: &clap::Command) -> BTreeSet<String> {
        let mut out: BTreeSet<String> = c
            .get_arguments()
            .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
            .collect();
        out.insert("--help".into());
        out
    }
    fn walk(c: &clap::Command) -> BTreeMap<String, BTreeSet<String>> {
        let mut out = BTreeMap::new();
        out.insert(String::new(), flags(c));
        for sub in c.get_subcommands() {
            let mut f = flags(sub);
            // Global flags (`--log-format`) apply to every subcommand.
            f.extend(
                c.get_arguments()
                    .filter(|a| a.is_global_set())
                    .filter_map(|a| a.get_long().map(|l| format!("--{l}"))),
            );
            out.insert(sub.get_name().to_string(), f);
        }
        out
    }
    let mut out = BTreeMap::new();
    out.insert(
        "aggregator",
        walk(&tessera_aggregator::cli::Cli::command().propagate_version(false)),
    );
    out.insert("data-owner", walk(&tessera_data_owner::cli::Cli::command()));
    out.insert(
        "model-owner",
        walk(&tessera_model_owner::cli::Cli::command()),
    );
    out.insert("bench", walk(&BenchCli::command()));
    out.insert("private-predict", walk(&PrivatePredictArgs::command()));
    out
}

/// The lines of the `sh` blocks of `text`, continuation lines joined, comments dropped.
fn shell_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_sh = false;
    let mut current = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("```") {
            in_sh = !in_sh && t == "```sh";
            continue;
        }
        if !in_sh {
            continue;
        }
        let code = match t.find(" #") {
            Some(i) => &t[..i],
            None if t.starts_with('#') => "",
            None => t,
        };
        match code.strip_suffix('\\') {
            Some(head) => current += head,
            None => {
                current += code;
                if !current.trim().is_empty() {
                    out.push(current.trim().to_string());
                }
                current.clear();
            }
        }
    }
    out
}

/// The Tessera command a shell line runs (binary, subcommand, the flags it passes), if any:
/// `aggregator serve --flag`, `target/release/data-owner ...`, `cargo run ... -p
/// tessera-model-owner -- simulate ...`, `cargo run ... --bin bench -- mpc --only relu`.
fn invocation(line: &str) -> Option<(&'static str, String, Vec<String>)> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let (binary, rest): (&'static str, &[&str]) = if words.first() == Some(&"cargo") {
        let dashes = words.iter().position(|w| *w == "--")?;
        let names = &words[..dashes];
        let binary = if names.contains(&"tessera-model-owner") {
            "model-owner"
        } else if names.contains(&"tessera-data-owner") {
            "data-owner"
        } else if names.contains(&"tessera-aggregator") {
            "aggregator"
        } else if names.contains(&"bench") {
            "bench"
        } else if names.contains(&"private-predict") {
            "private-predict"
        } else {
            return None;
        };
        (binary, &words[dashes + 1..])
    } else {
        let first = words.first()?.rsplit('/').next()?;
        let binary = [
            "aggregator",
            "data-owner",
            "model-owner",
            "bench",
            "private-predict",
        ]
        .into_iter()
        .find(|b| *b == first)?;
        (binary, &words[1..])
    };
    let sub = if binary == "bench" || binary == "private-predict" {
        String::new()
    } else {
        rest.first()
            .filter(|w| !w.starts_with('-'))
            .map_or(String::new(), |w| w.to_string())
    };
    let flags = rest
        .iter()
        .filter(|w| w.starts_with("--"))
        .map(|w| w.split('=').next().unwrap_or(w).to_string())
        .collect();
    Some((binary, sub, flags))
}

#[test]
fn every_documented_command_line_has_its_flags() {
    let commands = commands();
    let mut checked = 0;
    let mut wrong = Vec::new();
    for (path, text) in documents() {
        for line in shell_lines(&text) {
            let Some((binary, sub, flags)) = invocation(&line) else {
                continue;
            };
            checked += 1;
            let Some(known) = commands[binary].get(&sub) else {
                wrong.push(format!(
                    "{}: `{binary} {sub}` is no command: {line}",
                    path.display()
                ));
                continue;
            };
            for f in flags {
                if !known.contains(&f) {
                    wrong.push(format!(
                        "{}: `{binary} {sub}` has no {f}: {line}",
                        path.display()
                    ));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert!(
        checked >= 30,
        "the README and the guide run at least 30 commands: {checked}"
    );
}

/// Flags the prose names that are no Tessera command's: cargo's and the test harness's own, and
/// one removed flag the security chapter names as removed.
const NOT_OURS: &[&str] = &[
    "--release",
    "--workspace",
    "--locked",
    "--all-targets",
    "--all",
    "--check",
    "--bin",
    "--test",
    "--lib",
    "--nocapture",
    "--ignored",
    "--dp-sampling-rate",
];

#[test]
fn every_flag_the_prose_names_exists() {
    let all: BTreeSet<String> = commands()
        .into_values()
        .flat_map(|subs| subs.into_values().flatten())
        .collect();
    let mut named = 0;
    let mut wrong = BTreeSet::new();
    for (path, text) in documents() {
        for (i, piece) in text.split('`').enumerate() {
            // Odd pieces are inside backticks.
            if i % 2 == 0 {
                continue;
            }
            for word in piece.split_whitespace() {
                let Some(flag) = word.strip_prefix("--") else {
                    continue;
                };
                let flag: String = flag
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                    .collect();
                if !flag.starts_with(|c: char| c.is_ascii_lowercase()) {
                    continue;
                }
                let flag = format!("--{flag}");
                named += 1;
                if !all.contains(&flag) && !NOT_OURS.contains(&flag.as_str()) {
                    wrong.insert(format!("{}: {flag}", path.display()));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "flags no command has:\n{wrong:#?}");
    assert!(named >= 100, "the prose names flags: {named}");
}

/// The reference chapter: every command of the three binaries and of `bench`, its flags, their
/// defaults and help, rendered from the argument definitions.
fn reference() -> String {
    fn cell(s: &str) -> String {
        s.replace('|', "\\|").replace('\n', " ")
    }
    fn section(out: &mut String, title: &str, c: &clap::Command) {
        *out += &format!("\n## `{title}`\n\n");
        if let Some(about) = c.get_about() {
            *out += &format!("{}\n\n", cell(&about.to_string()));
        }
        let args: Vec<&clap::Arg> = c
            .get_arguments()
            .filter(|a| a.get_id() != "help" && a.get_id() != "version")
            .collect();
        if args.is_empty() {
            *out += "No options.\n";
            return;
        }
        *out += "| argument | default | what it is |\n|---|---|---|\n";
        for a in args {
            let name = match a.get_long() {
                Some(l) => format!("`--{l}`"),
                None => format!("`<{}>`", a.get_id().as_str().to_uppercase()),
            };
            let default: Vec<String> = a
                .get_default_values()
                .iter()
                .map(|v| v.to_string_lossy().into_owned())
                .collect();
            let default = if default.is_empty() {
                String::new()
            } else {
                format!("`{}`", default.join(","))
            };
            let help = a
                .get_long_help()
                .or(a.get_help())
                .map(|h| cell(&h.to_string()))
                .unwrap_or_default();
            *out += &format!("| {name} | {default} | {help} |\n");
        }
    }
    let mut out = String::from(
        "# Reference\n\nEvery command of the three binaries and of `bench`, with every argument, its \
         default and its help, as `--help` prints them. Generated from the argument definitions \
         by `examples/tests/guide.rs` (`TESSERA_BLESS=1 cargo test -p tessera-examples --test \
         guide` after a change); the test fails while this file differs. The cluster file's \
         format is documented with its types in `common/src/config.rs` and walked through in \
         [Networked mode](networked.md).\n",
    );
    let bins: [(&str, clap::Command); 4] = [
        ("aggregator", tessera_aggregator::cli::Cli::command()),
        ("data-owner", tessera_data_owner::cli::Cli::command()),
        ("model-owner", tessera_model_owner::cli::Cli::command()),
        ("bench", BenchCli::command()),
    ];
    for (name, c) in &bins {
        out += &format!("\n# {name}\n");
        section(&mut out, name, c);
        for sub in c.get_subcommands() {
            section(&mut out, &format!("{name} {}", sub.get_name()), sub);
        }
    }
    out
}

#[test]
fn the_reference_is_what_the_binaries_define() {
    let path = guide().join("reference.md");
    let want = reference();
    if std::env::var_os("TESSERA_BLESS").is_some() {
        std::fs::write(&path, &want).expect("write the reference");
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "{} differs from the binaries' definitions: run `TESSERA_BLESS=1 cargo test -p \
         tessera-examples --test guide` and commit it",
        path.display()
    );
    assert!(want.contains("## `model-owner simulate`") && want.contains("`--dp-noise`"));
}

#[test]
fn benchmark_tables_are_rendered_from_their_json() {
    let text = std::fs::read_to_string(guide().join("benchmarks.md")).unwrap();
    let protocols = std::fs::read_to_string(guide().join("protocols.md")).unwrap();
    let mut loaded = Vec::new();
    for suite in tables::SUITES {
        let path = guide().join(format!("bench/{suite}.json"));
        if let Ok(json) = std::fs::read_to_string(&path) {
            let rows: Vec<serde_json::Value> = serde_json::from_str(&json).expect("JSON rows");
            assert!(!rows.is_empty(), "{}", path.display());
            let marker = format!("<!-- bench:{suite} -->");
            assert!(
                text.contains(&marker) || protocols.contains(&marker),
                "{suite}.json is committed but no chapter shows a region of it"
            );
            loaded.push((suite.to_string(), rows));
        }
    }
    assert!(!loaded.is_empty(), "at least one suite's JSON is committed");
    let tables = tables::region_tables(&loaded);
    // The benchmark chapter and the protocols chapter's capability table (a view of `mpc`).
    for chapter in ["benchmarks.md", "protocols.md"] {
        let text = std::fs::read_to_string(guide().join(chapter)).unwrap();
        assert!(
            tables::fill_regions(&text, &tables) == text,
            "a table of {chapter} differs from its JSON: run `bench report --from \
             examples/guide/bench --guide examples/guide/{chapter}`"
        );
        // Every region has its JSON: no table between markers is typed by hand.
        for region in text.split("<!-- bench:").skip(1) {
            let name = region.split(" -->").next().unwrap_or_default();
            assert!(
                tables.iter().any(|(s, _)| s == name),
                "{chapter}: region {name} has no committed JSON"
            );
        }
    }
    // And no table outside the regions in either chapter: every figure in a table is a
    // committed measurement.
    for (chapter, text) in [("benchmarks.md", &text), ("protocols.md", &protocols)] {
        let mut inside = false;
        for (n, line) in text.lines().enumerate() {
            if line.starts_with("<!-- bench:") {
                inside = true;
            } else if line.starts_with("<!-- /bench:") {
                inside = false;
            } else if line.starts_with('|') {
                assert!(
                    inside,
                    "{chapter}:{}: a table typed by hand (put its rows in bench/*.json and a \
                     region): {line}",
                    n + 1
                );
            }
        }
    }
}

#[test]
fn the_readme_is_short_and_every_link_resolves() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let lines = readme.lines().count();
    assert!(lines <= 250, "README.md has {lines} lines");
    let mut links = 0;
    for (path, text) in documents() {
        let dir = path.parent().unwrap().to_path_buf();
        for piece in text.split("](").skip(1) {
            let target = piece.split(')').next().unwrap_or_default();
            if target.starts_with("http") || target.starts_with('#') || target.is_empty() {
                continue;
            }
            let file = target.split('#').next().unwrap_or_default();
            links += 1;
            assert!(
                dir.join(file).exists(),
                "{}: link to {target} does not resolve",
                path.display()
            );
        }
    }
    assert!(links >= 15, "the README links its chapters: {links}");
}
