//! Tables the `cnf` command must not misread (issue 20: duplicate column names, numeric header
//! rows, constancy at small scales, columns constant in the training split, the Gaussian
//! baseline at large offsets). Each test drives the real binary.
mod common;

use std::path::Path;

use cnf_train::data::{Table, SPLIT};
use common::{cnf, fails, json_file, ok, s};

/// Deterministic, non-integer, roughly Gaussian-looking values (no RNG dependency).
fn value(i: usize, k: usize) -> f64 {
    let a = ((i * 7919 + k * 104_729) % 1000) as f64 / 1000.0 - 0.4995;
    let b = ((i as f64 + 0.5) * (1.37 + k as f64)).sin();
    1.7 * a + 0.8 * b + 0.013
}

/// Writes `header` (if any) and `rows` rows of `cols(i)`.
fn write(path: &Path, header: Option<&str>, rows: usize, cols: impl Fn(usize) -> Vec<f64>) {
    let mut text = header.map_or(String::new(), |h| format!("{h}\n"));
    for i in 0..rows {
        let row: Vec<String> = cols(i).iter().map(|v| v.to_string()).collect();
        text += &row.join(",");
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

/// `cnf train` on `data` into `out` with a tiny, quick configuration; returns the output.
fn train(data: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "train",
        "--data",
        s(data),
        "--iters",
        "2",
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
    cnf(&args)
}

fn train_ok(data: &Path, out: &Path, extra: &[&str]) -> String {
    let out = train(data, out, extra);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "training failed: {stderr}");
    stderr
}

fn train_fails(data: &Path, out: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "train",
        "--data",
        s(data),
        "--iters",
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
    fails(&args)
}

fn eval_json(model: &Path, data: &Path) -> serde_json::Value {
    serde_json::from_str(&ok(&[
        "eval",
        "--model",
        s(model),
        "--data",
        s(data),
        "--json",
    ]))
    .unwrap()
}

/// Item 4: a header `v,v` trained, and both model columns read the first `v`; `--columns x,x`
/// and `--columns x,0` were accepted too. All are refused with one line naming the column.
#[test]
fn duplicate_column_names_and_repeated_selections_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let dup = dir.path().join("dup.csv");
    write(&dup, Some("v,v"), 200, |i| vec![value(i, 0), value(i, 1)]);
    let err = train_fails(&dup, &dir.path().join("m1"), &[]);
    assert!(
        err.contains("columns 1 and 2 are both named \"v\""),
        "{err}"
    );
    let xy = dir.path().join("xy.csv");
    write(&xy, Some("x,y"), 200, |i| vec![value(i, 0), value(i, 1)]);
    for (sel, second) in [("x,x", "\"x\""), ("x,0", "\"0\"")] {
        let err = train_fails(&xy, &dir.path().join("m2"), &["--columns", sel]);
        assert!(
            err.contains(&format!("names column \"x\" twice (\"x\" and {second})")),
            "{err}"
        );
    }
    // The shared name cannot be dropped either (which one?); by index it can.
    let three = dir.path().join("three.csv");
    write(&three, Some("v,w,v"), 200, |i| {
        vec![value(i, 0), value(i, 1), value(i, 2)]
    });
    let err = train_fails(&three, &dir.path().join("m3"), &["--drop", "v"]);
    assert!(err.contains("both named \"v\""), "{err}");
    train_ok(&three, &dir.path().join("m4"), &["--drop", "2"]);
    let config = json_file(&dir.path().join("m4/config.json"));
    assert_eq!(config["columns"], serde_json::json!(["v", "w"]));
}

/// Item 4, `density`: a model whose config.json names a column twice (trained before the
/// refusal) is refused, rather than reading one input column into two model columns (which
/// gave -31.0 where the true log-density was -4.2).
#[test]
fn a_model_with_a_repeated_column_name_is_refused_not_read_twice() {
    let dir = tempfile::tempdir().unwrap();
    let xy = dir.path().join("xy.csv");
    write(&xy, Some("x,y"), 200, |i| vec![value(i, 0), value(i, 1)]);
    let m = dir.path().join("m");
    train_ok(&xy, &m, &[]);
    ok(&["density", "--model", s(&m), "--input", s(&xy)]);
    let path = m.join("config.json");
    let mut config = json_file(&path);
    config["columns"] = serde_json::json!(["x", "x"]);
    std::fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
    let err = fails(&["density", "--model", s(&m), "--input", s(&xy)]);
    assert!(
        err.contains("config.json") && err.contains("columns 1 and 2 are both named \"x\""),
        "{err}"
    );
    let err = fails(&["eval", "--model", s(&m), "--data", s(&xy)]);
    assert!(err.contains("both named \"x\""), "{err}");
}

/// Item 5: a numeric header (`400,500`) was read as a data row with no word said. Now `auto`
/// says so, `--header yes` makes it the names (stored in config.json, so eval and resume read
/// the file the same way), and `--header no` reads it as data without a note.
#[test]
fn a_numeric_first_row_is_noted_and_header_decides() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("w.csv");
    // 300 data rows under a numeric header: 240 / 30 / 30 rows; read as data, 301 rows give
    // 240 / 30 / 31.
    write(&csv, Some("400,500"), 300, |i| {
        vec![value(i, 0), value(i, 1)]
    });

    let auto = dir.path().join("auto");
    let err = train_ok(&csv, &auto, &[]);
    let note = format!(
        "note: {}: the first row (400, 500) is all numbers, read as data; pass --header yes if \
         it names the columns",
        s(&csv)
    );
    assert!(err.contains(&note), "{err}");
    let config = json_file(&auto.join("config.json"));
    assert_eq!(config["data"]["header"], "auto");
    assert_eq!(config["columns"], serde_json::json!(["x0", "x1"]));
    assert_eq!(eval_json(&auto, &csv)["n"], 31);

    let yes = dir.path().join("yes");
    let err = train_ok(&csv, &yes, &["--header", "yes"]);
    assert!(!err.contains("note: "), "{err}");
    let config = json_file(&yes.join("config.json"));
    assert_eq!(config["data"]["header"], "yes");
    assert_eq!(config["columns"], serde_json::json!(["400", "500"]));
    // The scales are those of the data (about 1), not inflated by a row of 400 and 500.
    let std = config["standardizer"]["std"].as_array().unwrap();
    assert!(std.iter().all(|v| v.as_f64().unwrap() < 2.0), "{std:?}");
    // eval reads the training file with the run's header mode: the 30-row test split.
    let j = eval_json(&yes, &csv);
    assert_eq!(j["n"], 30, "{j}");
    assert!(j["points"].as_str().unwrap().starts_with("the test split"));
    // Resume keeps the mode; another one is refused.
    let err = fails(&[
        "train",
        "--resume",
        "--out",
        s(&yes),
        "--iters",
        "4",
        "--header",
        "no",
    ]);
    assert!(err.contains("--header no conflicts"), "{err}");
    ok(&["train", "--resume", "--out", s(&yes), "--iters", "4"]);
    // density on a file whose numeric first row names the model's columns: that row is the
    // header (300 rows out, not 301), matched by name in any order.
    let swapped = dir.path().join("swapped.csv");
    write(&swapped, Some("500,400"), 5, |i| {
        vec![value(i, 1), value(i, 0)]
    });
    let out = cnf(&["density", "--model", s(&yes), "--input", s(&swapped)]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().next(), Some("500,400,logp"), "{text}");
    assert_eq!(text.lines().count(), 6, "{text}");
    // A model whose columns are x0, x1 reads such a row as data, and says so.
    let out = cnf(&["density", "--model", s(&auto), "--input", s(&swapped)]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("note: ") && err.contains("read as data"),
        "{err}"
    );

    let no = dir.path().join("no");
    let err = train_ok(&csv, &no, &["--header", "no"]);
    assert!(!err.contains("note: "), "{err}");
    assert_eq!(eval_json(&no, &csv)["n"], 31);

    // A config.json from before the option (no `header`) still loads, as auto.
    let path = auto.join("config.json");
    let mut config = json_file(&path);
    config["data"].as_object_mut().unwrap().remove("header");
    std::fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
    assert_eq!(eval_json(&auto, &csv)["n"], 31);

    // Toy sets and .npy files have no header row: the option is refused, not ignored.
    let err = fails(&[
        "train",
        "--data",
        "moons",
        "--header",
        "yes",
        "--out",
        s(&dir.path().join("toy")),
    ]);
    assert!(err.contains("--header"), "{err}");
}

/// Item 9: values near 1e-13 varying by 1e-16 were refused as "constant", with the value
/// printed in 30 digits (and 1e-300 in 300). Constancy is relative to the column's scale.
#[test]
fn constancy_is_relative_to_the_column_and_messages_print_short_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let tiny = dir.path().join("tiny.csv");
    write(&tiny, Some("a,b"), 200, |i| {
        vec![1e-13 * (1.0 + 1e-3 * value(i, 0)), value(i, 1)]
    });
    let m = dir.path().join("m");
    train_ok(&tiny, &m, &[]);
    let config = json_file(&m.join("config.json"));
    let sd = config["standardizer"]["std"][0].as_f64().unwrap();
    assert!(sd > 1e-17 && sd < 1e-15, "{sd}");

    let flat = dir.path().join("flat.csv");
    write(&flat, Some("a,b"), 200, |i| vec![1e-300, value(i, 1)]);
    let err = train_fails(&flat, &dir.path().join("m2"), &[]);
    assert!(err.contains("column \"a\" is constant (1e-300)"), "{err}");
    assert!(err.len() < 200, "{err}");
}

/// A column that varies in the file but is constant in the training split was whitened with
/// the file's scale and trained on silently; now it is refused, saying so.
#[test]
fn a_column_constant_only_in_the_training_split_is_refused() {
    // The rows that the split (seed 0, the default) leaves out of training.
    let n = 300;
    let index = Table::with_default_names(n, 1, (0..n).map(|i| i as f64).collect()).unwrap();
    let (_, val, _) = index.split(SPLIT, 0).unwrap();
    let odd = val.data()[0] as usize;
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("c.csv");
    write(&csv, Some("a,c"), n, |i| {
        vec![value(i, 0), if i == odd { 1.5 } else { 0.5 }]
    });
    let err = train_fails(&csv, &dir.path().join("m"), &[]);
    assert!(
        err.contains(
            "column \"c\" is constant (0.5) in the 240 rows of the training split, though it \
             varies in the whole file (300 rows)"
        ),
        "{err}"
    );
}

/// The Gaussian baseline of `eval` said "singular" for a column of mean 1e18 and spread 1e17.
/// It is the baseline of the same table with that column mapped to `(a - 1e18) / 1e17`, plus
/// `ln 1e17`.
#[test]
fn the_gaussian_baseline_fits_a_column_far_from_zero() {
    let dir = tempfile::tempdir().unwrap();
    let (unit, far) = (dir.path().join("unit.csv"), dir.path().join("far.csv"));
    write(&unit, Some("a,b"), 300, |i| vec![value(i, 0), value(i, 1)]);
    write(&far, Some("a,b"), 300, |i| {
        vec![1e18 + 1e17 * value(i, 0), value(i, 1)]
    });
    let (mu, mf) = (dir.path().join("mu"), dir.path().join("mf"));
    train_ok(&unit, &mu, &["--f64"]);
    train_ok(&far, &mf, &["--f64"]);
    let (ju, jf) = (eval_json(&mu, &unit), eval_json(&mf, &far));
    assert!(jf.get("gaussian_missing").is_none(), "{jf}");
    let (gu, gf) = (
        ju["gaussian_nll"].as_f64().unwrap(),
        jf["gaussian_nll"].as_f64().unwrap(),
    );
    assert!(
        (gf - (gu + 1e17f64.ln())).abs() < 1e-6,
        "{gf} vs {gu} + ln 1e17"
    );
}

/// The Gaussian baseline of a near-collinear table: `a = 5.25 + 3 x`, `b = 100.5 + x + eps z`
/// with `eps = 2^-40` and `(x, z)` running through the four sign patterns equally often in the
/// training split (every value exact in binary). The fitted covariance is then exactly
/// `[[9, 3], [3, 1 + eps^2]]`, every pattern point is at Mahalanobis distance 2, and the test
/// NLL is `1 + ln 2 pi + ln 3 + ln eps` = -23.79 whatever rows the test split holds. Forming
/// the covariance lost the `eps^2` (the table gave -14.7 for -24.8).
#[test]
fn the_gaussian_baseline_of_a_near_collinear_table_is_exact() {
    let n = 300;
    let index = Table::with_default_names(n, 1, (0..n).map(|i| i as f64).collect()).unwrap();
    let (train_rows, _, _) = index.split(SPLIT, 0).unwrap();
    let mut pattern = vec![0usize; n];
    for (k, &i) in train_rows.data().iter().enumerate() {
        pattern[i as usize] = k % 4;
    }
    assert_eq!(train_rows.n_rows() % 4, 0);
    let eps = 2f64.powi(-40);
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("near.csv");
    write(&csv, Some("a,b"), n, |i| {
        let x = if pattern[i] % 2 == 0 { 1.0 } else { -1.0 };
        let z = if pattern[i] < 2 { 1.0 } else { -1.0 };
        vec![5.25 + 3.0 * x, 100.5 + x + eps * z]
    });
    let m = dir.path().join("m");
    train_ok(&csv, &m, &["--f64"]);
    let j = eval_json(&m, &csv);
    let want = 1.0 + (2.0 * std::f64::consts::PI).ln() + 3f64.ln() + eps.ln();
    let got = j["gaussian_nll"].as_f64().unwrap_or(f64::NAN);
    // f64 resolves the regression of b on a to ~1e-15, against a spread of 1e-12 across it:
    // each point's NLL is good to ~3e-3 (it was 10 nats off).
    assert!((got - want).abs() < 1e-2, "{got} vs {want}: {j}");
    // eval says the baseline rests on a nearly degenerate direction.
    let warning = j["gaussian_warning"].as_str().unwrap_or("");
    assert!(warning.contains("nearly collinear"), "{j}");
    let text = ok(&["eval", "--model", s(&m), "--data", s(&csv)]);
    assert!(
        text.contains("warning: the columns are nearly collinear"),
        "{text}"
    );
}
