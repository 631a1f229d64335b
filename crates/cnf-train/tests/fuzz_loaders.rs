//! Every loader of user files, fed random bytes and random mutations of valid files, returns a
//! typed error or a valid result: never a panic. Deterministic (fixed seed, no persisted
//! failures), so CI sees the same inputs on every run.
//!
//! Loaders: CSV ([`read_csv`]), `.npy` ([`read_npy`]), `.npz` weights ([`Mlp::from_npz`]),
//! safetensors weights ([`Mlp::from_safetensors_bytes`]) and `config.json` (parsing into
//! [`ModelConfig`]).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use cnf_field::{Activation, Mlp, MlpConfig};
use cnf_train::data::{read_csv, read_npy, ColumnSelection, HeaderMode};
use cnf_train::model::ModelConfig;
use npyz::WriterBuilder;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};

/// One edit of a seed file.
#[derive(Debug, Clone)]
enum Mutation {
    /// XOR one byte with a non-zero mask.
    Flip(Index, u8),
    /// Overwrite one byte with a value that often matters to parsers.
    Set(Index, u8),
    /// Cut the file at a position.
    Truncate(Index),
    /// Insert bytes at a position.
    Insert(Index, Vec<u8>),
    /// Copy a range of up to 64 bytes to another position.
    Duplicate(Index, usize, Index),
    /// Replace a run of decimal digits (a size, a count) with a large number.
    BigNumber(Index, u64),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let interesting = prop::sample::select(vec![
        0u8, 0x0a, 0x0d, b'"', b',', b'(', b')', b'[', b'{', b'-', b'9', 0x7f, 0x80, 0xef, 0xff,
    ]);
    prop_oneof![
        (any::<Index>(), 1u8..=255).prop_map(|(i, m)| Mutation::Flip(i, m)),
        (any::<Index>(), interesting).prop_map(|(i, b)| Mutation::Set(i, b)),
        any::<Index>().prop_map(Mutation::Truncate),
        (any::<Index>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<Index>(), 1usize..64, any::<Index>())
            .prop_map(|(a, n, b)| Mutation::Duplicate(a, n, b)),
        (
            any::<Index>(),
            prop::sample::select(vec![
                u64::MAX,
                1 << 62,
                (1 << 62) + 1,
                1 << 32,
                u64::from(u32::MAX),
                1_000_000_000,
                0,
            ])
        )
            .prop_map(|(i, n)| Mutation::BigNumber(i, n)),
    ]
}

fn apply(seed: &[u8], mutations: &[Mutation]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for m in mutations {
        // Positions in 0..=len, so that an empty file can still be inserted into.
        let at = |i: &Index, len: usize| i.index(len + 1);
        match m {
            Mutation::Flip(i, mask) if !b.is_empty() => {
                let k = i.index(b.len());
                b[k] ^= mask;
            }
            Mutation::Set(i, v) if !b.is_empty() => {
                let k = i.index(b.len());
                b[k] = *v;
            }
            Mutation::Truncate(i) => b.truncate(at(i, b.len())),
            Mutation::Insert(i, bytes) => {
                let k = at(i, b.len());
                b.splice(k..k, bytes.iter().copied());
            }
            Mutation::Duplicate(from, n, to) if !b.is_empty() => {
                let start = from.index(b.len());
                let chunk = b[start..(start + n).min(b.len())].to_vec();
                let k = at(to, b.len());
                b.splice(k..k, chunk);
            }
            Mutation::BigNumber(i, n) if !b.is_empty() => {
                let k = i.index(b.len());
                if let Some(start) = (k..b.len()).find(|&j| b[j].is_ascii_digit()) {
                    let end = (start..b.len())
                        .find(|&j| !b[j].is_ascii_digit())
                        .unwrap_or(b.len());
                    b.splice(start..end, n.to_string().into_bytes());
                }
            }
            _ => {}
        }
    }
    b
}

/// Random bytes, or one to four mutations of one of the seeds.
fn input(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let n = seeds.len();
    prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..600),
        4 => (0..n, prop::collection::vec(mutation(), 1..5))
            .prop_map(move |(s, m)| apply(&seeds[s], &m)),
    ]
}

/// `bytes` as hex, cut to the first 256 bytes.
fn hex(bytes: &[u8]) -> String {
    let shown: String = bytes.iter().take(256).map(|b| format!("{b:02x}")).collect();
    let more = if bytes.len() > 256 { "..." } else { "" };
    format!("{} bytes: {shown}{more}", bytes.len())
}

/// Runs `load` on `cases` inputs drawn from `seeds` with a fixed seed; fails on the first
/// panic, printing the input. Returns how many inputs loaded without error (so that a caller
/// can check that the mutations do not all break the file the same trivial way).
fn fuzz(label: &str, cases: u32, seeds: Vec<Vec<u8>>, load: impl Fn(&[u8]) -> bool) -> (u32, u32) {
    let config = Config {
        cases,
        failure_persistence: None,
        rng_algorithm: RngAlgorithm::ChaCha,
        max_shrink_iters: 200,
        ..Config::default()
    };
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[0x5e; 32]);
    let mut runner = TestRunner::new_with_rng(config, rng);
    let (ok, total) = (std::cell::Cell::new(0u32), std::cell::Cell::new(0u32));
    let result = runner.run(&input(seeds), |bytes| {
        total.set(total.get() + 1);
        match catch_unwind(AssertUnwindSafe(|| load(&bytes))) {
            Ok(loaded) => {
                ok.set(ok.get() + u32::from(loaded));
                Ok(())
            }
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                Err(TestCaseError::fail(format!(
                    "{label} panicked ({message}) on {}",
                    hex(&bytes)
                )))
            }
        }
    });
    match result {
        Ok(()) => (ok.get(), total.get()),
        Err(TestError::Fail(why, bytes)) => panic!("{why}\nminimal input: {}", hex(&bytes)),
        Err(e) => panic!("{label}: {e}"),
    }
}

/// A file in a fresh temporary folder, rewritten for every input.
struct Scratch {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        Self { _dir: dir, path }
    }

    fn write(&self, bytes: &[u8]) -> &Path {
        std::fs::write(&self.path, bytes).unwrap();
        &self.path
    }
}

fn csv_seeds() -> Vec<Vec<u8>> {
    vec![
        b"x,\"y, quoted\",z\n1.5,-2,3e-3\n4,5,6\n\n7,8,9\n".to_vec(),
        b"\xef\xbb\xbf1,2\r\n3,4\r\n\"5\",6\r\n".to_vec(),
        b"\"multi\nline\",b\n0.25,1e300\n-1e-300,2\n".to_vec(),
    ]
}

#[test]
fn csv_reader_never_panics() {
    let file = Scratch::new("f.csv");
    let selections = [
        ColumnSelection::default(),
        ColumnSelection {
            columns: Some(vec!["1".into(), "x".into()]),
            drop: vec![],
            header: HeaderMode::Auto,
        },
        ColumnSelection {
            columns: None,
            drop: vec!["0".into()],
            header: HeaderMode::Yes,
        },
        ColumnSelection {
            columns: None,
            drop: vec![],
            header: HeaderMode::No,
        },
    ];
    let (ok, total) = fuzz("read_csv", 600, csv_seeds(), |bytes| {
        let path = file.write(bytes);
        let mut any = false;
        for s in &selections {
            if let Ok(t) = read_csv(path, s) {
                assert!(t.n_rows() > 0 && t.n_cols() > 0);
                assert!(t.data().iter().all(|v| v.is_finite()));
                any = true;
            }
        }
        any
    });
    // The mutations must leave some files readable, or the fuzzing only tests the first check.
    assert!(
        ok > total / 20 && ok < total,
        "{ok} of {total} inputs loaded"
    );
}

/// A version-1 `.npy` file written by hand (f8 or f4, C or Fortran order).
fn npy_bytes(descr: &str, fortran: bool, shape: &str, data: &[u8]) -> Vec<u8> {
    let order = if fortran { "True" } else { "False" };
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': {order}, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(data);
    bytes
}

fn npy_seeds() -> Vec<Vec<u8>> {
    let f8: Vec<u8> = (0..6)
        .flat_map(|i| (f64::from(i) * 0.5 - 1.0).to_le_bytes())
        .collect();
    let f4: Vec<u8> = (0..6)
        .flat_map(|i| (i as f32 * 0.25).to_le_bytes())
        .collect();
    vec![
        npy_bytes("<f8", false, "(3, 2)", &f8),
        npy_bytes("<f4", true, "(2, 3)", &f4),
        npy_bytes("<f8", false, "(6,)", &f8),
    ]
}

#[test]
fn npy_reader_never_panics() {
    let file = Scratch::new("f.npy");
    // The seeds are valid: the fuzzing starts from files that load.
    for seed in npy_seeds() {
        let t = read_npy(file.write(&seed)).unwrap();
        assert_eq!(t.n_rows() * t.n_cols(), 6);
    }
    let (ok, total) = fuzz("read_npy", 600, npy_seeds(), |bytes| {
        match read_npy(file.write(bytes)) {
            Ok(t) => {
                // A valid result is consistent with the file: no more values than bytes.
                assert!(t.n_rows() * t.n_cols() * 4 <= bytes.len());
                assert!(t.data().iter().all(|v| v.is_finite()));
                true
            }
            Err(_) => false,
        }
    });
    assert!(ok > 0 && ok < total, "{ok} of {total} inputs loaded");
}

fn diffrax_npz() -> Vec<u8> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/cnf_8g_diffrax_1000it.npz");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A small valid npz: d = 2, hidden [3], f32 arrays, stored uncompressed.
fn small_npz() -> Vec<u8> {
    let shapes: [(&str, &[u64]); 4] =
        [("W0", &[3, 3]), ("b0", &[3]), ("W1", &[2, 3]), ("b1", &[2])];
    let mut zip = npyz::npz::NpzWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, shape) in shapes {
        let n = shape.iter().product::<u64>() as usize;
        let values: Vec<f32> = (0..n).map(|i| (i as f32 * 0.3).sin()).collect();
        let mut w = zip
            .array::<f32>(name, Default::default())
            .unwrap()
            .default_dtype()
            .shape(shape)
            .begin_nd()
            .unwrap();
        w.extend(values).unwrap();
        w.finish().unwrap();
    }
    zip.zip_writer().finish().unwrap().into_inner()
}

#[test]
fn npz_weights_loader_never_panics() {
    let file = Scratch::new("w.npz");
    let big = diffrax_npz();
    let small = small_npz();
    let big_model = |p: &Path| Mlp::<f32>::from_npz(p, &[64, 64, 64], Activation::Tanh);
    let small_model = |p: &Path| Mlp::<f64>::from_npz(p, &[3], Activation::Elu);
    assert!(big_model(file.write(&big)).is_ok());
    assert!(small_model(file.write(&small)).is_ok());
    let (ok, total) = fuzz("Mlp::from_npz", 500, vec![big, small], |bytes| {
        let path = file.write(bytes);
        let a = big_model(path).is_ok();
        let b = small_model(path).is_ok();
        a || b
    });
    assert!(ok > 0 && ok < total, "{ok} of {total} inputs loaded");
}

#[test]
fn safetensors_weights_loader_never_panics() {
    let config = MlpConfig::new(2, &[5, 4], Activation::Swish);
    let m32 = Mlp::<f32>::new(config.clone(), 3).unwrap();
    let m64 = Mlp::<f64>::new(config.clone(), 4).unwrap();
    let seeds = vec![
        m32.to_safetensors_bytes().unwrap(),
        m64.to_safetensors_bytes().unwrap(),
    ];
    let (ok, total) = fuzz("Mlp::from_safetensors_bytes", 800, seeds, |bytes| {
        let a = Mlp::<f32>::from_safetensors_bytes(bytes, config.clone()).is_ok();
        let b = Mlp::<f64>::from_safetensors_bytes(bytes, config.clone()).is_ok();
        a || b
    });
    assert!(ok > 0 && ok < total, "{ok} of {total} inputs loaded");
}

/// A `config.json` as `cnf train` writes it for a CSV table.
const CONFIG_SEED: &str = r#"{
  "mlp": {"dim": 2, "hidden": [64, 64, 64], "activation": "tanh"},
  "solver": {"method": "dopri5", "steps": null, "rtol": 1e-5, "atol": 1e-5},
  "standardizer": {"mean": [0.5, -1.25], "std": [2.0, 0.125]},
  "data": {"kind": "table", "path": "data.csv", "columns": null, "drop": ["id"], "split": [0.8, 0.1, 0.1]},
  "seed": 7,
  "columns": ["a", "b"],
  "precision": "f32"
}"#;

#[test]
fn config_json_parsing_never_panics() {
    let parsed = serde_json::from_str::<ModelConfig>(CONFIG_SEED);
    assert!(
        parsed.is_ok(),
        "the seed config.json no longer parses (update CONFIG_SEED to the current schema): {parsed:?}"
    );
    let seeds = vec![CONFIG_SEED.as_bytes().to_vec()];
    let (ok, total) = fuzz("config.json", 800, seeds, |bytes| {
        // Parsing as the command line does: text first, then JSON.
        std::str::from_utf8(bytes)
            .ok()
            .is_some_and(|text| serde_json::from_str::<ModelConfig>(text).is_ok())
    });
    assert!(ok > 0 && ok < total, "{ok} of {total} inputs loaded");
}
