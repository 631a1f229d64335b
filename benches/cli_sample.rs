//! `cnf sample` as a process against the library doing the same work in-process: the diffrax
//! 8gaussians model imported from tests/data, 10 000 samples, CSV written to a file.
//!
//! The library side loads the model folder, builds the flow in the model's precision (f32) with
//! `Batching::Chunks(1024)`, draws with `Cnf::sample` from the same seed and writes the CSV
//! through a buffered writer. The CLI side is the release binary, process start included. Both
//! must produce the same bytes (checked). Prints one JSON line per side and one with the ratio:
//!
//! `cargo build --release -p cnf-cli --bin cnf && cargo bench --bench cli_sample [-- --n N --runs R]`
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use cnf::flow::Batching;
use cnf::train::model::{ModelDir, Precision};
use cnf_testkit::stats::median;
use rand::rngs::StdRng;
use rand::SeedableRng;

const SEED: u64 = 0;
const SOLVE_CHUNK: usize = 1024;

/// The `cnf` binary next to this benchmark's folder (target/release/cnf).
fn cnf_binary() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join(format!("cnf{}", std::env::consts::EXE_SUFFIX)))
        .ok_or("no folder above the benchmark executable")?;
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!(
            "{} not found: build it first with `cargo build --release -p cnf-cli --bin cnf`",
            bin.display()
        ))
    }
}

fn run(bin: &Path, args: &[&str]) -> Result<(), String> {
    let out = Command::new(bin)
        .args(args)
        .output()
        .map_err(|e| format!("{}: {e}", bin.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "cnf {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The library doing what `cnf sample --model dir -n n --output out` does.
fn library_sample(dir: &Path, n: usize, out: &Path) -> Result<(), String> {
    let dir = ModelDir::new(dir);
    let config = dir.config().map_err(|e| e.to_string())?;
    if config.precision != Precision::F32 {
        return Err("the imported model should be f32".into());
    }
    let cnf = dir
        .load_cnf::<f32>(&config, None)
        .map_err(|e| e.to_string())?
        .with_batching(Batching::Chunks(SOLVE_CHUNK));
    let points = cnf
        .sample(n, &mut StdRng::seed_from_u64(SEED))
        .map_err(|e| e.to_string())?
        .points;
    let file = std::fs::File::create(out).map_err(|e| e.to_string())?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let io = |e: std::io::Error| e.to_string();
    writeln!(w, "{}", config.columns.join(",")).map_err(io)?;
    for p in points.chunks_exact(config.mlp.dim) {
        for (j, v) in p.iter().enumerate() {
            let sep = if j == 0 { "" } else { "," };
            write!(w, "{sep}{v}").map_err(io)?;
        }
        writeln!(w).map_err(io)?;
    }
    w.flush().map_err(io)
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> Result<(), String> {
    let n = arg("--n", 10_000);
    let runs = arg("--runs", 7).max(5);
    let bin = cnf_binary()?;
    let npz = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/cnf_8g_diffrax_1000it.npz");
    let tmp = std::env::temp_dir().join(format!("cnf-cli-sample-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(|e| e.to_string())?;
    let model = tmp.join("model");
    let (cli_csv, lib_csv) = (tmp.join("cli.csv"), tmp.join("lib.csv"));
    let s = |p: &Path| p.to_string_lossy().into_owned();
    run(
        &bin,
        &[
            "import",
            "--npz",
            &s(&npz),
            "--hidden",
            "64,64,64",
            "--activation",
            "tanh",
            "--out",
            &s(&model),
        ],
    )?;
    let n_text = n.to_string();
    let cli_args = [
        "sample",
        "--model",
        &s(&model),
        "-n",
        &n_text,
        "--seed",
        "0",
        "--output",
        &s(&cli_csv),
    ];
    // One untimed run of each (page cache, rayon's pool), then alternate so that load from
    // other processes falls on both sides alike.
    run(&bin, &cli_args)?;
    library_sample(&model, n, &lib_csv)?;
    let (mut cli, mut lib) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let t = Instant::now();
        run(&bin, &cli_args)?;
        cli.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        library_sample(&model, n, &lib_csv)?;
        lib.push(t.elapsed().as_secs_f64());
    }
    let same = std::fs::read(&cli_csv).map_err(|e| e.to_string())?
        == std::fs::read(&lib_csv).map_err(|e| e.to_string())?;
    let (c, l) = (median(cli.clone()), median(lib.clone()));
    let json = |v: serde_json::Value| println!("{v}");
    json(
        serde_json::json!({"side": "cli", "n": n, "median_s": c, "runs_s": cli,
        "command": format!("cnf {}", cli_args.join(" "))}),
    );
    json(
        serde_json::json!({"side": "library", "n": n, "median_s": l, "runs_s": lib,
        "batching": format!("Chunks({SOLVE_CHUNK})"), "precision": "f32"}),
    );
    json(serde_json::json!({"ratio_cli_over_library": c / l, "identical_csv": same}));
    let _ = std::fs::remove_dir_all(&tmp);
    if same {
        Ok(())
    } else {
        Err("the CLI and the library wrote different samples".into())
    }
}
