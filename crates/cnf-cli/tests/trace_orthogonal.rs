//! `cnf train --trace orthogonal` trains and records "orthogonal" in config.json.
mod common;

use common::{cnf, json_file, metrics, train_tiny};

#[test]
fn train_with_orthogonal_probes_records_the_trace() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m");
    train_tiny(&model, &["--trace", "orthogonal"]);
    assert_eq!(
        json_file(&model.join("config.json"))["training"]["trace"],
        "orthogonal"
    );
    let m = metrics(&model);
    assert!(m.last().unwrap()["val_nll"].as_f64().unwrap().is_finite());
    // The value is checked: a misspelling is a usage error (exit code 2) listing the choices.
    let out = cnf(&["train", "--trace", "orthogonl"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("orthogonal"), "{err}");
}
