//! Helpers of the CLI tests: run the real `cnf` binary.
#![allow(dead_code)]
use std::path::Path;
use std::process::{Command, Output};

pub const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data");

pub fn cnf(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cnf"))
        .args(args)
        .output()
        .unwrap()
}

pub fn ok(args: &[&str]) -> String {
    let out = cnf(args);
    assert!(
        out.status.success(),
        "cnf {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a command that must fail; returns its stderr.
pub fn fails(args: &[&str]) -> String {
    let out = cnf(args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "cnf {args:?} should fail with exit code 1"
    );
    let err = String::from_utf8(out.stderr).unwrap();
    // Status lines (e.g. "resuming ...") may come first; the reason is one line, the last.
    let last = err.trim().lines().last().unwrap_or("").to_string();
    assert!(last.starts_with("error: "), "{err}");
    assert_eq!(
        err.matches("error: ").count(),
        1,
        "one-line reason expected: {err}"
    );
    last
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

pub fn parse_csv(text: &str) -> (Vec<String>, Vec<Vec<f64>>) {
    let mut lines = text.lines();
    let header = lines
        .next()
        .unwrap()
        .split(',')
        .map(|s| s.trim().to_string())
        .collect();
    let rows = lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split(',').map(|v| v.trim().parse().unwrap()).collect())
        .collect();
    (header, rows)
}

/// The arguments of a tiny training (2 iterations, batch 16, one hidden layer of 8, no plots)
/// followed by `extra`.
pub fn tiny_train(extra: &[&str]) -> Vec<String> {
    [
        "train",
        "--iters",
        "2",
        "--val-every",
        "2",
        "--batch",
        "16",
        "--hidden",
        "8",
        "--no-plots",
    ]
    .iter()
    .chain(extra)
    .map(|a| a.to_string())
    .collect()
}

/// `Vec<String>` arguments as `&str`s.
pub fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Trains a tiny model ([`tiny_train`]) into `out`, with `extra` options; returns standard
/// output.
pub fn train_tiny(out: &Path, extra: &[&str]) -> String {
    let mut args = tiny_train(extra);
    args.extend(["--out".to_string(), s(out).to_string()]);
    ok(&strs(&args))
}

/// The lines of a run folder's metrics.jsonl.
pub fn metrics(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A JSON file (config.json, checkpoint.json).
pub fn json_file(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}
