//! One value per concept (issue 21): the gradient method is cnf-ode's `Differentiation` from
//! config.json to the solver, old model folders still load, evaluate and resume, the trace
//! default is one rule for the library and the command, and flow matching has its own defaults.
mod common;

use std::path::Path;

use cnf_train::model::ModelConfig;
use cnf_train::trainer::{Differentiation, TraceKind};
use common::{cnf, fails, ok, s};

/// A model folder written by the release before this change (`cnf train --iters 4
/// --val-every 2 --hidden 8 --batch 16 --no-plots`, commit 7c41901): config.json with
/// `"grad": "backprop"`, weights, checkpoint and metrics.
const OLD_RUN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/model_v0");
/// config.json of the same run with `--grad adjoint`, written by the same release.
const OLD_ADJOINT_CONFIG: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/config_v0_adjoint.json"
);

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn metrics(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * a.abs().max(b.abs()).max(1.0)
}

/// The old folder loads, evaluates to the numbers the old release printed, and resumes to the
/// iterations the old release reached from the same checkpoint.
#[test]
fn a_model_folder_written_before_the_change_loads_evaluates_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    copy_dir(Path::new(OLD_RUN), &dir);
    let config: ModelConfig =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let tr = config.training.as_ref().unwrap();
    assert_eq!(tr.grad, Differentiation::Discretise);
    assert_eq!(tr.trace, TraceKind::Exact);

    // The old release: test_nll 6.769437947225571, W2 1.7643205089536933, NFE 260.
    let out = ok(&["eval", "--model", s(&dir), "--data", "8gaussians", "--json"]);
    let ev: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let nll = ev["test_nll"].as_f64().unwrap();
    assert!(close(nll, 6.769437947225571, 1e-9), "test NLL {nll}");
    assert_eq!(ev["nfe"].as_u64(), Some(260));

    // The old release resumed this checkpoint to iteration 6 with train_nll 6.831147909164429
    // and val_nll 6.633370764374733.
    ok(&[
        "train",
        "--resume",
        "--out",
        s(&dir),
        "--iters",
        "6",
        "--no-plots",
    ]);
    let m = metrics(&dir);
    assert_eq!(m.len(), 3, "{m:?}");
    let last = &m[2];
    assert_eq!(last["iter"].as_u64(), Some(6));
    let (train, val) = (
        last["train_nll"].as_f64().unwrap(),
        last["val_nll"].as_f64().unwrap(),
    );
    assert!(close(train, 6.831147909164429, 1e-9), "train NLL {train}");
    assert!(close(val, 6.633370764374733, 1e-9), "val NLL {val}");
    // Rewritten by the new code, the gradient keeps the old spelling.
    assert_eq!(
        json(&dir.join("config.json"))["training"]["grad"],
        "backprop"
    );
}

/// `training.grad` of every form reads into the `Differentiation` it names and writes back the
/// same JSON; the old `"adjoint"` is the backsolve adjoint at the solver's tolerances.
#[test]
fn training_grad_reads_old_names_and_writes_each_method() {
    let text = std::fs::read_to_string(OLD_ADJOINT_CONFIG).unwrap();
    let config: ModelConfig = serde_json::from_str(&text).unwrap();
    assert_eq!(
        config.training.as_ref().unwrap().grad,
        Differentiation::adjoint()
    );
    let mut value: serde_json::Value = serde_json::from_str(&text).unwrap();
    for (grad, method) in [
        (serde_json::json!("backprop"), Differentiation::Discretise),
        (serde_json::json!("adjoint"), Differentiation::adjoint()),
        (
            serde_json::json!({"checkpointed": {"every": 3}}),
            Differentiation::Checkpointed { every: 3 },
        ),
        (
            serde_json::json!({"backsolve": {"tolerances": [1e-6, 1e-7], "seminorm": false}}),
            Differentiation::Backsolve {
                tolerances: Some((1e-6, 1e-7)),
                seminorm: false,
            },
        ),
    ] {
        value["training"]["grad"] = grad.clone();
        let c: ModelConfig = serde_json::from_value(value.clone()).unwrap();
        assert_eq!(c.training.as_ref().unwrap().grad, method);
        let back = serde_json::to_value(&c).unwrap();
        assert_eq!(back["training"]["grad"], grad);
    }
    for bad in [
        serde_json::json!({"checkpointed": {"every": 0}}),
        serde_json::json!("magic"),
    ] {
        value["training"]["grad"] = bad;
        assert!(serde_json::from_value::<ModelConfig>(value.clone()).is_err());
    }
}

fn tiny_run(dir: &Path, extra: &[&str]) {
    let mut args = vec![
        "train",
        "--iters",
        "4",
        "--val-every",
        "2",
        "--hidden",
        "8",
        "--batch",
        "16",
        "--no-plots",
        "--out",
        s(dir),
    ];
    args.extend_from_slice(extra);
    ok(&args);
}

/// `--grad checkpointed` trains, and takes backprop's trajectory: the same losses and
/// validation NLLs (to rounding) and the same forward solves, with more backward evaluations
/// (the recomputed stages).
#[test]
fn checkpointed_training_follows_the_backprop_trajectory() {
    let tmp = tempfile::tempdir().unwrap();
    let (bp, ck, ck8) = (
        tmp.path().join("bp"),
        tmp.path().join("ck"),
        tmp.path().join("ck8"),
    );
    tiny_run(&bp, &[]);
    tiny_run(&ck, &["--grad", "checkpointed", "--checkpoint-every", "2"]);
    tiny_run(&ck8, &["--grad", "checkpointed"]);
    assert_eq!(
        json(&ck.join("config.json"))["training"]["grad"],
        serde_json::json!({"checkpointed": {"every": 2}})
    );
    assert_eq!(
        json(&ck8.join("config.json"))["training"]["grad"],
        serde_json::json!({"checkpointed": {"every": 8}})
    );
    let base = metrics(&bp);
    for dir in [&ck, &ck8] {
        let m = metrics(dir);
        assert_eq!(m.len(), base.len());
        for (a, b) in base.iter().zip(&m) {
            for key in ["train_nll", "val_nll"] {
                let (x, y) = (a[key].as_f64().unwrap(), b[key].as_f64().unwrap());
                assert!(close(x, y, 1e-9), "{key}: backprop {x}, checkpointed {y}");
            }
            assert_eq!(a["nfe_fwd"], b["nfe_fwd"]);
            assert!(b["nfe_bwd"].as_u64() >= a["nfe_bwd"].as_u64());
        }
    }
    // The segment length belongs to checkpointing only; a resume keeps the run's method.
    let other = tmp.path().join("other");
    let e = fails(&[
        "train",
        "--grad",
        "adjoint",
        "--checkpoint-every",
        "4",
        "--out",
        s(&other),
    ]);
    assert!(e.contains("--checkpoint-every"), "{e}");
    let e = fails(&[
        "train",
        "--resume",
        "--out",
        s(&ck),
        "--iters",
        "6",
        "--grad",
        "backprop",
    ]);
    assert!(e.contains("--grad"), "{e}");
}

/// The trace default is `TraceKind::auto` for a table too: 12 columns get the exact trace,
/// with and without `--trace auto`, as the library's rule says.
#[test]
fn a_table_gets_the_libraries_trace_rule() {
    use rand::{rngs::StdRng, Rng, SeedableRng};
    let tmp = tempfile::tempdir().unwrap();
    let csv = tmp.path().join("t12.csv");
    let mut rng = StdRng::seed_from_u64(0);
    let mut text = (0..12)
        .map(|j| format!("c{j}"))
        .collect::<Vec<_>>()
        .join(",");
    text.push('\n');
    for _ in 0..80 {
        let row: Vec<String> = (0..12)
            .map(|_| format!("{:.4}", rng.random_range(-1.0..1.0)))
            .collect();
        text.push_str(&row.join(","));
        text.push('\n');
    }
    std::fs::write(&csv, text).unwrap();
    let want = serde_json::to_value(TraceKind::auto(12)).unwrap();
    assert_eq!(TraceKind::auto(12), TraceKind::Exact);
    for (name, extra) in [("default", &[][..]), ("auto", &["--trace", "auto"][..])] {
        let out = tmp.path().join(name);
        let mut args = vec![
            "train",
            "--data",
            s(&csv),
            "--iters",
            "2",
            "--hidden",
            "8",
            "--no-plots",
            "--out",
            s(&out),
        ];
        args.extend_from_slice(extra);
        ok(&args);
        let trace = &json(&out.join("config.json"))["training"]["trace"];
        assert_eq!(*trace, want, "{name}");
    }
}

/// `--objective fm` on a toy set defaults to its own protocol (10000 iterations, validation
/// every 1000, lr 1e-3), recorded in config.json; `ml` keeps 1000 / 100. (The 10k iterations
/// are not run: a learning rate of 1e30 makes the run diverge at its second iteration, after
/// config.json is written.)
#[test]
fn flow_matching_has_its_own_default_iterations() {
    let tmp = tempfile::tempdir().unwrap();
    for (objective, iters, val_every) in [("fm", 10_000, 1000), ("ml", 1000, 100)] {
        let out = tmp.path().join(objective);
        let run = cnf(&[
            "train",
            "--objective",
            objective,
            "--hidden",
            "8",
            "--batch",
            "16",
            "--lr",
            "1e30",
            "--no-plots",
            "--out",
            s(&out),
        ]);
        assert_eq!(run.status.code(), Some(1), "{objective} should diverge");
        let tr = &json(&out.join("config.json"))["training"];
        assert_eq!(tr["iters"].as_u64(), Some(iters), "{objective}");
        assert_eq!(tr["val_every"].as_u64(), Some(val_every), "{objective}");
        assert_eq!(tr["lr"].as_f64(), Some(1e30));
    }
    let help = ok(&["train", "--help"]);
    assert!(help.contains("--objective fm 10000"), "{help}");
    assert!(help.contains("--objective fm 1000"), "{help}");
}
