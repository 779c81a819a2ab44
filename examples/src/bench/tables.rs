//! Every suite's table, rendered from its JSON rows alone: what `bench <suite>` prints as it
//! runs, what `bench report` prints from `target/bench/*.json`, and what the guide's benchmark
//! chapter holds between its `<!-- bench:SUITE -->` markers. A figure is never typed by hand.

use serde_json::Value;

/// Formats a rate with an SI prefix (`1.23 G`).
pub fn si(v: f64) -> String {
    let (scaled, unit) = if v >= 1e9 {
        (v / 1e9, "G")
    } else if v >= 1e6 {
        (v / 1e6, "M")
    } else if v >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    format!("{scaled:.2} {unit}")
}

/// One column: its header and how a row's cell reads.
struct Column {
    header: &'static str,
    cell: fn(&Value) -> String,
}

fn num(r: &Value, k: &str) -> f64 {
    r.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN)
}

fn text(r: &Value, k: &str) -> String {
    match r.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) => format!(
            "[{}]",
            a.iter()
                .map(Value::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Some(v) => v.to_string(),
        None => "-".into(),
    }
}

macro_rules! col {
    ($header:expr, |$r:ident| $body:expr) => {
        Column {
            header: $header,
            cell: |$r: &Value| $body,
        }
    };
}

fn ring() -> Vec<Column> {
    vec![
        col!("op", |r| text(r, "op")),
        col!("ring", |r| text(r, "ring")),
        col!("size", |r| text(r, "size")),
        col!("impl", |r| text(r, "impl")),
        col!("threads", |r| text(r, "threads")),
        col!(
            "throughput",
            |r| match (r.get("macs_per_s"), r.get("bytes_per_s")) {
                (Some(m), _) => format!("{}MAC/s", si(m.as_f64().unwrap_or(0.0))),
                (_, Some(b)) => format!("{}B/s", si(b.as_f64().unwrap_or(0.0))),
                _ => "-".into(),
            }
        ),
    ]
}

fn secagg() -> Vec<Column> {
    vec![
        col!("owners", |r| text(r, "owners")),
        col!("params", |r| text(r, "params")),
        col!("mode", |r| text(r, "mode")),
        col!("seconds", |r| format!("{:.4}", num(r, "seconds"))),
        col!("leader/owner", |r| format!(
            "{:.2} ms",
            num(r, "leader_seconds_per_owner") * 1e3
        )),
        col!("helper/owner", |r| format!(
            "{:.2} ms",
            num(r, "helper_seconds_per_owner") * 1e3
        )),
        col!("upload/owner", |r| format!(
            "{}B",
            si(num(r, "upload_bytes_per_owner"))
        )),
        col!("vs f32", |r| format!(
            "{:.4}x",
            num(r, "upload_bytes_per_owner") / num(r, "plaintext_bytes_per_owner")
        )),
        col!("client/owner", |r| if text(r, "mode") == "secure" {
            format!("{:.2} ms", num(r, "client_seconds_per_owner") * 1e3)
        } else {
            "-".into()
        }),
    ]
}

fn secagg_rules() -> Vec<Column> {
    vec![
        col!("owners", |r| text(r, "owners")),
        col!("params", |r| text(r, "params")),
        col!("rule", |r| match r.get("rule_spec") {
            Some(Value::String(s)) => s.clone(),
            // Rows written before `rule_spec`: the family, and the trim of the trimmed mean.
            _ if num(r, "trim") > 0.0 && text(r, "rule") == "trimmed-mean" => {
                format!("trimmed-mean:{}", text(r, "trim"))
            }
            _ => text(r, "rule"),
        }),
        col!("seconds", |r| format!("{:.3}", num(r, "seconds"))),
        col!("server/owner", |r| format!(
            "{:.2} ms",
            num(r, "server_seconds_per_owner") * 1e3
        )),
        col!("upload/owner", |r| format!(
            "{}B",
            si(num(r, "upload_bytes_per_owner"))
        )),
        col!("peer bytes/owner", |r| format!(
            "{}B",
            si(num(r, "peer_bytes_per_owner"))
        )),
        col!("x mean", |r| format!("{:.2}x", num(r, "seconds_vs_mean"))),
    ]
}

fn mpc() -> Vec<Column> {
    vec![
        col!("protocol", |r| text(r, "protocol")),
        col!("op", |r| text(r, "op")),
        col!("shape", |r| text(r, "shape")),
        col!("online s", |r| format!("{:.4}", num(r, "seconds"))),
        col!("offline s", |r| if num(r, "prepared") > 0.0 {
            format!("{:.4}", num(r, "offline_seconds"))
        } else {
            "-".into()
        }),
        col!("rounds", |r| text(r, "rounds")),
        col!("bytes/element", |r| format!(
            "{:.1}",
            num(r, "bytes_per_element")
        )),
        col!("expected", |r| format!(
            "{:.1}",
            num(r, "expected_bytes_per_element")
        )),
        col!("ratio", |r| {
            let expected = num(r, "expected_bytes_per_element");
            if expected > 0.0 {
                format!("{:.2}", num(r, "bytes_per_element") / expected)
            } else {
                "-".into()
            }
        }),
        col!("floor s", |r| format!("{:.4}", num(r, "floor_seconds"))),
        col!("x floor", |r| format!("{:.1}", num(r, "x_floor"))),
    ]
}

fn owners() -> Vec<Column> {
    vec![
        col!("owners", |r| text(r, "owners")),
        col!("contributors", |r| text(r, "contributors")),
        col!("total s", |r| format!("{:.1}", num(r, "total_seconds"))),
        col!("round s", |r| format!("{:.1}", num(r, "round_seconds"))),
        col!("setup + teardown s", |r| format!(
            "{:.1}",
            num(r, "setup_seconds")
        )),
        col!("peak RSS GB (all parties)", |r| format!(
            "{:.2}",
            num(r, "peak_rss_bytes") / 1e9
        )),
    ]
}

fn serve() -> Vec<Column> {
    vec![
        col!("protocol", |r| text(r, "protocol")),
        col!("batch", |r| text(r, "batch")),
        col!("transport", |r| text(r, "transport")),
        col!("s/prediction", |r| format!(
            "{:.4}",
            num(r, "seconds_per_prediction")
        )),
        col!("examples/s", |r| format!(
            "{:.1}",
            num(r, "batch") / num(r, "seconds_per_prediction")
        )),
    ]
}

fn accuracy() -> Vec<Column> {
    vec![
        col!("protocol", |r| text(r, "protocol")),
        col!("model", |r| text(r, "model")),
        col!("optimizer (learning rate, decay per epoch)", |r| format!(
            "{} ({}, {})",
            text(r, "optimizer"),
            num(r, "learning_rate"),
            num(r, "lr_decay")
        )),
        col!("epochs", |r| text(r, "epochs")),
        col!("encrypted", |r| format!(
            "{:.4}",
            num(r, "encrypted_accuracy")
        )),
        col!("plaintext (burn)", |r| format!(
            "{:.4}",
            num(r, "plaintext_accuracy")
        )),
        col!("s/batch", |r| format!("{:.3}", num(r, "seconds_per_batch"))),
    ]
}

fn infer() -> Vec<Column> {
    vec![
        col!("model", |r| text(r, "model")),
        col!("protocol", |r| text(r, "protocol")),
        col!("batch", |r| text(r, "batch")),
        col!("seconds", |r| format!("{:.2}", num(r, "seconds"))),
        col!(
            "TF Encrypted s",
            |r| match r.get("tf_encrypted_seconds").and_then(Value::as_f64) {
                Some(s) => format!("{s:.2}"),
                None => "-".into(),
            }
        ),
        col!("rounds", |r| text(r, "rounds")),
        col!("bytes", |r| si(num(r, "bytes"))),
        col!("peak activations", |r| si(num(r, "peak_bytes"))),
        col!("process peak", |r| si(num(r, "rss_bytes"))),
        col!("plaintext s", |r| format!(
            "{:.3}",
            num(r, "plaintext_seconds")
        )),
        col!("argmax agree", |r| format!("{:.2}", num(r, "argmax_agree"))),
        col!("floor s", |r| format!("{:.2}", num(r, "floor_seconds"))),
        col!("x floor", |r| format!("{:.1}", num(r, "x_floor"))),
    ]
}

fn predict() -> Vec<Column> {
    vec![
        col!("protocol", |r| text(r, "protocol")),
        col!("ReLU", |r| text(r, "relu")),
        col!("batch", |r| text(r, "batch")),
        col!("seconds", |r| format!("{:.3}", num(r, "seconds"))),
        col!("MB between servers", |r| format!(
            "{:.2}",
            num(r, "bytes") / 1e6
        )),
        col!("accuracy", |r| format!("{:.3}", num(r, "accuracy"))),
        col!("plaintext", |r| format!(
            "{:.3}",
            num(r, "plaintext_accuracy")
        )),
        col!("agree with plaintext", |r| format!(
            "{}/{}",
            text(r, "agree"),
            text(r, "batch")
        )),
    ]
}

fn train(with_accuracy: bool) -> Vec<Column> {
    let mut columns = vec![
        col!("protocol", |r| text(r, "protocol")),
        col!("model", |r| text(r, "model")),
        col!("optimizer", |r| text(r, "optimizer")),
        col!("s/batch", |r| format!("{:.3}", num(r, "seconds_per_batch"))),
        col!("rounds", |r| text(r, "rounds_per_batch")),
        col!("bytes", |r| si(num(r, "bytes_per_batch"))),
        col!("offline s", |r| format!(
            "{:.3}",
            num(r, "offline_seconds_per_batch")
        )),
        col!("offline bytes", |r| si(num(r, "offline_bytes_per_batch"))),
        col!("pool bytes", |r| si(num(r, "pool_bytes_per_batch"))),
        col!("plaintext s/batch", |r| format!(
            "{:.4}",
            num(r, "plaintext_seconds_per_batch")
        )),
        col!("plaintext MACs", |r| si(num(r, "plaintext_macs"))),
        col!("floor s", |r| format!("{:.3}", num(r, "floor_seconds"))),
        col!("x floor", |r| format!("{:.1}", num(r, "x_floor"))),
    ];
    if with_accuracy {
        columns.push(col!("accuracy encrypted / plaintext", |r| format!(
            "{:.4} / {:.4}",
            num(r, "encrypted_accuracy"),
            num(r, "plaintext_accuracy")
        )));
    }
    columns
}

/// The suites `bench` runs, in the order `bench report` renders them.
pub const SUITES: &[&str] = &[
    "ring",
    "secagg",
    "secagg-rules",
    "mpc",
    "owners",
    "serve",
    "train",
    "accuracy",
    "predict",
    "infer",
];

/// `suite`'s table of `rows`, in markdown; `None` for a suite this module does not know.
pub fn render(suite: &str, rows: &[Value]) -> Option<String> {
    let columns = match suite {
        "ring" => ring(),
        "secagg" => secagg(),
        "secagg-rules" => secagg_rules(),
        "mpc" => mpc(),
        "owners" => owners(),
        "serve" => serve(),
        "train" => train(rows.iter().any(|r| r.get("encrypted_accuracy").is_some())),
        "predict" => predict(),
        "accuracy" => accuracy(),
        "infer" => infer(),
        _ => return None,
    };
    let headers: Vec<&str> = columns.iter().map(|c| c.header).collect();
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| columns.iter().map(|c| (c.cell)(r)).collect())
        .collect();
    Some(markdown(&headers, &cells))
}

/// Tables another chapter shows from a suite's rows: (region name, suite).
pub const VIEWS: &[(&str, &str)] = &[("mpc-capabilities", "mpc")];

/// `view`'s table of its suite's `rows` ([`VIEWS`]); `None` for a view this module does not
/// know.
pub fn render_view(view: &str, rows: &[Value]) -> Option<String> {
    match view {
        "mpc-capabilities" => Some(capabilities(rows)),
        _ => None,
    }
}

/// Every region's table (the suites' and their views') from the rows of the suites loaded.
pub fn region_tables(loaded: &[(String, Vec<Value>)]) -> Vec<(String, String)> {
    let mut tables = Vec::new();
    for (suite, rows) in loaded {
        tables.extend(render(suite, rows).map(|t| (suite.clone(), t)));
        for (view, of) in VIEWS {
            if of == suite {
                tables.extend(render_view(view, rows).map(|t| (view.to_string(), t)));
            }
        }
    }
    tables
}

/// `bench mpc`'s rows pivoted to one row per operation and shape and one column per protocol:
/// online rounds and bytes per output element, "unsupported" where the protocol has no such
/// operation (Pond's typed error).
fn capabilities(rows: &[Value]) -> String {
    const PROTOCOLS: [&str; 3] = ["pond", "securenn", "aby3"];
    let mut keys: Vec<(String, String)> = Vec::new();
    let mut cells: std::collections::HashMap<(String, String, String), String> =
        std::collections::HashMap::new();
    for r in rows {
        let op = text(r, "op");
        let (base, note) = match op.split_once(" (") {
            Some((base, _)) => (base.to_string(), " (polynomial)"),
            None => (op.clone(), ""),
        };
        let shape = r.get("shape").map(Value::to_string).unwrap_or_default();
        let key = (base, shape);
        if !keys.contains(&key) {
            keys.push(key.clone());
        }
        let bytes = num(r, "bytes_per_element");
        let bytes = if bytes.fract() == 0.0 {
            format!("{bytes:.0}")
        } else {
            format!("{bytes:.1}")
        };
        cells.insert(
            (key.0, key.1, text(r, "protocol")),
            format!("{} r, {bytes} B{note}", text(r, "rounds")),
        );
    }
    let table: Vec<Vec<String>> = keys
        .into_iter()
        .map(|(op, shape)| {
            let mut row = vec![format!("{op} {shape}")];
            for p in PROTOCOLS {
                let cell = cells.get(&(op.clone(), shape.clone(), p.to_string()));
                row.push(cell.cloned().unwrap_or_else(|| "unsupported".into()));
            }
            row
        })
        .collect();
    markdown(&["operation [shape]", "Pond", "SecureNN", "ABY3"], &table)
}

/// A markdown table of `rows` under `headers`.
pub fn markdown(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!(
        "| {} |\n|{}\n",
        headers.join(" | "),
        "---|".repeat(headers.len())
    );
    for row in rows {
        out += &format!("| {} |\n", row.join(" | "));
    }
    out
}

/// Replaces each `<!-- bench:SUITE -->` ... `<!-- /bench:SUITE -->` region of `text` with
/// `SUITE`'s table from `tables` (suite, markdown); a region whose suite has no table is kept.
pub fn fill_regions(text: &str, tables: &[(String, String)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("<!-- bench:") {
        let (before, from) = rest.split_at(start);
        out += before;
        let Some(name_end) = from.find(" -->") else {
            out += from;
            return out;
        };
        let suite = &from["<!-- bench:".len()..name_end];
        let close = format!("<!-- /bench:{suite} -->");
        let Some(end) = from.find(&close) else {
            out += from;
            return out;
        };
        let open = &from[..name_end + " -->".len()];
        match tables.iter().find(|(s, _)| s == suite) {
            Some((_, table)) => {
                out += open;
                out += "\n";
                out += table;
                out += &close;
            }
            None => out += &from[..end + close.len()],
        }
        rest = &from[end + close.len()..];
    }
    out + rest
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_table_reads_its_rows_and_a_region_takes_it() {
        let rows = [json!({"protocol": "aby3", "batch": 4, "transport": "grpc",
                            "seconds_per_prediction": 0.5})];
        let table = render("serve", &rows).unwrap();
        assert_eq!(
            table,
            "| protocol | batch | transport | s/prediction | examples/s |\n|---|---|---|---|---|\n\
             | aby3 | 4 | grpc | 0.5000 | 8.0 |\n"
        );
        assert_eq!(render("nonesuch", &rows), None);
        let mpc = [
            json!({"protocol": "pond", "op": "relu (poly)", "shape": [8], "rounds": 3,
                   "bytes_per_element": 224.0}),
            json!({"protocol": "aby3", "op": "relu", "shape": [8], "rounds": 10,
                   "bytes_per_element": 100.25}),
        ];
        assert_eq!(
            render_view("mpc-capabilities", &mpc).unwrap(),
            "| operation [shape] | Pond | SecureNN | ABY3 |\n|---|---|---|---|\n\
             | relu [8] | 3 r, 224 B (polynomial) | unsupported | 10 r, 100.2 B |\n"
        );
        let text = "a\n<!-- bench:serve -->\nold\n<!-- /bench:serve -->\nb <!-- bench:mpc -->x<!-- /bench:mpc -->";
        let filled = fill_regions(text, &[("serve".into(), table.clone())]);
        assert_eq!(
            filled,
            format!(
                "a\n<!-- bench:serve -->\n{table}<!-- /bench:serve -->\nb <!-- bench:mpc -->x<!-- /bench:mpc -->"
            )
        );
    }
}
