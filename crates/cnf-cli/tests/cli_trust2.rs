//! Trust, round 2 (issue 20): the files `cnf` writes. Every output goes through one atomic
//! write path (cnf-train's `AtomicFile`): an error at any point, or a kill, leaves an existing
//! file byte for byte intact; `density` never destroys its input and keeps its columns; CSV
//! headers are quoted by the csv writer.
mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{cnf, fails, ok, s, train_tiny};

/// A deterministic 2-D table `x,y` of `rows` points (roughly a unit Gaussian).
fn gaussian_table(path: &Path, rows: usize) {
    let mut text = String::from("x,y\n");
    for i in 0..rows {
        let u = (i as f64 + 0.5) / rows as f64;
        let r = (-2.0 * (1.0 - u).ln()).sqrt();
        let a = 2.399_963 * i as f64;
        text += &format!("{},{}\n", r * a.cos(), r * a.sin());
    }
    std::fs::write(path, text).unwrap();
}

/// A tiny model trained on a 200-row `x,y` table (model columns `x`, `y`).
fn table_model(dir: &Path) -> (PathBuf, PathBuf) {
    let t = dir.join("t.csv");
    gaussian_table(&t, 200);
    let m = dir.join("m");
    train_tiny(&m, &["--data", s(&t)]);
    (t, m)
}

/// Hidden temporary files (`.NAME.PID.K.tmp`) in `dir`.
fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.') && n.ends_with(".tmp"))
        .collect()
}

/// The CSV fields of one line (quotes honoured, no newlines inside).
fn fields(line: &str) -> Vec<String> {
    let (mut out, mut cur, mut quoted, mut chars) =
        (Vec::new(), String::new(), false, line.chars().peekable());
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// Item 1: `--output` naming the input is refused (the input stays as it was, also through
/// another spelling of its path); `--in-place` replaces it safely, keeping its columns, and an
/// error under `--in-place` leaves it intact.
#[test]
fn output_equal_to_input_is_refused_unless_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let (t, m) = table_model(dir.path());
    let v = dir.path().join("v.csv");
    let mut text = std::fs::read_to_string(&t).unwrap();
    text += "1e39,0\n";
    std::fs::write(&v, &text).unwrap();
    let other_spelling = dir.path().join("sub/../v.csv");
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    for out in [&v, &other_spelling] {
        let err = fails(&[
            "density",
            "--model",
            s(&m),
            "--input",
            s(&v),
            "--output",
            s(out),
        ]);
        assert!(
            err.contains("is the input") && err.contains("--in-place"),
            "{err}"
        );
        assert_eq!(std::fs::read_to_string(&v).unwrap(), text);
    }
    // Asked for, but the last row overflows f32: the input is still intact.
    let err = fails(&["density", "--model", s(&m), "--input", s(&v), "--in-place"]);
    assert!(err.contains("overflows"), "{err}");
    assert_eq!(std::fs::read_to_string(&v).unwrap(), text);
    // A valid file is replaced by itself with logp appended, other columns kept.
    let w = dir.path().join("w.csv");
    std::fs::write(&w, "id,y,x\nfirst,0.5,-1\nsecond,0,0\n").unwrap();
    ok(&[
        "density",
        "--model",
        s(&m),
        "--input",
        s(&w),
        "--output",
        s(&w),
        "--in-place",
    ]);
    let out = std::fs::read_to_string(&w).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "id,y,x,logp");
    assert!(lines[1].starts_with("first,0.5,-1,"), "{out}");
    assert!(lines[2].starts_with("second,0,0,"), "{out}");
    assert!(temp_files(dir.path()).is_empty());
    // --in-place with a different --output, and over a .npy input, are refused.
    let err = fails(&[
        "density",
        "--model",
        s(&m),
        "--input",
        s(&w),
        "--output",
        s(&t),
        "--in-place",
    ]);
    assert!(err.contains("another file"), "{err}");
    let npy = dir.path().join("p.npy");
    std::fs::write(&npy, b"not read").unwrap();
    let err = fails(&[
        "density",
        "--model",
        s(&m),
        "--input",
        s(&npy),
        "--in-place",
    ]);
    assert!(err.contains(".npy"), "{err}");
    assert_eq!(std::fs::read(&npy).unwrap(), b"not read");
}

/// Item 1: a model that fails to load (config.json names another activation than the
/// weights) leaves an unrelated results file intact.
#[test]
fn a_model_that_fails_to_load_leaves_the_output_intact() {
    let dir = tempfile::tempdir().unwrap();
    let (t, m) = table_model(dir.path());
    let cfg = m.join("config.json");
    let good = std::fs::read_to_string(&cfg).unwrap();
    assert!(good.contains("\"tanh\""), "{good}");
    std::fs::write(&cfg, good.replace("\"tanh\"", "\"softplus\"")).unwrap();
    let r = dir.path().join("r.csv");
    std::fs::write(&r, "precious\n").unwrap();
    let err = fails(&[
        "density",
        "--model",
        s(&m),
        "--input",
        s(&t),
        "--output",
        s(&r),
    ]);
    assert!(err.contains("was saved for"), "{err}");
    assert_eq!(std::fs::read_to_string(&r).unwrap(), "precious\n");
    assert!(temp_files(dir.path()).is_empty());
}

/// Item 1 and the minor item on row numbers: a row that overflows f32 after the first chunk of
/// 16 384 points (so rows were already written) fails with the row's number in the whole file,
/// counted from 1, and leaves the old output intact.
#[test]
fn a_failure_after_rows_were_written_leaves_the_output_intact() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m");
    train_tiny(&m, &[]);
    let big = dir.path().join("big.csv");
    let mut text = String::from("x0,x1\n");
    for i in 0..17_000 {
        text += &format!("{},{}\n", (i % 7) as f64 * 0.3 - 1.0, (i % 5) as f64 * 0.2);
    }
    text += "1e39,0\n";
    std::fs::write(&big, text).unwrap();
    let r = dir.path().join("r.csv");
    std::fs::write(&r, "old results\n").unwrap();
    let err = fails(&[
        "density",
        "--model",
        s(&m),
        "--input",
        s(&big),
        "--output",
        s(&r),
    ]);
    assert!(
        err.contains("row 17001") && err.contains("overflows"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&r).unwrap(), "old results\n");
    assert!(temp_files(dir.path()).is_empty());
}

/// Item 2: density keeps every input column, in order and as written (words too), reads the
/// model's columns by name, appends logp; an input `logp` column is replaced in place.
#[test]
fn density_keeps_the_inputs_columns() {
    let dir = tempfile::tempdir().unwrap();
    let (_, m) = table_model(dir.path());
    let e = dir.path().join("e.csv");
    std::fs::write(&e, "id,y,x,w\nalpha,-3,1,.5\n\"b, c\",0.25,0,2\n").unwrap();
    let out = ok(&["density", "--model", s(&m), "--input", s(&e)]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(fields(lines[0]), ["id", "y", "x", "w", "logp"]);
    let r1 = fields(lines[1]);
    let r2 = fields(lines[2]);
    assert_eq!(r1[..4], ["alpha", "-3", "1", ".5"]);
    assert_eq!(r2[..4], ["b, c", "0.25", "0", "2"]);
    // The same points given as x,y: the same log-densities (x and y read by name).
    let p = dir.path().join("p.csv");
    std::fs::write(&p, "x,y\n1,-3\n0,0.25\n").unwrap();
    let reference = ok(&["density", "--model", s(&m), "--input", s(&p)]);
    let lp: Vec<f64> = reference
        .lines()
        .skip(1)
        .map(|l| fields(l)[2].parse().unwrap())
        .collect();
    for (row, want) in [r1, r2].iter().zip(&lp) {
        let got: f64 = row[4].parse().unwrap();
        assert!(
            (got - want).abs() <= 1e-9 * want.abs().max(1.0),
            "{got} {want}"
        );
    }
    // An input that already has logp (e.g. an earlier output): replaced where it stands.
    let again = dir.path().join("again.csv");
    std::fs::write(&again, "x,logp,y\n1,99,-3\n0,99,0.25\n").unwrap();
    let res = cnf(&["density", "--model", s(&m), "--input", s(&again)]);
    assert!(res.status.success());
    assert!(String::from_utf8_lossy(&res.stderr).contains("replaced"));
    let out = String::from_utf8(res.stdout).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "x,logp,y");
    let f = fields(lines[1]);
    assert_eq!((f[0].as_str(), f[2].as_str()), ("1", "-3"));
    let got: f64 = f[1].parse().unwrap();
    assert!((got - lp[0]).abs() <= 1e-9 * lp[0].abs().max(1.0), "{out}");
}

/// Item 10: a column named `a,1` gives a quoted header that reads back with its fields, from
/// density and from sample; cnf reads its own output again.
#[test]
fn headers_are_quoted_by_the_csv_writer() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("q.csv");
    let mut text = String::from("\"a,1\",b\n");
    for i in 0..100 {
        let u = (i as f64 + 0.5) / 100.0;
        text += &format!("{},{}\n", u * 3.0 - 1.0, (u * 17.0).sin());
    }
    std::fs::write(&t, text).unwrap();
    let m = dir.path().join("m");
    train_tiny(&m, &["--data", s(&t)]);
    let out = dir.path().join("out.csv");
    ok(&[
        "density",
        "--model",
        s(&m),
        "--input",
        s(&t),
        "--output",
        s(&out),
    ]);
    let written = std::fs::read_to_string(&out).unwrap();
    let header = written.lines().next().unwrap();
    assert_eq!(header, "\"a,1\",b,logp");
    assert_eq!(fields(header), ["a,1", "b", "logp"]);
    assert!(written.lines().skip(1).all(|l| fields(l).len() == 3));
    // cnf reads it back (by the names a,1 and b; logp replaced).
    let back = ok(&["density", "--model", s(&m), "--input", s(&out)]);
    assert_eq!(back.lines().next().unwrap(), "\"a,1\",b,logp");
    let samples = ok(&["sample", "--model", s(&m), "-n", "3"]);
    assert_eq!(fields(samples.lines().next().unwrap()), ["a,1", "b"]);
}

/// Starts `args`, waits until it writes (its temporary file beside `target` exists, or the
/// target itself changed), then kills it with SIGKILL; returns the killed process's id.
fn kill_while_writing(args: &[&str], dir: &Path, target: &str) -> u32 {
    let old = std::fs::read(dir.join(target)).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cnf"))
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let prefix = format!(".{target}.{pid}.");
    let start = Instant::now();
    loop {
        if temp_files(dir).iter().any(|n| n.starts_with(&prefix))
            || std::fs::read(dir.join(target)).unwrap() != old
        {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("cnf {args:?} ended ({status}) before it was killed");
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no temporary file"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    std::thread::sleep(Duration::from_millis(100));
    child.kill().unwrap(); // SIGKILL on Unix: no clean-up runs
    assert!(
        !child.wait().unwrap().success(),
        "cnf {args:?} finished before it was killed"
    );
    pid
}

/// The done-when requirement: a writer killed mid-way leaves the target's old content; a later
/// committed write replaces it and leaves no temporary file of its own.
#[test]
fn killing_the_writer_leaves_the_old_file() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m");
    train_tiny(&m, &[]);
    let big = dir.path().join("big.csv");
    let mut text = String::from("x0,x1\n");
    for i in 0..200_000 {
        text += &format!(
            "{},{}\n",
            (i % 11) as f64 * 0.3 - 1.5,
            (i % 13) as f64 * 0.2
        );
    }
    std::fs::write(&big, text).unwrap();
    let out = dir.path().join("out.csv");
    std::fs::write(&out, "old\n").unwrap();
    // density, slowed by many fixed steps (about 10 s to the end).
    let pid = kill_while_writing(
        &[
            "density",
            "--model",
            s(&m),
            "--input",
            s(&big),
            "--output",
            s(&out),
            "--method",
            "rk4",
            "--steps",
            "300",
        ],
        dir.path(),
        "out.csv",
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "old\n");
    // sample with a large -n.
    let pid2 = kill_while_writing(
        &[
            "sample",
            "--model",
            s(&m),
            "-n",
            "50000000",
            "--output",
            s(&out),
        ],
        dir.path(),
        "out.csv",
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "old\n");
    // A committed write: the new content, and no temporary file but the killed ones'.
    ok(&["sample", "--model", s(&m), "-n", "5", "--output", s(&out)]);
    let new = std::fs::read_to_string(&out).unwrap();
    assert_eq!(new.lines().count(), 6, "{new}");
    for name in temp_files(dir.path()) {
        assert!(
            name.contains(&format!(".{pid}.")) || name.contains(&format!(".{pid2}.")),
            "{name} left behind"
        );
    }
}

/// plot writes through the same path: an old image is replaced whole, and a failing plot
/// leaves it.
#[test]
fn plot_replaces_images_whole() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m");
    train_tiny(&m, &[]);
    let png = dir.path().join("d.png");
    std::fs::write(&png, "old image").unwrap();
    ok(&[
        "plot",
        "--model",
        s(&m),
        "--out",
        s(&png),
        "--resolution",
        "20",
    ]);
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    assert!(temp_files(dir.path()).is_empty());
    // A plot that fails (a model that does not load) leaves the image.
    let cfg = m.join("config.json");
    let good = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, good.replace("\"tanh\"", "\"softplus\"")).unwrap();
    fails(&["plot", "--model", s(&m), "--out", s(&png)]);
    assert_eq!(std::fs::read(&png).unwrap(), bytes);
}
