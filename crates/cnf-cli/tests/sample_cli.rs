//! `cnf sample` through the real binary: seed reproducibility, exact counts, `-n 0`, the
//! distribution of the samples, agreement with the library and streaming.
mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cnf_flow::Batching;
use cnf_train::model::ModelDir;
use cnf_train::session::{SOLVE_POINTS as SOLVE_CHUNK, STREAM_CHUNK};
use rand::rngs::StdRng;
use rand::SeedableRng;

use common::{cnf, s};

const NPZ: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/data/cnf_8g_diffrax_1000it.npz"
);

/// The diffrax 8gaussians model imported into `dir/model`.
fn import(dir: &Path) -> PathBuf {
    let model = dir.join("model");
    let out = cnf(&[
        "import",
        "--npz",
        NPZ,
        "--hidden",
        "64,64,64",
        "--activation",
        "tanh",
        "--out",
        s(&model),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    model
}

/// `cnf sample` to standard output; its CSV text.
fn sample(model: &Path, n: &str, seed: &str) -> String {
    let out = cnf(&["sample", "--model", s(model), "-n", n, "--seed", seed]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn rows(csv: &str) -> Vec<[f64; 2]> {
    csv.lines()
        .skip(1)
        .map(|l| {
            let mut it = l.split(',').map(|v| v.parse::<f64>().unwrap());
            let p = [it.next().unwrap(), it.next().unwrap()];
            assert!(it.next().is_none(), "{l}");
            p
        })
        .collect()
}

#[test]
fn the_same_seed_gives_the_same_samples_and_the_count_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let model = import(dir.path());
    let a = sample(&model, "1234", "7");
    let b = sample(&model, "1234", "7");
    let c = sample(&model, "1234", "8");
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_eq!(a.lines().next(), Some("x0,x1"));
    assert_eq!(rows(&a).len(), 1234);
    // --output writes the same bytes as standard output.
    let file = dir.path().join("s.csv");
    let out = cnf(&[
        "sample",
        "--model",
        s(&model),
        "-n",
        "1234",
        "--seed",
        "7",
        "--output",
        s(&file),
    ]);
    assert!(out.status.success());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), a);
    // No temporary file is left beside the output.
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn zero_samples_is_an_error_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let model = import(dir.path());
    let file = dir.path().join("none.csv");
    let out = cnf(&[
        "sample",
        "--model",
        s(&model),
        "-n",
        "0",
        "--output",
        s(&file),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.starts_with("error: ") && err.contains("-n 0"), "{err}");
    assert!(!file.exists());
}

#[test]
fn an_unwritable_output_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let model = import(dir.path());
    let file = dir.path().join("no/such/folder/s.csv");
    let out = cnf(&[
        "sample",
        "--model",
        s(&model),
        "-n",
        "10",
        "--output",
        s(&file),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with("error: ") && err.trim().lines().count() == 1,
        "{err}"
    );
}

/// 8gaussians: (noise 0.5 N(0, I) + 4 c) / 1.414 with c one of 8 unit vectors (data/toy.rs).
#[test]
fn samples_of_the_diffrax_model_look_like_8gaussians() {
    let dir = tempfile::tempdir().unwrap();
    let model = import(dir.path());
    let pts = rows(&sample(&model, "20000", "3"));
    let n = pts.len() as f64;
    let mean = [0, 1].map(|j| pts.iter().map(|p| p[j]).sum::<f64>() / n);
    let cov = |a: usize, b: usize| {
        pts.iter()
            .map(|p| (p[a] - mean[a]) * (p[b] - mean[b]))
            .sum::<f64>()
            / n
    };
    let var_8g = (0.25 + 16.0 * 0.5) / (1.414f64 * 1.414);
    for j in 0..2 {
        assert!(mean[j].abs() < 0.1, "mean {mean:?}");
        let v = cov(j, j);
        assert!((v - var_8g).abs() < 0.1 * var_8g, "var {v} vs {var_8g}");
    }
    assert!(cov(0, 1).abs() < 0.2, "covariance {}", cov(0, 1));
    // Most samples lie near one of the eight centres (a Gaussian of the same covariance would
    // put about 40% there).
    let d = std::f64::consts::FRAC_1_SQRT_2;
    let centres = [
        [1.0, 0.0],
        [-1.0, 0.0],
        [0.0, 1.0],
        [0.0, -1.0],
        [d, d],
        [d, -d],
        [-d, d],
        [-d, -d],
    ]
    .map(|c: [f64; 2]| [4.0 * c[0] / 1.414, 4.0 * c[1] / 1.414]);
    let near = pts
        .iter()
        .filter(|p| {
            centres
                .iter()
                .any(|c| (p[0] - c[0]).hypot(p[1] - c[1]) < 1.0)
        })
        .count() as f64;
    assert!(
        near / n > 0.8,
        "only {:.1}% near a centre",
        100.0 * near / n
    );
}

/// Across a streaming chunk boundary the rows are exactly the library's
/// `Cnf::sample(n, StdRng::seed_from_u64(seed))` with `Batching::Chunks(SOLVE_CHUNK)` in f32.
#[test]
fn the_cli_writes_exactly_the_library_samples_across_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let model = import(dir.path());
    let n = STREAM_CHUNK + 1500;
    let csv = sample(&model, &n.to_string(), "11");
    let md = ModelDir::new(&model);
    let config = md.config().unwrap();
    let cnf = md
        .load_cnf::<f32>(&config, None)
        .unwrap()
        .with_batching(Batching::Chunks(SOLVE_CHUNK));
    let lib = cnf
        .sample(n, &mut StdRng::seed_from_u64(11))
        .unwrap()
        .points;
    let mut expected = String::from("x0,x1\n");
    for p in lib.chunks_exact(2) {
        expected.push_str(&format!("{},{}\n", p[0], p[1]));
    }
    assert_eq!(csv.len(), expected.len());
    assert!(csv == expected, "the CLI's rows differ from the library's");
}

/// Peak resident memory of a running process, in kB (Linux).
fn peak_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `-n 1000000000` would need 8 GB at once; streamed, rows arrive at once and memory stays flat.
#[cfg(target_os = "linux")]
#[test]
fn a_billion_samples_stream_in_flat_memory() {
    let dir = tempfile::tempdir().unwrap();
    let model = import(dir.path());
    let mut child = Command::new(env!("CARGO_BIN_EXE_cnf"))
        .args(["sample", "--model", s(&model), "-n", "1000000000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let (mut lines, mut buf, mut peak) = (0usize, vec![0u8; 1 << 16], 0u64);
    let start = Instant::now();
    // Three stream chunks (the first rows come after one chunk's solves).
    while lines < 3 * STREAM_CHUNK && start.elapsed() < Duration::from_secs(120) {
        let k = out.read(&mut buf).unwrap();
        assert!(k > 0, "the output ended after {lines} lines");
        lines += buf[..k].iter().filter(|&&b| b == b'\n').count();
        peak = peak.max(peak_kb(child.id()).unwrap_or(0));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        lines >= 3 * STREAM_CHUNK,
        "only {lines} lines in {:?}",
        start.elapsed()
    );
    assert!(peak > 0 && peak < 200_000, "peak resident memory {peak} kB");
}

/// A reader that goes away (`cnf sample ... | head`) ends the command quietly with exit code 0.
#[test]
fn a_closed_pipe_ends_sampling_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let model = import(dir.path());
    let mut child = Command::new(env!("CARGO_BIN_EXE_cnf"))
        .args(["sample", "--model", s(&model), "-n", "100000000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut head = [0u8; 100];
    out.read_exact(&mut head).unwrap();
    assert!(head.starts_with(b"x0,x1\n"));
    drop(out);
    let start = Instant::now();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(start.elapsed() < Duration::from_secs(60));
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(err.contains("before the output was closed"), "{err}");
}
