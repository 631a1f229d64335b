//! Builds the Python package and runs its pytest suite (`crates/cnf-py/tests/python`), so that
//! `cargo test --workspace` tests the bindings too. A virtual environment is made once under the
//! target folder (`target/pyvenv`) with maturin and the test dependencies from the package
//! index; the package is built in release mode with `maturin develop`, and the `cnf` command
//! (for the model-folder interoperability tests) with `cargo build --release`.
use std::path::{Path, PathBuf};
use std::process::Command;

/// What the suite needs besides the package itself; a change here re-runs `pip install`.
const REQUIREMENTS: &[&str] = &[
    "maturin>=1.7,<2",
    "numpy",
    "scipy",
    "scikit-learn>=1.6",
    "pytest",
    "dask[distributed]",
    "pandas",
];

fn run(cmd: &mut Command, what: &str) {
    eprintln!("running {cmd:?}");
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("{what}: cannot start {cmd:?}: {e}"));
    assert!(status.success(), "{what} failed ({status})");
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

/// The virtual environment's interpreter, created and filled when missing or outdated.
fn venv(target: &Path) -> PathBuf {
    let venv = target.join("pyvenv");
    let python = venv.join("bin/python");
    if !python.is_file() {
        let system = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
        run(
            Command::new(system).args(["-m", "venv"]).arg(&venv),
            "creating the virtual environment (Debian: apt-get install python3-venv)",
        );
    }
    let stamp = venv.join("cnf-py-requirements.txt");
    let wanted = REQUIREMENTS.join("\n");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
        run(
            Command::new(&python)
                .args(["-m", "pip", "install", "--quiet", "--upgrade"])
                .args(REQUIREMENTS),
            "installing the test dependencies",
        );
        std::fs::write(&stamp, wanted).expect("writing the requirements stamp");
    }
    python
}

#[test]
fn python_package_passes_its_pytest_suite() {
    let root = workspace();
    let target = target_dir(&root);
    let python = venv(&target);
    let venv_dir = python.parent().and_then(Path::parent).expect("venv folder");
    let bin = venv_dir.join("bin");
    let path = std::env::join_paths(std::iter::once(bin.clone()).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .expect("PATH");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run(
        Command::new(&cargo)
            .args(["build", "--release", "--bin", "cnf"])
            .current_dir(&root),
        "building the cnf command",
    );
    run(
        Command::new(bin.join("maturin"))
            .args(["develop", "--release"])
            .current_dir(root.join("crates/cnf-py"))
            .env("VIRTUAL_ENV", venv_dir)
            .env("PATH", &path)
            .env("CARGO_TARGET_DIR", &target),
        "building the Python package",
    );
    run(
        Command::new(&python)
            .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
            .arg(root.join("crates/cnf-py/tests/python"))
            .env("CNF_BIN", target.join("release/cnf"))
            .env("PATH", &path)
            .env_remove("RAYON_NUM_THREADS"),
        "the Python test suite",
    );
}
