//! Runs are never lost and work from anywhere: `--force` checks before it removes, resume does
//! not depend on the working folder, secondary metrics fail alone, names cannot mislead
//! (issue "Trust, round 2": items 3, 8, 11 and the minor ones of the run commands).
mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{cnf, fails, ok, parse_csv, s, strs, tiny_train as tiny};

/// A deterministic, correlated 2-column table `x,y` of `rows` rows, scaled by `scale`.
fn write_table(path: &Path, rows: usize, scale: f64) {
    let mut text = String::from("x,y\n");
    for i in 0..rows {
        let u = ((i * 7919) % rows) as f64 / rows as f64 - 0.5;
        let v = ((i * 104_729) % (rows + 1)) as f64 / (rows + 1) as f64 - 0.5;
        text += &format!("{},{}\n", (2.0 * u + 1.0) * scale, (u + v) * scale);
    }
    std::fs::write(path, text).unwrap();
}

/// `cnf` run in the folder `cwd`.
fn cnf_in(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cnf"))
        .current_dir(cwd)
        .args(args)
        .output()
        .unwrap()
}

fn ok_in(cwd: &Path, args: &[&str]) -> String {
    let out = cnf_in(cwd, args);
    assert!(
        out.status.success(),
        "cnf {args:?} in {} failed: {}",
        cwd.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The bytes of every file of a folder, by name.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_file())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

/// Item 3: `--force` with an option that cannot work (an f32 tolerance that rounds to 0) is
/// refused before the old run is touched; the old run still resumes.
#[test]
fn force_checks_everything_before_removing_the_old_run() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("t.csv");
    write_table(&t, 400, 1.0);
    let r = dir.path().join("r");
    ok(&strs(&tiny(&["--data", s(&t), "--out", s(&r)])));
    let before = snapshot(&r);
    let err = fails(&strs(&tiny(&[
        "--data",
        s(&t),
        "--out",
        s(&r),
        "--force",
        "--rtol",
        "1e-300",
    ])));
    assert!(err.contains("rtol") && err.contains("f32"), "{err}");
    assert_eq!(snapshot(&r), before, "the refused --force changed the run");
    ok(&["train", "--resume", "--iters", "4", "--out", s(&r)]);

    // The same holds for a value that only the data can refute: the old run stays.
    let one = dir.path().join("one.csv");
    std::fs::write(&one, "x,y\n1,2\n").unwrap();
    let before = snapshot(&r);
    fails(&strs(&tiny(&[
        "--data",
        s(&one),
        "--out",
        s(&r),
        "--force",
    ])));
    assert_eq!(snapshot(&r), before);
}

/// Item 11: a run trained with a relative data path resumes from another folder; a moved data
/// file is found again through `--data` (checked by its SHA-256).
#[test]
fn resume_does_not_depend_on_the_working_folder() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    write_table(&a.join("g2.csv"), 400, 1.0);
    ok_in(&a, &strs(&tiny(&["--data", "g2.csv", "--out", "../rs"])));
    ok_in(&b, &["train", "--resume", "--iters", "4", "--out", "../rs"]);
    // eval from elsewhere recognises the training file by content.
    let out = ok_in(&b, &["eval", "--model", "../rs", "--data", "../a/g2.csv"]);
    assert!(out.contains("test split"), "{out}");

    // The data moves: resume says so and names --data; --data at the new place works.
    std::fs::rename(a.join("g2.csv"), b.join("moved.csv")).unwrap();
    let out = cnf_in(&b, &["train", "--resume", "--iters", "6", "--out", "../rs"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("g2.csv") && err.contains("--data"), "{err}");
    ok_in(
        &b,
        &[
            "train",
            "--resume",
            "--iters",
            "6",
            "--data",
            "moved.csv",
            "--out",
            "../rs",
        ],
    );
    let metrics = std::fs::read_to_string(dir.path().join("rs/metrics.jsonl")).unwrap();
    assert!(metrics.contains("\"iter\":6"), "{metrics}");
}

/// Item 8: at data scales near 1e200 the W2 distance overflows f64; eval still reports the NLL
/// (shifted by the scaling term, -2 log(1e200) per point relative to the unit-scale table) and
/// says W2 is unavailable.
#[test]
fn eval_reports_the_nll_when_w2_fails() {
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("unit.csv");
    let huge = dir.path().join("huge.csv");
    write_table(&unit, 400, 1.0);
    write_table(&huge, 400, 1e200);
    let m1 = dir.path().join("m1");
    let m2 = dir.path().join("m2");
    ok(&strs(&tiny(&["--data", s(&unit), "--out", s(&m1)])));
    ok(&strs(&tiny(&["--data", s(&huge), "--out", s(&m2)])));
    let eval = |m: &Path, data: &Path| -> serde_json::Value {
        serde_json::from_str(&ok(&["eval", "--model", s(m), "--data", s(data), "--json"])).unwrap()
    };
    let j1 = eval(&m1, &unit);
    let j2 = eval(&m2, &huge);
    assert!(j1["w2"].as_f64().is_some(), "{j1}");
    assert!(j2["w2"].is_null(), "{j2}");
    assert!(j2["w2_missing"].as_str().unwrap().contains("W2"), "{j2}");
    let shift = 2.0 * 200.0 * std::f64::consts::LN_10;
    let (n1, n2) = (
        j1["test_nll"].as_f64().unwrap(),
        j2["test_nll"].as_f64().unwrap(),
    );
    assert!((n2 - n1 - shift).abs() < 1e-3 * shift, "{n1} {n2} {shift}");
    let text = ok(&["eval", "--model", s(&m2), "--data", s(&huge)]);
    assert!(
        text.contains("test NLL") && text.contains("unavailable"),
        "{text}"
    );
}

/// Minor: eval of one point has no standard error (it said "+- 0.0000").
#[test]
fn eval_of_one_point_has_no_standard_error() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m");
    ok(&strs(&tiny(&["--out", s(&m)])));
    let one = dir.path().join("one.csv");
    std::fs::write(&one, "x0,x1\n0.5,-0.25\n").unwrap();
    let text = ok(&["eval", "--model", s(&m), "--data", s(&one)]);
    assert!(
        !text.contains("+- 0.0000") && text.contains("no standard error"),
        "{text}"
    );
    let j: serde_json::Value = serde_json::from_str(&ok(&[
        "eval",
        "--model",
        s(&m),
        "--data",
        s(&one),
        "--json",
    ]))
    .unwrap();
    assert!(
        j["stderr"].is_null() && j["test_nll"].as_f64().is_some(),
        "{j}"
    );
}

/// Minor: a file named like a toy set is not silently replaced by the toy set; `./moons` names
/// the file. A data file named `...csv` does not put the run in `runs/..`.
#[test]
fn names_cannot_mislead() {
    let dir = tempfile::tempdir().unwrap();
    write_table(&dir.path().join("moons"), 200, 1.0);
    let out = cnf_in(dir.path(), &strs(&tiny(&["--data", "moons", "--out", "m"])));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("./moons") && err.contains("toy set"), "{err}");
    assert!(!dir.path().join("m").join("config.json").exists());
    ok_in(
        dir.path(),
        &strs(&tiny(&["--data", "./moons", "--out", "m"])),
    );
    let config = std::fs::read_to_string(dir.path().join("m/config.json")).unwrap();
    assert!(
        config.contains("moons") && config.contains("table"),
        "{config}"
    );
    let out = cnf_in(dir.path(), &["eval", "--model", "m", "--data", "moons"]);
    assert_eq!(out.status.code(), Some(1));

    let sub = dir.path().join("sub");
    std::fs::create_dir_all(&sub).unwrap();
    write_table(&sub.join("...csv"), 200, 1.0);
    ok_in(&sub, &strs(&tiny(&["--data", "...csv"])));
    assert!(sub.join("runs/data/model.safetensors").exists());
    assert!(!sub.join("model.safetensors").exists());
    assert!(!dir.path().join("model.safetensors").exists());
}

/// Minor: `--out` naming a file says so (it said ".lock: File exists"); `import` into a model
/// folder does not suggest `--resume`, which it does not have.
#[test]
fn out_and_import_messages_fit_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    std::fs::write(&file, "keep").unwrap();
    let err = fails(&strs(&tiny(&["--out", s(&file)])));
    assert!(err.contains("is a file, not a folder"), "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), b"keep");

    let npz = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/data/cnf_8g_diffrax_1000it.npz"
    );
    let m = dir.path().join("m");
    ok(&["import", "--npz", npz, "--out", s(&m)]);
    let err = fails(&["import", "--npz", npz, "--out", s(&m)]);
    assert!(
        err.contains("--force") && !err.contains("--resume"),
        "{err}"
    );
}

/// Minor: with a singular covariance the settings say the start is per-column standardisation,
/// not the whitening that did not happen.
#[test]
fn settings_do_not_claim_whitening_after_a_singular_covariance() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("eq.csv");
    let mut text = String::from("a,b\n");
    for i in 0..200 {
        let v = ((i * 37) % 200) as f64 / 50.0;
        text += &format!("{v},{v}\n");
    }
    std::fs::write(&t, text).unwrap();
    let out = cnf(&strs(&tiny(&[
        "--data",
        s(&t),
        "--out",
        s(&dir.path().join("m")),
    ])));
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("singular"), "{err}");
    assert!(!err.contains("whitening fitted"), "{err}");
    assert!(err.contains("no whitening"), "{err}");
}

/// Minor: the "try f64" hint names a flag every command that solves has: `sample` and `plot`
/// take `--f64` (they ran only in the model's precision). The f64 samples of an f32 model are
/// those of the same weights in f64: close to the f32 ones, not equal.
#[test]
fn sample_and_plot_take_f64() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m");
    ok(&strs(&tiny(&["--out", s(&m)])));
    let run = |extra: &[&str]| {
        let mut args = vec!["sample", "--model", s(&m), "-n", "50"];
        args.extend_from_slice(extra);
        let out = cnf(&args);
        assert!(out.status.success());
        (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let (f32_rows, f32_note) = run(&[]);
    let (f64_rows, f64_note) = run(&["--f64"]);
    assert!(
        f32_note.contains("f32") && f64_note.contains("f64"),
        "{f64_note}"
    );
    assert_ne!(f32_rows, f64_rows);
    let values = |text: &str| -> Vec<f64> { parse_csv(text).1.concat() };
    for (a, b) in values(&f32_rows).iter().zip(values(&f64_rows)) {
        assert!((a - b).abs() < 1e-3 * (1.0 + b.abs()), "{a} vs {b}");
    }
    let png = dir.path().join("p.png");
    ok(&[
        "plot",
        "--model",
        s(&m),
        "--out",
        s(&png),
        "--resolution",
        "20",
        "--f64",
    ]);
    assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"));
}
