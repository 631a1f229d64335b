//! `cnf train --trace orthogonal` trains and records "orthogonal" in config.json.
mod common;

use common::{cnf, ok, s};

#[test]
fn train_with_orthogonal_probes_records_the_trace() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m");
    ok(&[
        "train",
        "--iters",
        "2",
        "--val-every",
        "2",
        "--batch",
        "32",
        "--hidden",
        "8",
        "--trace",
        "orthogonal",
        "--no-plots",
        "--out",
        s(&model),
    ]);
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["training"]["trace"], "orthogonal");
    let metrics = std::fs::read_to_string(model.join("metrics.jsonl")).unwrap();
    let m: serde_json::Value = serde_json::from_str(metrics.lines().last().unwrap()).unwrap();
    assert!(m["val_nll"].as_f64().unwrap().is_finite());
    // The value is checked: a misspelling is a usage error (exit code 2) listing the choices.
    let out = cnf(&["train", "--trace", "orthogonl"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("orthogonal"), "{err}");
}
