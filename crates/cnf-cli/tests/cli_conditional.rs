//! Conditional models from the command line: `cnf train --context`, `cnf sample --given`,
//! `cnf density` and `cnf eval` of p(x | c), resume, and every refusal of bad input.
mod common;

use std::path::Path;

use common::{cnf, fails, json_file, ok, parse_csv, s, strs, tiny_train};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};

/// A 2-D gaussian-linear simulation table (theta ~ N(0, 0.1 I), x ~ N(theta, 0.1 I)) with an
/// id column: `id,theta_1,theta_2,x_1,x_2`.
fn simulations(path: &Path, n: usize) {
    let mut rng = StdRng::seed_from_u64(5);
    let sd = Normal::new(0.0, 0.1f64.sqrt()).unwrap();
    let mut text = String::from("id,theta_1,theta_2,x_1,x_2\n");
    for i in 0..n {
        let t = [sd.sample(&mut rng), sd.sample(&mut rng)];
        let x = [t[0] + sd.sample(&mut rng), t[1] + sd.sample(&mut rng)];
        text += &format!("{i},{},{},{},{}\n", t[0], t[1], x[0], x[1]);
    }
    std::fs::write(path, text).unwrap();
}

/// Trains a tiny conditional model on `data` into `out` with `extra` flags.
fn train(data: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = tiny_train(&["--data", s(data), "--out", s(out)]);
    args.extend(extra.iter().map(|a| a.to_string()));
    cnf(&strs(&args))
}

fn trained(data: &Path, out: &Path, extra: &[&str]) -> String {
    let o = train(data, out, extra);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "{err}");
    err
}

/// `cnf sample --model MODEL -n N --given GIVEN` as arguments.
fn sample_args<'a>(model: &'a Path, n: &'a str, given: &'a Path) -> [&'a str; 7] {
    ["sample", "--model", s(model), "-n", n, "--given", s(given)]
}

#[test]
fn train_sample_density_eval_and_resume_a_conditional_model() {
    let dir = tempfile::tempdir().unwrap();
    let sims = dir.path().join("sims.csv");
    simulations(&sims, 300);
    let model = dir.path().join("post");
    let err = trained(&sims, &model, &["--context", "x_1,x_2", "--drop", "id"]);
    assert!(err.contains("p(theta_1, theta_2 | x_1, x_2)"), "{err}");
    let c = json_file(&model.join("config.json"));
    assert_eq!(c["columns"], serde_json::json!(["theta_1", "theta_2"]));
    assert_eq!(c["context"]["columns"], serde_json::json!(["x_1", "x_2"]));
    assert_eq!(c["mlp"]["context_dim"], 2);
    // Flow matching keeps a moving average of the weights by default.
    assert_eq!(c["training"]["ema_decay"], 0.999);
    // The context statistics are the training split's: x has standard deviation
    // sqrt(0.2) = 0.447 (within a few percent at 240 rows).
    for j in 0..2 {
        let sd = c["context"]["std"][j].as_f64().unwrap();
        assert!((sd / 0.2f64.sqrt() - 1.0).abs() < 0.15, "std {sd}");
    }

    // One given row: -n rows of the modelled columns under their names.
    let one = dir.path().join("one.csv");
    std::fs::write(&one, "x_2,x_1\n0.1,0.3\n").unwrap();
    let out = ok(&sample_args(&model, "5", &one));
    let (header, rows) = parse_csv(&out);
    assert_eq!(header, ["theta_1", "theta_2"]);
    assert_eq!(rows.len(), 5);

    // Several rows: an index column; the first given row's draws are those of the one-row
    // file (the base points are drawn in the order of the rows), up to the solver's tolerance
    // (rtol = atol = 1e-5: the batch's RMS error norm steps a solve of 15 points differently
    // from one of 5).
    let three = dir.path().join("three.csv");
    std::fs::write(&three, "x_1,x_2\n0.3,0.1\n-0.5,0.2\n0.0,0.0\n").unwrap();
    let out3 = ok(&sample_args(&model, "5", &three));
    let (header, rows3) = parse_csv(&out3);
    assert_eq!(header, ["given_row", "theta_1", "theta_2"]);
    assert_eq!(rows3.len(), 15);
    for (i, r) in rows3.iter().enumerate() {
        assert_eq!(r[0], (i / 5) as f64);
    }
    for (a, b) in rows.iter().zip(&rows3[..5]) {
        for (u, v) in a.iter().zip(&b[1..]) {
            assert!(
                (u - v).abs() < 1e-4,
                "row 0 of three {v} vs the one-row draw {u}"
            );
        }
    }
    // Different conditions give different draws from the same base points.
    assert_ne!(rows3[0][1..], rows3[5][1..]);

    // density: log p(x | c) per row, columns by name (in any order, among others).
    let dens = ok(&["density", "--model", s(&model), "--input", s(&sims)]);
    let (header, d1) = parse_csv(&dens);
    assert_eq!(header, ["id", "theta_1", "theta_2", "x_1", "x_2", "logp"]);
    assert_eq!(d1.len(), 300);
    let reordered = dir.path().join("reordered.csv");
    let mut text = String::from("x_2,theta_2,x_1,theta_1\n");
    // All rows: the same batch, so the same adaptive steps and the same numbers.
    for r in &d1 {
        text += &format!("{},{},{},{}\n", r[4], r[2], r[3], r[1]);
    }
    std::fs::write(&reordered, text).unwrap();
    let (_, d2) = parse_csv(&ok(&[
        "density",
        "--model",
        s(&model),
        "--input",
        s(&reordered),
    ]));
    for (a, b) in d1.iter().zip(&d2) {
        assert_eq!(
            a[5], b[4],
            "the same log p(x | c) whatever the column order"
        );
    }

    // eval: the held-out conditional NLL, with the linear-Gaussian baseline.
    let json = ok(&["eval", "--model", s(&model), "--data", s(&sims), "--json"]);
    let e: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(e["given"], serde_json::json!(["x_1", "x_2"]));
    // A conditional run's test split is 5% of the rows (`CONDITIONAL_SPLIT`).
    assert_eq!(e["n"], 15);
    assert!(e["test_nll"].as_f64().unwrap().is_finite());
    assert!(e["gaussian_nll"].as_f64().unwrap().is_finite());
    assert!(e["w2"].as_f64().unwrap() > 0.0);
    let text = ok(&["eval", "--model", s(&model), "--data", s(&sims)]);
    assert!(
        text.contains("test conditional NLL -log p(x | c)"),
        "{text}"
    );

    // resume continues with the run's columns; another context is refused.
    ok(&[
        "train",
        "--resume",
        "--iters",
        "6",
        "--out",
        s(&model),
        "--no-plots",
    ]);
    assert_eq!(json_file(&model.join("checkpoint.json"))["iter"], 6);
    for (flag, value) in [("--context", "x_1"), ("--ema-decay", "0.5")] {
        let e = fails(&[
            "train",
            "--resume",
            "--iters",
            "8",
            "--out",
            s(&model),
            flag,
            value,
        ]);
        assert!(e.contains(flag) && e.contains("conflicts"), "{e}");
    }
}

#[test]
fn flow_matching_trains_conditionally_with_independent_pairs() {
    let dir = tempfile::tempdir().unwrap();
    let sims = dir.path().join("sims.csv");
    simulations(&sims, 200);
    let model = dir.path().join("fm");
    let err = trained(
        &sims,
        &model,
        &[
            "--context",
            "x_1,x_2",
            "--columns",
            "theta_1,theta_2",
            "--objective",
            "fm",
            "--coupling",
            "ot",
        ],
    );
    assert!(err.contains("pairs independently"), "{err}");
    let c = json_file(&model.join("config.json"));
    assert_eq!(
        c["training"]["flow_matching"]["coupling"]["kind"],
        "independent"
    );
    assert_eq!(c["columns"], serde_json::json!(["theta_1", "theta_2"]));
    let one = dir.path().join("one.csv");
    std::fs::write(&one, "x_1,x_2\n0.3,0.1\n").unwrap();
    let (_, rows) = parse_csv(&ok(&sample_args(&model, "3", &one)));
    assert_eq!(rows.len(), 3);
    ok(&[
        "train",
        "--resume",
        "--iters",
        "4",
        "--out",
        s(&model),
        "--no-plots",
    ]);

    // --columns selects the modelled columns: one of theta given one of x.
    let small = dir.path().join("small");
    trained(&sims, &small, &["--context", "x_1", "--columns", "theta_1"]);
    let c = json_file(&small.join("config.json"));
    assert_eq!(c["columns"], serde_json::json!(["theta_1"]));
    assert_eq!(c["context"]["columns"], serde_json::json!(["x_1"]));
}

#[test]
fn bad_conditional_input_gets_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let sims = dir.path().join("sims.csv");
    simulations(&sims, 200);
    let out = dir.path().join("m");
    let run = |extra: &[&str]| {
        let mut args = tiny_train(&["--data", s(&sims), "--out", s(&out)]);
        args.extend(extra.iter().map(|a| a.to_string()));
        fails(&strs(&args))
    };
    let e = run(&["--context", "x_3"]);
    assert!(e.contains("no column(s) x_3"), "{e}");
    let e = run(&["--context", "x_1,theta_1", "--columns", "theta_1"]);
    assert!(e.contains("both modelled"), "{e}");
    let e = run(&["--context", "x_1,x_1"]);
    assert!(e.contains("twice"), "{e}");
    let e = fails(&strs(&tiny_train(&["--context", "x_1", "--out", s(&out)])));
    assert!(e.contains("toy set"), "{e}");

    let model = dir.path().join("post");
    trained(&sims, &model, &["--context", "x_1,x_2", "--drop", "id"]);
    let given = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let sample = |g: &Path| fails(&sample_args(&model, "2", g));
    let e = fails(&["sample", "--model", s(&model), "-n", "2"]);
    assert!(
        e.contains("conditional on x_1, x_2") && e.contains("--given"),
        "{e}"
    );
    let e = sample(&given("missing.csv", "x_1\n0.1\n"));
    assert!(e.contains("lacks the context column(s) x_2"), "{e}");
    let e = sample(&given("extra.csv", "x_1,x_2,theta_1\n0.1,0.2,0.3\n"));
    assert!(e.contains("theta_1 that are not context columns"), "{e}");
    let e = sample(&given("nan.csv", "x_1,x_2\n0.1,nan\n"));
    assert!(e.contains("not finite"), "{e}");
    // Far outside the training range: a warning naming the column, and the draws.
    let far = given("far.csv", "x_1,x_2\n0.1,25\n");
    let o = cnf(&sample_args(&model, "2", &far));
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("warning: context column \"x_2\" is far outside the training range"),
        "{err}"
    );
    // density needs the context columns too.
    let e = fails(&[
        "density",
        "--model",
        s(&model),
        "--input",
        s(&given("dx.csv", "theta_1,theta_2,x_1\n0,0,0\n")),
    ]);
    assert!(e.contains("lacks the model's column(s) x_2"), "{e}");
    let e = fails(&[
        "plot",
        "--model",
        s(&model),
        "--out",
        s(&dir.path().join("p.png")),
    ]);
    assert!(e.contains("conditional"), "{e}");

    // An unconditional model refuses --given.
    let plain = dir.path().join("plain");
    ok(&strs(&tiny_train(&["--out", s(&plain)])));
    let e = fails(&sample_args(&plain, "2", &given("g.csv", "x_1,x_2\n0,0\n")));
    assert!(e.contains("unconditional"), "{e}");
}
