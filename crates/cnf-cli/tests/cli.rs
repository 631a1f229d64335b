//! Drives the real `cnf` binary.
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{fails, ok, parse_csv, s, DATA};

#[test]
fn help_on_every_subcommand() {
    for sub in ["train", "density", "sample", "plot", "import", "eval"] {
        let out = ok(&[sub, "--help"]);
        assert!(out.contains("Usage"), "{sub}: {out}");
    }
}

#[test]
fn train_density_sample_plot_eval_on_a_toy_set() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m");
    ok(&[
        "train",
        "--iters",
        "4",
        "--val-every",
        "2",
        "--batch",
        "64",
        "--hidden",
        "16,16",
        "--out",
        s(&model),
    ]);
    for f in [
        "config.json",
        "model.safetensors",
        "metrics.jsonl",
        "checkpoint.json",
        "density.png",
        "samples.png",
        "trajectories.png",
        "training_curve.png",
    ] {
        assert!(model.join(f).exists(), "{f} missing");
    }
    let metrics = std::fs::read_to_string(model.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 2);
    let m: serde_json::Value = serde_json::from_str(metrics.lines().next().unwrap()).unwrap();
    assert!(m["val_nll"].as_f64().unwrap().is_finite());

    let samples = dir.path().join("s.csv");
    ok(&[
        "sample",
        "--model",
        s(&model),
        "-n",
        "50",
        "--output",
        s(&samples),
    ]);
    let text = std::fs::read_to_string(&samples).unwrap();
    let (header, rows) = parse_csv(&text);
    assert_eq!(header.len(), 2);
    assert_eq!(rows.len(), 50);

    let dens = ok(&["density", "--model", s(&model), "--input", s(&samples)]);
    let (header, rows) = parse_csv(&dens);
    assert_eq!(header.last().unwrap(), "logp");
    assert_eq!(rows.len(), 50);
    assert!(rows.iter().all(|r| r.len() == 3 && r[2].is_finite()));

    let png = dir.path().join("p.png");
    ok(&[
        "plot",
        "--model",
        s(&model),
        "--out",
        s(&png),
        "--resolution",
        "40",
    ]);
    assert_eq!(&std::fs::read(&png).unwrap()[..4], b"\x89PNG");

    let json: serde_json::Value = serde_json::from_str(&ok(&[
        "eval",
        "--model",
        s(&model),
        "--data",
        "8gaussians",
        "--json",
    ]))
    .unwrap();
    assert_eq!(json["n"].as_u64(), Some(10_000));
    assert!(json["test_nll"].as_f64().unwrap().is_finite());
    assert!(json["stderr"].as_f64().unwrap() > 0.0);
    assert!(json.get("gaussian_nll").is_none());
    // 10k points in solves of up to 1024: 10 solves; the NFE is their sum.
    assert_eq!(json["solves"].as_u64(), Some(10));
    let (nfe, per) = (
        json["nfe"].as_f64().unwrap(),
        json["nfe_per_solve"].as_f64().unwrap(),
    );
    assert!(nfe > 0.0 && (per * 10.0 - nfe).abs() < 1e-9, "{json}");
    // The per-sample error norm is named in the report and does at least the same work.
    let strict: serde_json::Value = serde_json::from_str(&ok(&[
        "eval",
        "--model",
        s(&model),
        "--data",
        "8gaussians",
        "--error-norm",
        "per-sample",
        "--json",
    ]))
    .unwrap();
    assert!(
        strict["solver"]
            .as_str()
            .unwrap()
            .ends_with("per-sample norm"),
        "{strict}"
    );
    assert!(strict["nfe"].as_f64().unwrap() >= nfe, "{strict} vs {json}");
}

/// `cnf import` of the diffrax model reproduces scipy's log-densities (tests/data/README.md).
#[test]
fn import_reproduces_reference_logp() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("imported");
    ok(&[
        "import",
        "--npz",
        &format!("{DATA}/cnf_8g_diffrax_1000it.npz"),
        "--hidden",
        "64,64,64",
        "--activation",
        "tanh",
        "--out",
        s(&model),
    ]);
    let reference = std::fs::read_to_string(format!("{DATA}/logp_reference.csv")).unwrap();
    let (_, rows) = parse_csv(&reference);
    let input = dir.path().join("x.csv");
    let xs: String = rows
        .iter()
        .map(|r| format!("{},{}\n", r[0], r[1]))
        .collect();
    std::fs::write(&input, format!("x0,x1\n{xs}")).unwrap();
    let out = ok(&[
        "density",
        "--model",
        s(&model),
        "--input",
        s(&input),
        "--f64",
        "--rtol",
        "1e-10",
        "--atol",
        "1e-10",
    ]);
    let (_, got) = parse_csv(&out);
    assert_eq!(got.len(), 69);
    for (g, r) in got.iter().zip(&rows) {
        assert!((g[2] - r[2]).abs() < 1e-8, "{} vs {}", g[2], r[2]);
    }
}

#[test]
fn tabular_training_reports_the_gaussian_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("t.csv");
    // A deterministic correlated cloud with a third column to drop.
    let mut text = String::from("a,b,id\n");
    for i in 0..400 {
        let u = ((i * 7919) % 400) as f64 / 400.0 - 0.5;
        let v = ((i * 104_729) % 401) as f64 / 401.0 - 0.5;
        text += &format!("{},{},{}\n", 10.0 + 3.0 * u, -2.0 + u + 0.5 * v, i);
    }
    std::fs::write(&csv, text).unwrap();
    let model = dir.path().join("m");
    ok(&[
        "train",
        "--data",
        s(&csv),
        "--drop",
        "id",
        "--iters",
        "3",
        "--val-every",
        "3",
        "--batch",
        "32",
        "--hidden",
        "8",
        "--no-plots",
        "--out",
        s(&model),
    ]);
    let json: serde_json::Value = serde_json::from_str(&ok(&[
        "eval",
        "--model",
        s(&model),
        "--data",
        s(&csv),
        "--json",
    ]))
    .unwrap();
    assert_eq!(json["n"].as_u64(), Some(40));
    assert!(json["gaussian_nll"].as_f64().unwrap().is_finite());
    // Density of the training file: every column kept (the id dropped in training too),
    // logp appended.
    let out = ok(&["density", "--model", s(&model), "--input", s(&csv)]);
    let (header, rows) = parse_csv(&out);
    assert_eq!(header, ["a", "b", "id", "logp"]);
    assert_eq!(rows.len(), 400);
}

#[test]
fn bad_csvs_give_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &str, &str); 5] = [
        ("ragged", "a,b\n1,2\n3\n", "line 3"),
        // A word in one of the model's columns (words in other columns are kept as text).
        ("text", "x0,x1\n1,2\n3,x\n", "not a number"),
        ("nan", "a,b\n1,2\nNaN,1\n", "not finite"),
        ("empty", "", "no"),
        ("three_columns", "a,b,c\n1,2,3\n4,5,6\n", "columns"),
    ];
    let model = dir.path().join("m");
    ok(&[
        "import",
        "--npz",
        &format!("{DATA}/cnf_8g_diffrax_1000it.npz"),
        "--out",
        s(&model),
    ]);
    for (name, content, needle) in cases {
        let p: PathBuf = dir.path().join(format!("{name}.csv"));
        std::fs::write(&p, content).unwrap();
        let err = fails(&["density", "--model", s(&model), "--input", s(&p)]);
        assert!(err.to_lowercase().contains(needle), "{name}: {err}");
        let err = fails(&[
            "train",
            "--data",
            s(&p),
            "--iters",
            "1",
            "--out",
            s(&dir.path().join("t")),
        ]);
        assert!(!err.is_empty());
    }
    fails(&[
        "density",
        "--model",
        s(&dir.path().join("nope")),
        "--input",
        "x.csv",
    ]);
    fails(&["train", "--data", "not-a-set", "--iters", "1"]);
    fails(&[
        "train",
        "--method",
        "rk4",
        "--iters",
        "1",
        "--out",
        s(&dir.path().join("r")),
    ]);
}

/// Kill training at arbitrary moments (it saves after every iteration here): the folder always
/// holds a loadable model and checkpoint, and `--resume` continues.
#[test]
fn killed_training_leaves_a_loadable_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m");
    let input = dir.path().join("x.csv");
    std::fs::write(&input, "x0,x1\n0.5,0.5\n-1,2\n").unwrap();
    let mut before = 0;
    for (round, wait_ms) in [700u64, 1100, 1500].into_iter().enumerate() {
        let mut args = vec![
            "train",
            "--iters",
            "100000",
            "--val-every",
            "1",
            "--batch",
            "32",
            "--hidden",
            "16,16",
            "--no-plots",
            "--out",
            s(&model),
        ];
        if round > 0 {
            args.push("--resume");
        }
        let mut child = Command::new(env!("CARGO_BIN_EXE_cnf"))
            .args(&args)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Wait until this run has saved a checkpoint past the previous round's (a resume that
        // failed would exit early, or never advance), then a little more, then kill mid-run.
        let t0 = std::time::Instant::now();
        while checkpoint_iter(&model) <= before {
            assert!(
                child.try_wait().unwrap().is_none(),
                "round {round}: cnf train exited before it was killed"
            );
            assert!(
                t0.elapsed().as_secs() < 60,
                "round {round}: no new checkpoint"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        std::thread::sleep(std::time::Duration::from_millis(wait_ms));
        assert!(
            child.try_wait().unwrap().is_none(),
            "round {round}: cnf train exited before it was killed"
        );
        child.kill().unwrap();
        child.wait().unwrap();
        let out = ok(&["density", "--model", s(&model), "--input", s(&input)]);
        assert_eq!(parse_csv(&out).1.len(), 2);
        let now = checkpoint_iter(&model);
        assert!(
            now > before,
            "round {round}: checkpoint {now} after {before}"
        );
        before = now;
    }
}

/// The iteration of the run's checkpoint (0 before there is one).
fn checkpoint_iter(model: &Path) -> u64 {
    std::fs::read_to_string(model.join("checkpoint.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["iter"].as_u64())
        .unwrap_or(0)
}

/// The same seed gives the same model; stopping and resuming gives the same model as one run.
#[test]
fn training_is_reproducible_and_resume_continues_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let common = [
        "--val-every",
        "2",
        "--batch",
        "64",
        "--hidden",
        "16,16",
        "--no-plots",
    ];
    let train = |out: &Path, iters: &str, resume: bool| {
        let mut args = vec!["train", "--iters", iters, "--out", s(out)];
        args.extend(common);
        if resume {
            args.push("--resume");
        }
        ok(&args);
    };
    let (a, b, c) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    );
    train(&a, "6", false);
    train(&b, "6", false);
    train(&c, "2", false);
    train(&c, "6", true);
    let params = |p: &Path| -> Vec<f64> {
        let ck: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(p.join("checkpoint.json")).unwrap())
                .unwrap();
        assert_eq!(ck["iter"].as_u64(), Some(6));
        ck["params"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect()
    };
    let (pa, pb, pc) = (params(&a), params(&b), params(&c));
    assert_eq!(pa, pb, "same seed, same parameters");
    assert_eq!(pa, pc, "resumed run differs from the uninterrupted one");
    let metrics = std::fs::read_to_string(c.join("metrics.jsonl")).unwrap();
    assert_eq!(
        metrics.lines().count(),
        3,
        "metrics continue across the resume"
    );
}

/// Ten columns with Hutchinson's trace (tables choose the exact trace up to 16 columns, so it is
/// asked for); also the adjoint gradient and f64.
#[test]
fn high_dimensional_table_trains_with_hutchinson_adjoint_f64() {
    let dir = tempfile::tempdir().unwrap();
    let npy = dir.path().join("t.csv");
    let mut text = (0..10)
        .map(|j| format!("c{j}"))
        .collect::<Vec<_>>()
        .join(",")
        + "\n";
    for i in 0..200 {
        let row: Vec<String> = (0..10)
            .map(|j| {
                format!(
                    "{}",
                    (((i * 31 + j * 17) % 97) as f64 / 97.0 - 0.5) * (j + 1) as f64
                )
            })
            .collect();
        text += &(row.join(",") + "\n");
    }
    std::fs::write(&npy, text).unwrap();
    let model = dir.path().join("m");
    ok(&[
        "train",
        "--data",
        s(&npy),
        "--iters",
        "2",
        "--val-every",
        "2",
        "--batch",
        "16",
        "--hidden",
        "8",
        "--grad",
        "adjoint",
        "--trace",
        "rademacher",
        "--f64",
        "--out",
        s(&model),
    ]);
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["precision"], "f64");
    assert_eq!(config["mlp"]["dim"], 10);
    let metrics = std::fs::read_to_string(model.join("metrics.jsonl")).unwrap();
    // The last line: tables also validate the untrained model (iteration 0, no backward pass).
    let m: serde_json::Value = serde_json::from_str(metrics.lines().last().unwrap()).unwrap();
    assert!(m["val_nll"].as_f64().unwrap().is_finite());
    assert!(m["nfe_bwd"].as_u64().unwrap() > 0);
    assert_eq!(config["training"]["trace"], "rademacher");
    let json: serde_json::Value = serde_json::from_str(&ok(&[
        "eval",
        "--model",
        s(&model),
        "--data",
        s(&npy),
        "--json",
        "--f64",
    ]))
    .unwrap();
    assert_eq!(json["n"].as_u64(), Some(20));
    assert!(json["test_nll"].as_f64().unwrap().is_finite());
    // No 2-D plots for 10-D data, and `plot` says why.
    assert!(!model.join("density.png").exists());
    let err = fails(&[
        "plot",
        "--model",
        s(&model),
        "--out",
        s(&dir.path().join("p.png")),
    ]);
    assert!(err.contains("2-D"), "{err}");
}

/// A run that blows up (resumed with an absurd learning rate) stops with exit code 1 and a
/// one-line reason, and the folder keeps a loadable model and checkpoint.
#[test]
fn divergence_stops_training_and_keeps_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m");
    let common = [
        "--val-every",
        "1",
        "--batch",
        "64",
        "--hidden",
        "16,16",
        "--no-plots",
        "--out",
        s(&model),
    ];
    let mut first = vec!["train", "--iters", "2"];
    first.extend(common);
    ok(&first);
    let mut blow_up = vec!["train", "--resume", "--lr", "1e30", "--iters", "300"];
    blow_up.extend(common);
    let err = fails(&blow_up);
    assert!(err.contains("training stopped at iteration"), "{err}");
    assert!(err.contains("last good checkpoint is kept"), "{err}");
    let input = dir.path().join("x.csv");
    std::fs::write(&input, "x0,x1\n0.5,0.5\n").unwrap();
    let out = ok(&["density", "--model", s(&model), "--input", s(&input)]);
    assert!(parse_csv(&out).1[0][2].is_finite());
    let ck: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("checkpoint.json")).unwrap())
            .unwrap();
    assert!(ck["params"]
        .as_array()
        .unwrap()
        .iter()
        .all(|v| v.as_f64().is_some_and(f64::is_finite)));
}
