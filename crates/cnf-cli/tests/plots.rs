//! The PNGs of a model folder and the training curve: written, non-empty, of the expected size;
//! a malformed metrics file is a typed error.
use std::path::{Path, PathBuf};
use std::process::Command;

use cnf_cli::plot::{HEATMAP_SIZE, SAMPLES_VS_DATA_SIZE, TRAINING_CURVE_SIZE, TRAJECTORIES_SIZE};
use cnf_cli::report::{plot_model, plot_training_curve, MetricsError};
use cnf_train::session::Session;

const NPZ: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/data/cnf_8g_diffrax_1000it.npz"
);

/// Checks the PNG signature and reads width and height from the IHDR chunk.
fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        bytes.len() > 1000,
        "{}: only {} bytes",
        path.display(),
        bytes.len()
    );
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(&bytes[12..16], b"IHDR");
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    (be(&bytes[16..20]), be(&bytes[20..24]))
}

/// Copies a PNG to `$CNF_KEEP_PLOTS` when set, to look at it.
fn keep(png: &Path) {
    if let Some(dir) = std::env::var_os("CNF_KEEP_PLOTS") {
        std::fs::copy(png, Path::new(&dir).join(png.file_name().unwrap())).unwrap();
    }
}

/// The diffrax 8gaussians model imported into `dir/model` by the real binary.
fn import(dir: &Path) -> PathBuf {
    let model = dir.join("model");
    let out = Command::new(env!("CARGO_BIN_EXE_cnf"))
        .args([
            "import",
            "--npz",
            NPZ,
            "--hidden",
            "64,64,64",
            "--activation",
            "tanh",
        ])
        .arg("--out")
        .arg(&model)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    model
}

#[test]
fn a_model_folder_gets_its_three_pngs() {
    let dir = tempfile::tempdir().unwrap();
    let session = Session::open(import(dir.path())).unwrap();
    let out = dir.path().join("pngs");
    std::fs::create_dir(&out).unwrap();
    plot_model(&session, &out).unwrap();
    assert_eq!(png_size(&out.join("density.png")), HEATMAP_SIZE);
    assert_eq!(png_size(&out.join("samples.png")), SAMPLES_VS_DATA_SIZE);
    assert_eq!(png_size(&out.join("trajectories.png")), TRAJECTORIES_SIZE);
    for name in ["density.png", "samples.png", "trajectories.png"] {
        keep(&out.join(name));
    }
}

#[test]
fn cnf_plot_writes_the_heat_map() {
    let dir = tempfile::tempdir().unwrap();
    let model = import(dir.path());
    let png = dir.path().join("density.png");
    let out = Command::new(env!("CARGO_BIN_EXE_cnf"))
        .args(["plot", "--resolution", "60", "--model"])
        .arg(&model)
        .arg("--out")
        .arg(&png)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(png_size(&png), HEATMAP_SIZE);
}

const METRICS: &str = r#"{"iter":100,"train_nll":3.1,"val_nll":2.9,"nfe_fwd":26,"nfe_bwd":0,"seconds":1.5}
{"iter":200,"train_nll":2.8,"val_nll":2.7,"val_nll_data":2.7,"nfe_fwd":32,"nfe_bwd":0,"seconds":3.0}

{"iter":300,"train_nll":2.75,"val_nll":null,"nfe_fwd":38,"seconds":4.4}
{"iter":200,"train_nll":2.81,"val_nll":2.69,"nfe_fwd":32,"nfe_bwd":0,"seconds":3.1}
"#;

#[test]
fn the_training_curve_is_drawn_from_metrics_jsonl() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = dir.path().join("metrics.jsonl");
    std::fs::write(&metrics, METRICS).unwrap();
    let png = dir.path().join("training_curve.png");
    plot_training_curve(&metrics, &png).unwrap();
    assert_eq!(png_size(&png), TRAINING_CURVE_SIZE);
    keep(&png);
}

#[test]
fn a_malformed_metrics_file_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("curve.png");
    let metrics = dir.path().join("metrics.jsonl");
    type Check = fn(&MetricsError) -> bool;
    let cases: [(&str, Check); 5] = [
        // Not JSON on line 2.
        ("{\"iter\":1,\"val_nll\":1.0}\nnot json\n", |e| {
            matches!(e, MetricsError::Parse { line: 2, .. })
        }),
        // No iteration.
        ("{\"val_nll\":1.0}\n", |e| {
            matches!(e, MetricsError::Parse { line: 1, .. })
        }),
        // A number where a count belongs.
        ("{\"iter\":\"ten\",\"val_nll\":1.0}\n", |e| {
            matches!(e, MetricsError::Parse { line: 1, .. })
        }),
        // Empty file and no finite NLL: nothing to draw.
        ("", |e| matches!(e, MetricsError::Empty { .. })),
        ("{\"iter\":1,\"train_nll\":null,\"val_nll\":null}\n", |e| {
            matches!(e, MetricsError::Empty { .. })
        }),
    ];
    for (text, expected) in cases {
        std::fs::write(&metrics, text).unwrap();
        let e = plot_training_curve(&metrics, &png).unwrap_err();
        assert!(expected(&e), "{text:?} gave {e:?}");
        assert!(e.to_string().contains("metrics.jsonl"), "{e}");
        assert!(!png.exists(), "{text:?} left a PNG");
    }
    let missing = dir.path().join("missing.jsonl");
    assert!(matches!(
        plot_training_curve(&missing, &png),
        Err(MetricsError::Io { .. })
    ));
}
