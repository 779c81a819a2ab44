//! Benchmark output: a markdown table on stdout and JSON rows under `target/bench/`.

use std::path::PathBuf;

use serde_json::Value;

/// The folder benchmark JSON goes to: `$CARGO_TARGET_DIR/bench`, else `<workspace>/target/bench`.
pub fn bench_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
            manifest.parent().unwrap_or(manifest).join("target")
        });
    target.join("bench")
}

/// Writes `rows` as a JSON array to `target/bench/<suite>.json` and returns the path.
pub fn write_json(suite: &str, rows: &[Value]) -> std::io::Result<PathBuf> {
    let dir = bench_dir();
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{suite}.json"));
    let text = serde_json::to_string_pretty(rows).map_err(std::io::Error::other)?;
    std::fs::write(&path, text + "\n")?;
    Ok(path)
}

/// Prints a markdown table (an example's own output; a bench suite's table is [`print_rows`]).
pub fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    print!("{}", super::tables::markdown(headers, rows));
}

/// Prints `suite`'s table of `rows` (rendered from the rows alone: [`super::tables`]).
pub fn print_rows(suite: &str, rows: &[Value]) {
    if let Some(table) = super::tables::render(suite, rows) {
        println!("{table}");
    }
}

/// Prints the table of every suite with JSON in `from`, and with `guide`, fills that markdown
/// file's `<!-- bench:SUITE -->` regions with them (in place).
pub fn report(from: &std::path::Path, guide: Option<&std::path::Path>) -> std::io::Result<()> {
    let mut loaded = Vec::new();
    for suite in super::tables::SUITES {
        let path = from.join(format!("{suite}.json"));
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let rows: Vec<Value> = serde_json::from_str(&text)
            .map_err(|e| std::io::Error::other(format!("{}: {e}", path.display())))?;
        loaded.push((suite.to_string(), rows));
    }
    let tables = super::tables::region_tables(&loaded);
    for (name, table) in &tables {
        println!("### {name}\n\n{table}");
    }
    if let Some(guide) = guide {
        let text = std::fs::read_to_string(guide)?;
        std::fs::write(guide, super::tables::fill_regions(&text, &tables))?;
        println!("filled {}", guide.display());
    }
    Ok(())
}
