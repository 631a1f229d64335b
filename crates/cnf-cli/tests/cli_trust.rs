//! The numbers and files of the `cnf` command can be trusted: each test drives the real binary
//! and fails on a silently wrong result (issue: data and model integrity, bad input).
mod common;

use std::path::Path;

use common::{cnf, fails, json_file, metrics, ok, parse_csv, s, train_tiny};

/// A deterministic, correlated, non-Gaussian 2-column table `a,b` (plus an `id` column),
/// scaled by `scale`.
fn write_table(path: &Path, rows: usize, scale: f64) {
    let mut text = String::from("a,b,id\n");
    for i in 0..rows {
        let u = ((i * 7919) % rows) as f64 / rows as f64 - 0.5;
        let v = ((i * 104_729) % (rows + 1)) as f64 / (rows + 1) as f64 - 0.5;
        let (a, b) = (10.0 + 3.0 * u, -2.0 + u * u + 0.5 * v);
        text += &format!("{},{},{i}\n", a * scale, b * scale);
    }
    std::fs::write(path, text).unwrap();
}

/// Trains a small table model (a and b; id dropped) and returns nothing; extra flags appended.
fn train_table(csv: &Path, out: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "train",
        "--data",
        s(csv),
        "--drop",
        "id",
        "--iters",
        "4",
        "--val-every",
        "2",
        "--batch",
        "32",
        "--hidden",
        "8",
        "--no-plots",
        "--out",
        s(out),
    ];
    args.extend_from_slice(extra);
    ok(&args)
}

fn column(rows: &[Vec<f64>], j: usize) -> Vec<f64> {
    rows.iter().map(|r| r[j]).collect()
}

/// The `logp` column of `density`'s output, found by name.
fn logp(csv: &str) -> Vec<f64> {
    let (header, rows) = parse_csv(csv);
    let j = header
        .iter()
        .position(|h| h == "logp")
        .expect("a logp column");
    column(&rows, j)
}

/// Standardisation makes a table and the same table scaled by 1e-6 the same problem: training
/// follows the same path in model space, so the validation NLL that drives model selection must
/// agree (it was ~1e12 for the scaled table when validation data were standardised twice), and
/// data-space log-densities differ by exactly d ln(1e-6) (the log-determinant of the scaling).
#[test]
fn scaled_table_gives_the_same_model_and_shifted_log_densities() {
    let dir = tempfile::tempdir().unwrap();
    let (big, small) = (dir.path().join("big.csv"), dir.path().join("small.csv"));
    write_table(&big, 200, 1.0);
    write_table(&small, 200, 1e-6);
    let (mb, ms) = (dir.path().join("mb"), dir.path().join("ms"));
    train_table(&big, &mb, &["--f64"]);
    train_table(&small, &ms, &["--f64"]);
    let (lb, ls) = (metrics(&mb), metrics(&ms));
    // Iteration 0 (the untrained model: the Gaussian baseline), 2 and 4.
    assert_eq!(lb.len(), 3);
    let shift = 2.0 * 1e-6f64.ln();
    for (b, s) in lb.iter().zip(&ls) {
        let (vb, vs) = (
            b["val_nll"].as_f64().unwrap(),
            s["val_nll"].as_f64().unwrap(),
        );
        assert!((vb - vs).abs() < 1e-6 * vb.abs().max(1.0), "{vb} vs {vs}");
        // The model-space value is a plausible NLL of standardised 2-D data (N(0, I): 2.84).
        assert!(vb > 1.0 && vb < 5.0, "{vb}");
        let (db, ds) = (
            b["val_nll_data"].as_f64().unwrap(),
            s["val_nll_data"].as_f64().unwrap(),
        );
        assert!((ds - (db + shift)).abs() < 1e-6, "{db} {ds}");
    }
    // `cnf density` of the same rows: log p shifts by -d ln(1e-6).
    let (db, ds) = (
        ok(&["density", "--model", s(&mb), "--input", s(&big)]),
        ok(&["density", "--model", s(&ms), "--input", s(&small)]),
    );
    let (lb, ls) = (logp(&db), logp(&ds));
    assert_eq!(lb.len(), 200);
    for (b, s) in lb.iter().zip(&ls) {
        assert!((s - (b - shift)).abs() < 1e-6, "{b} {s}");
    }
}

/// `cnf density` gives the library's `log_density` on the same model and points, plus the
/// standardisation's log-determinant.
#[test]
fn density_equals_the_library() {
    use cnf_train::model::ModelDir;
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("t.csv");
    write_table(&csv, 100, 1.0);
    let model = dir.path().join("m");
    train_table(&csv, &model, &[]);
    let out = ok(&["density", "--model", s(&model), "--input", s(&csv)]);
    let (header, rows) = parse_csv(&out);
    // The input's columns come back in their order, with logp appended.
    assert_eq!(header, ["a", "b", "id", "logp"]);
    let md = ModelDir::new(&model);
    let config = md.config().unwrap();
    let cnf = md.load_cnf::<f32>(&config, None).unwrap();
    let st = config.standardizer.as_ref().unwrap();
    // Tables are whitened by default: z = L^{-1} (x - mean) / std, log_det = -sum ln std -
    // sum ln L_ii, computed here by hand from config.json.
    let l = st
        .cholesky
        .as_ref()
        .expect("tables are whitened by default");
    let x: Vec<f32> = rows
        .iter()
        .flat_map(|r| {
            let u = [
                (r[0] - st.mean[0]) / st.std[0],
                (r[1] - st.mean[1]) / st.std[1],
            ];
            let z0 = u[0] / l[0];
            [z0, (u[1] - l[2] * z0) / l[3]]
        })
        .map(|v| v as f32)
        .collect();
    let lib = cnf.log_density(&x).unwrap().logp;
    let log_det = -(st.std[0].ln() + st.std[1].ln() + l[0].ln() + l[3].ln());
    for (r, l) in rows.iter().zip(&lib) {
        let want = f64::from(*l) + log_det;
        assert!(
            (r[3] - want).abs() < 1e-9 * want.abs().max(1.0),
            "{} vs {want}",
            r[3]
        );
    }
}

/// Training lowers the NLL, and config.json records how the run was trained.
#[test]
fn training_lowers_the_nll_and_records_its_settings() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m");
    ok(&[
        "train",
        "--iters",
        "60",
        "--val-every",
        "10",
        "--batch",
        "128",
        "--hidden",
        "32,32",
        "--lr",
        "5e-3",
        "--grad",
        "adjoint",
        "--trace",
        "rademacher",
        "--no-plots",
        "--out",
        s(&model),
    ]);
    let m = metrics(&model);
    let first = m[0]["val_nll"].as_f64().unwrap();
    let last = m.last().unwrap()["val_nll"].as_f64().unwrap();
    assert!(last < first - 0.05, "validation NLL {first} -> {last}");
    let c = json_file(&model.join("config.json"));
    assert_eq!(c["training"]["grad"], "adjoint");
    assert_eq!(c["training"]["trace"], "rademacher");
    assert_eq!(c["training"]["batch"], 128);
    assert_eq!(c["training"]["lr"], 5e-3);
    assert_eq!(c["solver"]["method"], "dopri5");
    assert_eq!(c["precision"], "f32");
}

/// Resume takes the data and settings from the run, continues the iteration count, changes the
/// parameters, and refuses options that conflict with the saved config.
#[test]
fn resume_uses_the_runs_own_data_and_refuses_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("t.csv");
    write_table(&csv, 200, 1.0);
    let model = dir.path().join("m");
    train_table(&csv, &model, &[]);
    let ck0 = json_file(&model.join("checkpoint.json"));
    // No --data: the CSV of the run, not 8gaussians.
    ok(&["train", "--resume", "--iters", "8", "--out", s(&model)]);
    let ck1 = json_file(&model.join("checkpoint.json"));
    assert_eq!(ck0["iter"], 4);
    assert_eq!(ck1["iter"], 8);
    assert_ne!(ck0["params"], ck1["params"]);
    let c = json_file(&model.join("config.json"));
    assert!(c["data"]["path"].as_str().unwrap().ends_with("t.csv"));
    let iters: Vec<u64> = metrics(&model)
        .iter()
        .map(|m| m["iter"].as_u64().unwrap())
        .collect();
    assert_eq!(iters, [0, 2, 4, 6, 8], "iteration 0: the untrained model");
    for (flag, value, says) in [
        ("--data", "8gaussians", "not the data of the run"),
        ("--hidden", "16", "--hidden"),
        ("--method", "tsit5", "--method"),
        ("--grad", "adjoint", "--grad"),
        ("--batch", "64", "--batch"),
    ] {
        let err = fails(&[
            "train",
            "--resume",
            "--iters",
            "10",
            flag,
            value,
            "--out",
            s(&model),
        ]);
        assert!(err.contains(says), "{flag}: {err}");
    }
    // The same values as the run's are fine.
    ok(&[
        "train",
        "--resume",
        "--iters",
        "10",
        "--data",
        s(&csv),
        "--hidden",
        "8",
        "--out",
        s(&model),
    ]);
    assert_eq!(json_file(&model.join("checkpoint.json"))["iter"], 10);
}

/// A metrics line past the checkpoint (a kill between the two writes) is not kept twice.
#[test]
fn resumed_metrics_hold_each_iteration_once() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m");
    train_tiny(&model, &[]);
    let path = model.join("metrics.jsonl");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text += "{\"iter\":4,\"val_nll\":1.0}\n";
    std::fs::write(&path, text).unwrap();
    ok(&["train", "--resume", "--iters", "6", "--out", s(&model)]);
    let iters: Vec<u64> = metrics(&model)
        .iter()
        .map(|m| m["iter"].as_u64().unwrap())
        .collect();
    assert_eq!(iters, [2, 4, 6]);
}

/// Columns are matched by name: a file with its columns in another order (and the dropped
/// column still present) gives the same log-densities; without a header, the count must match.
#[test]
fn density_matches_columns_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("t.csv");
    write_table(&csv, 100, 1.0);
    let model = dir.path().join("m");
    train_table(&csv, &model, &[]);
    let first = ok(&["density", "--model", s(&model), "--input", s(&csv)]);
    let (_, rows) = parse_csv(&first);
    let want = logp(&first);
    let swapped = dir.path().join("swapped.csv");
    let text: String = rows
        .iter()
        .enumerate()
        .map(|(i, r)| format!("{i},{},{}\n", r[1], r[0]))
        .collect();
    std::fs::write(&swapped, format!("id,b,a\n{text}")).unwrap();
    let out = ok(&["density", "--model", s(&model), "--input", s(&swapped)]);
    assert_eq!(parse_csv(&out).0, ["id", "b", "a", "logp"]);
    assert_eq!(logp(&out), want);
    // Headerless with the right count: taken in order.
    let plain = dir.path().join("plain.csv");
    let text: String = rows
        .iter()
        .map(|r| format!("{},{}\n", r[0], r[1]))
        .collect();
    std::fs::write(&plain, text).unwrap();
    let out = ok(&["density", "--model", s(&model), "--input", s(&plain)]);
    assert_eq!(logp(&out), want);
    // Headerless with a column too many, or a header without the model's columns.
    let wide = dir.path().join("wide.csv");
    std::fs::write(&wide, "1,2,3\n4,5,6\n").unwrap();
    assert!(fails(&["density", "--model", s(&model), "--input", s(&wide)]).contains("expects 2"));
    let other = dir.path().join("other.csv");
    std::fs::write(&other, "a,c\n1,2\n").unwrap();
    assert!(fails(&["density", "--model", s(&model), "--input", s(&other)]).contains("lacks"));
}

/// `eval` recognises the training file by content, whatever path names it, and reports the
/// flow's NLL with a reason when the Gaussian baseline cannot be fitted.
#[test]
fn eval_recognises_the_training_file_and_survives_a_singular_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("t.csv");
    write_table(&csv, 200, 1.0);
    let model = dir.path().join("m");
    train_table(&csv, &model, &[]);
    let copy = dir.path().join("sub").join("copy.csv");
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    std::fs::copy(&csv, &copy).unwrap();
    for path in [csv.clone(), copy, dir.path().join("sub/../t.csv")] {
        let j: serde_json::Value = serde_json::from_str(&ok(&[
            "eval",
            "--model",
            s(&model),
            "--data",
            s(&path),
            "--json",
        ]))
        .unwrap();
        assert_eq!(j["n"], 20, "{}", path.display());
        assert!(j["points"].as_str().unwrap().starts_with("the test split"));
        assert!(j["gaussian_nll"].as_f64().unwrap().is_finite());
    }
    // Another file: all its rows, no baseline.
    let other = dir.path().join("other.csv");
    write_table(&other, 30, 1.0);
    let j: serde_json::Value = serde_json::from_str(&ok(&[
        "eval",
        "--model",
        s(&model),
        "--data",
        s(&other),
        "--json",
    ]))
    .unwrap();
    assert_eq!(j["n"], 30);
    assert!(j.get("gaussian_nll").is_none());

    // Two identical columns: the covariance is singular.
    let twin = dir.path().join("twin.csv");
    let text: String = (0..100)
        .map(|i| {
            let v = ((i * 37) % 100) as f64 / 10.0;
            format!("{v},{v},{}\n", (i * 13 % 7) as f64)
        })
        .collect();
    std::fs::write(&twin, format!("p,q,r\n{text}")).unwrap();
    let tm = dir.path().join("tm");
    train_tiny(&tm, &["--data", s(&twin)]);
    let j: serde_json::Value = serde_json::from_str(&ok(&[
        "eval",
        "--model",
        s(&tm),
        "--data",
        s(&twin),
        "--json",
    ]))
    .unwrap();
    assert!(j["test_nll"].as_f64().unwrap().is_finite());
    assert!(
        j["gaussian_missing"].as_str().unwrap().contains("singular"),
        "{j}"
    );
}

/// config.json is checked against the weights and for impossible values.
#[test]
fn a_tampered_config_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m");
    train_tiny(&model, &[]);
    let path = model.join("config.json");
    let good = std::fs::read_to_string(&path).unwrap();
    let points = dir.path().join("p.csv");
    std::fs::write(&points, "x0,x1\n0.1,0.2\n").unwrap();
    for (from, to, says) in [
        ("\"tanh\"", "\"softplus\"", "was saved for"),
        (
            "\"rtol\": 0.00001",
            "\"rtol\": -1.0",
            "config.json: solver.rtol",
        ),
        (
            "\"method\": \"dopri5\"",
            "\"method\": \"rk5\"",
            "config.json",
        ),
    ] {
        assert!(good.contains(from), "{from} not in {good}");
        std::fs::write(&path, good.replace(from, to)).unwrap();
        let err = fails(&["density", "--model", s(&model), "--input", s(&points)]);
        assert!(err.contains(says), "{to}: {err}");
    }
    // A table model with a non-positive scale.
    let csv = dir.path().join("t.csv");
    write_table(&csv, 50, 1.0);
    let tm = dir.path().join("tm");
    train_table(&csv, &tm, &[]);
    let path = tm.join("config.json");
    let mut c = json_file(&path);
    c["standardizer"]["std"][1] = serde_json::json!(0.0);
    std::fs::write(&path, c.to_string()).unwrap();
    let err = fails(&["density", "--model", s(&tm), "--input", s(&csv)]);
    assert!(err.contains("standardizer.std[1]"), "{err}");
}

/// A trained folder is never overwritten without --force; --force removes the old run's files;
/// two processes cannot write into one folder.
#[test]
fn model_folders_are_never_lost() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m");
    let base = [
        "train",
        "--iters",
        "2",
        "--val-every",
        "2",
        "--batch",
        "16",
        "--hidden",
        "8",
    ];
    let with = |extra: &[&str]| -> Vec<String> {
        base.iter()
            .chain(extra)
            .chain(&["--out", s(&model)])
            .map(|a| a.to_string())
            .collect()
    };
    let run = |extra: &[&str]| cnf(&with(extra).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(run(&[]).status.success());
    assert!(model.join("density.png").exists());
    let weights = std::fs::read(model.join("model.safetensors")).unwrap();
    let out = run(&["--seed", "5"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));
    assert_eq!(
        std::fs::read(model.join("model.safetensors")).unwrap(),
        weights
    );
    // --force replaces the run: the stale plots of the old one are gone.
    assert!(run(&["--seed", "5", "--force", "--no-plots"])
        .status
        .success());
    assert!(!model.join("density.png").exists());
    assert_ne!(
        std::fs::read(model.join("model.safetensors")).unwrap(),
        weights
    );

    // A long training holds the lock; a second one into the same folder is refused.
    let other = dir.path().join("o");
    let mut first = std::process::Command::new(env!("CARGO_BIN_EXE_cnf"))
        .args([
            "train",
            "--iters",
            "100000",
            "--hidden",
            "8",
            "--no-plots",
            "--out",
        ])
        .arg(&other)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !other.join("config.json").exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let second = cnf(&["train", "--iters", "2", "--resume", "--out", s(&other)]);
    first.kill().unwrap();
    first.wait().unwrap();
    assert_eq!(second.status.code(), Some(1));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("another cnf process"), "{err}");
    // No temporary file is left behind by the atomic writes.
    let stray: Vec<_> = std::fs::read_dir(&model)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
}

/// Sizes that cannot work are refused with the limit, not an abort or an OOM kill; malformed
/// choices are clap's usage errors (exit code 2).
#[test]
fn impossible_sizes_and_bad_choices() {
    let usage = |args: &[&str], says: &str| {
        let out = cnf(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    };
    usage(&["train", "--hidden", "1000000000"], "1..=65536");
    usage(&["train", "--batch", "1000000000"], "1..=1048576");
    usage(&["train", "--steps", "1000000000000"], "1..=1000000");
    usage(
        &["train", "--grad", "magic"],
        "backprop, checkpointed, adjoint",
    );
    usage(&["train", "--method", "rk5"], "dopri5");
    usage(&["train", "--activation", "relu"], "tanh");
    usage(&["train", "--trace", "exactly"], "rademacher");
    usage(&["train", "--rtol=-1"], "positive");
    usage(
        &[
            "plot",
            "--model",
            "m",
            "--out",
            "p.png",
            "--resolution",
            "100000",
        ],
        "2..=2000",
    );
    let dir = tempfile::tempdir().unwrap();
    let err = fails(&[
        "train",
        "--hidden",
        "60000,60000,60000",
        "--out",
        s(&dir.path().join("m")),
    ]);
    assert!(err.contains("too large"), "{err}");
}

/// Messages say what is wrong with the user's input, in the user's terms.
#[test]
fn messages_name_the_real_problem() {
    let dir = tempfile::tempdir().unwrap();
    let one = dir.path().join("one.csv");
    std::fs::write(&one, "a,b\n1,2\n").unwrap();
    let err = fails(&[
        "train",
        "--data",
        s(&one),
        "--out",
        s(&dir.path().join("m1")),
    ]);
    assert!(err.contains("one.csv") && err.contains('1'), "{err}");
    assert!(!err.contains("got 0"), "{err}");

    // An f32 toy model (no standardisation): 1e39 overflows f32; 1e30 is finite in f32 but
    // its log-density is not.
    let model = dir.path().join("m");
    train_tiny(&model, &[]);
    let pts = dir.path().join("p.csv");
    std::fs::write(&pts, "x0,x1\n0,0\n1e39,0\n").unwrap();
    let err = fails(&["density", "--model", s(&model), "--input", s(&pts)]);
    assert!(
        err.contains("overflows the model's precision (f32)"),
        "{err}"
    );
    std::fs::write(&pts, "x0,x1\n0,0\n1e30,0\n").unwrap();
    let err = fails(&["density", "--model", s(&model), "--input", s(&pts)]);
    assert!(
        err.contains("row 2 (counting from 1)") && err.contains("not finite in f32"),
        "{err}"
    );
    // The same points in f64 have finite log-densities.
    let (_, rows) = parse_csv(&ok(&[
        "density",
        "--model",
        s(&model),
        "--input",
        s(&pts),
        "--f64",
    ]));
    assert!(rows.iter().all(|r| r[2].is_finite()));
}
