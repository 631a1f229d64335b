//! `cnf train --objective fm`: flow matching through the same command, folder, metrics, resume
//! and evaluation (exact NLL and W2).
mod common;

use common::{fails, json_file, metrics, ok, parse_csv, s};

#[test]
fn flow_matching_trains_resumes_and_evaluates() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("fm");
    let base = [
        "train",
        "--objective",
        "fm",
        "--coupling",
        "ot",
        "--batch",
        "128",
        "--hidden",
        "32,32",
        "--lr",
        "3e-3",
        "--val-every",
        "100",
        "--no-plots",
        "--out",
    ];
    let mut args = base.to_vec();
    args.extend([s(&model), "--iters", "200"]);
    ok(&args);
    let c = json_file(&model.join("config.json"));
    assert_eq!(c["training"]["flow_matching"]["path"]["kind"], "straight");
    assert_eq!(
        c["training"]["flow_matching"]["coupling"]["kind"],
        "exactot"
    );
    let m = metrics(&model);
    assert_eq!(m.len(), 2);
    // The regression loss is logged as such, not as an NLL; validation is the exact NLL and it
    // falls (the untrained field's NLL on 8gaussians is far above 4).
    assert!(m[0].get("train_nll").is_none());
    assert!(m[0]["train_fm_loss"].as_f64().unwrap() > 0.0);
    assert_eq!(m[0]["nfe_fwd"], 0);
    let (v1, v2) = (
        m[0]["val_nll"].as_f64().unwrap(),
        m[1]["val_nll"].as_f64().unwrap(),
    );
    assert!(v2 < v1 && v2 < 4.2, "validation NLL {v1} -> {v2}");

    // Resume keeps the objective; a different coupling is refused.
    ok(&["train", "--resume", "--iters", "300", "--out", s(&model)]);
    assert_eq!(json_file(&model.join("checkpoint.json"))["iter"], 300);
    let err = fails(&[
        "train",
        "--resume",
        "--iters",
        "400",
        "--objective",
        "fm",
        "--coupling",
        "independent",
        "--out",
        s(&model),
    ]);
    assert!(err.contains("--coupling"), "{err}");

    // eval: exact test NLL and W2 of 2000 samples against 2000 test points.
    let j: serde_json::Value = serde_json::from_str(&ok(&[
        "eval",
        "--model",
        s(&model),
        "--data",
        "8gaussians",
        "--json",
    ]))
    .unwrap();
    assert!(j["test_nll"].as_f64().unwrap() < 4.2);
    assert_eq!(j["w2_n"], 2000);
    let w2 = j["w2"].as_f64().unwrap();
    // 8gaussians' points lie at radius ~2.83: a sampler that misses the modes is far off.
    assert!(w2 > 0.0 && w2 < 1.5, "W2 {w2}");

    // Sampling with a few Euler steps, the seed's method.
    let out = dir.path().join("s.csv");
    ok(&[
        "sample",
        "--model",
        s(&model),
        "-n",
        "100",
        "--method",
        "euler",
        "--steps",
        "8",
        "--output",
        s(&out),
    ]);
    let (_, rows) = parse_csv(&std::fs::read_to_string(&out).unwrap());
    assert_eq!(rows.len(), 100);
}

#[test]
fn flow_matching_options_need_the_objective() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m");
    let err = fails(&[
        "train",
        "--objective",
        "ml",
        "--coupling",
        "ot",
        "--out",
        s(&out),
    ]);
    assert!(err.contains("--objective fm"), "{err}");
    let err = fails(&[
        "train",
        "--objective",
        "fm",
        "--fm-sigma=-1",
        "--iters",
        "1",
        "--out",
        s(&out),
    ]);
    assert!(err.contains("flow matching"), "{err}");
}

/// Flow matching on a real table (diabetes, whitened, dequantised integer column): trains,
/// evaluates on the held-out split beside the Gaussian baseline.
#[test]
fn flow_matching_on_a_table() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("fm");
    let data = format!("{}/diabetes.csv", common::DATA);
    ok(&[
        "train",
        "--data",
        &data,
        "--objective",
        "fm",
        "--iters",
        "300",
        "--val-every",
        "100",
        "--no-plots",
        "--out",
        s(&model),
    ]);
    let j: serde_json::Value = serde_json::from_str(&ok(&[
        "eval",
        "--model",
        s(&model),
        "--data",
        &data,
        "--json",
    ]))
    .unwrap();
    assert!(j["points"].as_str().unwrap().starts_with("the test split"));
    let (flow, gauss) = (
        j["test_nll"].as_f64().unwrap(),
        j["gaussian_nll"].as_f64().unwrap(),
    );
    // The run starts from the Gaussian and keeps the best validation model, so it cannot end far
    // above the baseline (the held-out split is small: allow its standard error).
    let se = j["stderr"].as_f64().unwrap();
    assert!(
        flow <= gauss + se,
        "flow {flow} vs Gaussian {gauss} (s.e. {se})"
    );
    assert!(j["w2"].as_f64().unwrap().is_finite());
}
