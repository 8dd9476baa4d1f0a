//! The operators' Grafana dashboard (`ops/grafana/*.json`) and the alert rules
//! (`ops/prometheus/*.yml`) name only metrics giftd exports: every `giftd_*` name in an
//! expression has series on a running giftd's `/metrics`, so a renamed metric breaks the build,
//! not the dashboard.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::support::{Backend, World, free_port, http_get};

/// The `giftd_*` names in an expression.
fn names(expr: &str) -> impl Iterator<Item = &str> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|t| t.starts_with("giftd_") && t.len() > "giftd_".len())
}

/// Every `expr` of a Grafana dashboard (its panels' targets, rows included).
fn dashboard_exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr", serde_json::Value::String(e)) => out.push(e.clone()),
                    _ => dashboard_exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| dashboard_exprs(v, out)),
        _ => {}
    }
}

/// Every `expr:` of a Prometheus rules file, folded block scalars (`expr: >-`) included.
fn rule_exprs(yaml: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut block: Option<(usize, String)> = None;
    for line in yaml.lines() {
        let indent = line.len() - line.trim_start().len();
        let text = line.trim_start();
        if let Some((at, expr)) = &mut block {
            if !text.is_empty() && indent > *at {
                expr.push(' ');
                expr.push_str(text);
                continue;
            }
            out.push(std::mem::take(expr));
            block = None;
        }
        if text.starts_with('#') {
            continue;
        }
        if let Some(rest) = text.strip_prefix("expr:") {
            let rest = rest.trim();
            if rest.starts_with('>') || rest.starts_with('|') {
                block = Some((indent, String::new()));
            } else {
                out.push(rest.to_owned());
            }
        }
    }
    if let Some((_, expr)) = block {
        out.push(expr);
    }
    out
}

/// The files of `dir` (under the crate) ending in `ext`, with their text.
fn files(dir: &str, ext: &str) -> Vec<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut found: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p.display().to_string(), text)
        })
        .collect();
    found.sort();
    found
}

#[test]
fn rule_expressions_are_read_whole() {
    let yaml = "rules:\n  - alert: A\n    expr: giftd_ready == 0\n  - alert: B\n    expr: >-\n      \
                giftd_a > 0\n      and giftd_b\n    for: 2m\n  # expr: giftd_commented\n";
    assert_eq!(
        rule_exprs(yaml),
        ["giftd_ready == 0", " giftd_a > 0 and giftd_b"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_and_rules_name_only_metrics_giftd_exports() {
    let mut w = World::new(Backend::sqlite(), 1).await;
    let port = free_port();
    w.health_listen = format!("127.0.0.1:{port}");
    let running = w.start().await;
    // Every metric is registered at start (per-account series once the account's id is
    // known), except the Stars balance, which the withdrawal worker reads once it runs.
    let deadline = Instant::now() + Duration::from_secs(20);
    let scrape = loop {
        let (code, body) = http_get(port, "/metrics").await;
        assert_eq!(code, 200, "{body}");
        if body.contains("giftd_stars_balance{") {
            break body;
        }
        assert!(Instant::now() < deadline, "no Stars balance read: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    running.stop().await;
    let exported: BTreeSet<&str> = scrape
        .lines()
        .filter(|l| l.starts_with("giftd_"))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();

    let mut checked = 0;
    let mut missing = Vec::new();
    let dashboards = files("ops/grafana", "json");
    assert!(!dashboards.is_empty(), "a dashboard in ops/grafana");
    let rules = files("ops/prometheus", "yml");
    assert!(!rules.is_empty(), "alert rules in ops/prometheus");
    let mut sources: Vec<(String, Vec<String>)> = Vec::new();
    for (path, text) in &dashboards {
        let json: serde_json::Value =
            serde_json::from_str(text).unwrap_or_else(|e| panic!("{path}: {e}"));
        let mut exprs = Vec::new();
        dashboard_exprs(&json, &mut exprs);
        // Grafana's template variables are not metric names.
        assert!(exprs.len() >= 15, "{path}: {} expressions", exprs.len());
        sources.push((path.clone(), exprs));
    }
    for (path, text) in &rules {
        if path.ends_with(".test.yml") {
            continue; // promtool's unit tests feed made-up series
        }
        sources.push((path.clone(), rule_exprs(text)));
    }
    for (path, exprs) in &sources {
        for expr in exprs {
            for name in names(expr) {
                checked += 1;
                if !exported.contains(name) {
                    missing.push(format!("{path}: {name} (in {expr})"));
                }
            }
        }
    }
    assert!(checked >= 30, "{checked} metric names checked");
    assert!(
        missing.is_empty(),
        "metrics named by the dashboard or the rules that giftd does not export:\n{}\n\n{scrape}",
        missing.join("\n")
    );
    // What the dashboard is for, by name: each of these is on it.
    let dashboard = &sources[0].1.join("\n");
    for name in [
        "giftd_ready",
        "giftd_account",
        "giftd_detection_seconds_bucket",
        "giftd_mirror_commit_seconds_bucket",
        "giftd_mirror_backlog",
        "giftd_withdrawals",
        "giftd_withdrawal_seconds_bucket",
        "giftd_stars_balance",
        "giftd_withdrawal_stars_needed",
        "giftd_bot_reply_seconds_bucket",
        "giftd_updates_dropped_total",
        "giftd_bot_connected",
    ] {
        assert!(
            names(dashboard).any(|n| n == name),
            "the dashboard shows {name}"
        );
    }
}
