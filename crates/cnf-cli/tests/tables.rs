//! Issue 12 on a real table (scikit-learn's diabetes, tests/data/diabetes.csv): with the table
//! defaults the flow starts as the full-covariance Gaussian and early stopping keeps the best
//! validation model, so its test NLL is never worse than the Gaussian baseline's.
mod common;

use std::path::Path;

use common::{ok, s};

#[test]
fn diabetes_flow_is_never_worse_than_the_gaussian() {
    let dir = tempfile::tempdir().unwrap();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/diabetes.csv");
    let model = dir.path().join("m");
    // Defaults chosen from the table; only the run is shortened.
    ok(&[
        "train",
        "--data",
        s(&data),
        "--iters",
        "30",
        "--val-every",
        "10",
        "--no-plots",
        "--out",
        s(&model),
    ]);
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("config.json")).unwrap()).unwrap();
    let tr = &config["training"];
    // 442 rows: 353 in the training split; 10 columns: exact trace, width 128.
    assert_eq!(tr["batch"], 353, "{tr}");
    assert_eq!(tr["trace"], "exact", "{tr}");
    assert_eq!(tr["patience"], 10, "{tr}");
    assert_eq!(tr["iters"], 30, "{tr}");
    assert_eq!(config["mlp"]["hidden"], serde_json::json!([128, 128]));
    let st = &config["standardizer"];
    assert_eq!(st["cholesky"].as_array().unwrap().len(), 100);
    // age, sex, s1 and s6 hold integers only.
    assert_eq!(st["dequantized"], serde_json::json!([0, 1, 4, 9]));
    let eval: serde_json::Value = serde_json::from_str(&ok(&[
        "eval",
        "--model",
        s(&model),
        "--data",
        s(&data),
        "--json",
    ]))
    .unwrap();
    let (flow, gauss) = (
        eval["test_nll"].as_f64().unwrap(),
        eval["gaussian_nll"].as_f64().unwrap(),
    );
    assert!(flow <= gauss + 0.05, "flow {flow} vs Gaussian {gauss}");
    let per_dim = eval["test_nll_per_dim"].as_f64().unwrap();
    assert!((per_dim - flow / 10.0).abs() < 1e-9);
    assert!(eval["points"].as_str().unwrap().contains("dequantised"));
}
