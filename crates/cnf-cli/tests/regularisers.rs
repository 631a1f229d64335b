//! `cnf train --kinetic --jacobian --steer --local-error`: recorded in config.json, logged in
//! metrics.jsonl, kept on resume, refused with flow matching and when out of range.
mod common;

use common::{cnf, fails, json_file, metrics, ok, s, train_tiny, DATA};

/// Resumes the run in `model` up to `iters` iterations, with no options.
fn resume_to(model: &std::path::Path, iters: &str) {
    ok(&[
        "train",
        "--resume",
        "--iters",
        iters,
        "--no-plots",
        "--out",
        s(model),
    ]);
}

#[test]
fn regularised_run_records_logs_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m");
    let opts = ["--kinetic", "0.05", "--jacobian", "0.02", "--steer", "0.5"];
    train_tiny(&model, &opts);
    let cfg = json_file(&model.join("config.json"));
    let reg = &cfg["training"]["regularisers"];
    assert_eq!(reg["kinetic"], 0.05);
    assert_eq!(reg["jacobian"], 0.02);
    assert_eq!(reg["steer"], 0.5);
    let line = metrics(&model).pop().unwrap();
    for key in ["kinetic", "jacobian"] {
        let v = line[key].as_f64().unwrap_or(f64::NAN);
        assert!(v.is_finite() && v > 0.0, "{key}: {line}");
    }
    for key in ["nfe_fwd", "nfe_bwd", "nfe_val"] {
        assert!(line[key].as_u64().unwrap() > 0, "{key}: {line}");
    }

    // Resume without the options keeps them; the same values are accepted; others refused.
    resume_to(&model, "4");
    let lines = metrics(&model);
    assert_eq!(lines.last().unwrap()["iter"], 4);
    assert!(lines.last().unwrap()["kinetic"].as_f64().unwrap() > 0.0);
    assert_eq!(
        json_file(&model.join("config.json"))["training"]["regularisers"],
        *reg
    );
    let mut same = vec![
        "train",
        "--resume",
        "--iters",
        "6",
        "--no-plots",
        "--out",
        s(&model),
    ];
    same.extend_from_slice(&opts);
    ok(&same);
    let err = fails(&[
        "train",
        "--resume",
        "--iters",
        "8",
        "--kinetic",
        "0.5",
        "--out",
        s(&model),
    ]);
    assert!(err.contains("--kinetic"), "{err}");
}

#[test]
fn unregularised_runs_do_not_log_regularisers() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m");
    train_tiny(&model, &[]);
    let cfg = json_file(&model.join("config.json"));
    assert!(cfg["training"].get("regularisers").is_none(), "{cfg}");
    let line = metrics(&model).pop().unwrap();
    assert!(line.get("kinetic").is_none() && line.get("jacobian").is_none());
}

#[test]
fn hutchinson_run_on_a_table_uses_the_free_estimate() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m");
    let data = format!("{DATA}/diabetes.csv");
    train_tiny(
        &model,
        &[
            "--data",
            &data,
            "--trace",
            "rademacher",
            "--jacobian",
            "0.01",
        ],
    );
    let line = metrics(&model).pop().unwrap();
    assert!(line["jacobian"].as_f64().unwrap() > 0.0, "{line}");
}

#[test]
fn bad_regulariser_options_are_refused() {
    // Negative or non-finite weights: usage errors (exit code 2).
    for args in [["train", "--kinetic", "-1"], ["train", "--jacobian", "nan"]] {
        let out = cnf(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
    let dir = tempfile::tempdir().unwrap();
    let err = fails(&["train", "--steer", "1.5", "--out", s(&dir.path().join("a"))]);
    assert!(err.contains("steer"), "{err}");
    let err = fails(&[
        "train",
        "--objective",
        "fm",
        "--kinetic",
        "0.1",
        "--out",
        s(&dir.path().join("b")),
    ]);
    assert!(err.contains("flow matching"), "{err}");
    // The local-error penalty differentiates the discrete adaptive steps of an embedded pair.
    for (i, (extra, says)) in [
        (&["--grad", "adjoint"][..], "backprop"),
        (&["--method", "dopri5", "--steps", "4"][..], "solver.steps"),
        (&["--method", "dop853"][..], "embedded pair"),
    ]
    .into_iter()
    .enumerate()
    {
        let out = dir.path().join(format!("le{i}"));
        let mut args = vec!["train", "--local-error", "1"];
        args.extend_from_slice(extra);
        args.extend(["--out", s(&out)]);
        let err = fails(&args);
        assert!(err.contains(says), "{extra:?}: {err}");
    }
    assert_eq!(
        cnf(&["train", "--local-error", "-1"]).status.code(),
        Some(2)
    );
}

#[test]
fn local_error_run_records_logs_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m");
    train_tiny(&model, &["--local-error", "0.5"]);
    let cfg = json_file(&model.join("config.json"));
    assert_eq!(cfg["training"]["regularisers"]["local_error"], 0.5);
    let line = metrics(&model).pop().unwrap();
    let r = line["local_error"].as_f64().unwrap_or(f64::NAN);
    assert!(r.is_finite() && r > 0.0, "{line}");
    assert!(line.get("kinetic").is_none(), "{line}");
    resume_to(&model, "4");
    assert!(
        metrics(&model).last().unwrap()["local_error"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    let err = fails(&[
        "train",
        "--resume",
        "--iters",
        "6",
        "--local-error",
        "2",
        "--out",
        s(&model),
    ]);
    assert!(err.contains("--local-error"), "{err}");
}
