//! Weights in and out: safetensors round trips, the reference npz model, malformed files.

mod common;

use cnf_field::{Activation, FieldError, Inputs, LayerKind, Mlp, MlpConfig, Trace, VectorField};
use npyz::npz::{NpzArchive, NpzWriter};
use npyz::WriterBuilder;
use std::path::Path;

const REFERENCE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/data/cnf_8g_diffrax_1000it.npz"
);

fn sample_mlp<T: cnf_field::Real>(seed: u64) -> Mlp<T> {
    Mlp::new(MlpConfig::new(2, &[5, 7, 3], Activation::Swish), seed).unwrap()
}

#[test]
fn safetensors_round_trip_is_bit_exact() {
    let m64 = sample_mlp::<f64>(1);
    let back = Mlp::<f64>::from_safetensors_bytes(
        &m64.to_safetensors_bytes().unwrap(),
        m64.config().clone(),
    )
    .unwrap();
    assert_eq!(back, m64);
    let m32 = sample_mlp::<f32>(2);
    let back = Mlp::<f32>::from_safetensors_bytes(
        &m32.to_safetensors_bytes().unwrap(),
        m32.config().clone(),
    )
    .unwrap();
    assert_eq!(back, m32);
    // f32 weights read into f64 are the exactly widened values.
    let widened = Mlp::<f64>::from_safetensors_bytes(
        &m32.to_safetensors_bytes().unwrap(),
        m32.config().clone(),
    )
    .unwrap();
    assert_eq!(widened, m32.cast::<f64>());
}

#[test]
fn concat_squash_round_trip_and_names() {
    let config = MlpConfig {
        layer_kind: LayerKind::ConcatSquash,
        ..MlpConfig::new(3, &[4], Activation::Softplus)
    };
    let m = Mlp::<f32>::new(config.clone(), 9).unwrap();
    assert_eq!(
        m.param_names(),
        ["W0", "b0", "Wg0", "bg0", "Wb0", "W1", "b1", "Wg1", "bg1", "Wb1"]
    );
    let shapes: Vec<Vec<usize>> = m
        .named_params()
        .into_iter()
        .map(|(_, shape, _)| shape)
        .collect();
    assert_eq!(shapes[0], [4, 3]);
    assert_eq!(shapes[2], [4, 1]);
    assert_eq!(m.num_params(), 4 * 3 + 4 + 3 * 4 + 3 * 4 + 3 + 3 * 3);
    let dir = tempfile::tempdir().unwrap();
    m.save(dir.path()).unwrap();
    assert_eq!(Mlp::<f32>::load(dir.path()).unwrap(), m);
    // The same weights read as plain concat do not fit (W0 has no time column).
    let concat = MlpConfig::new(3, &[4], Activation::Softplus);
    assert!(matches!(
        Mlp::<f32>::from_safetensors_bytes(&m.to_safetensors_bytes().unwrap(), concat),
        Err(FieldError::Shape { .. })
    ));
}

#[test]
fn save_load_directory_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let m = sample_mlp::<f64>(3);
    m.save(dir.path().join("model")).unwrap();
    let back = Mlp::<f64>::load(dir.path().join("model")).unwrap();
    assert_eq!(back, m);
    assert!(matches!(
        Mlp::<f64>::load(dir.path().join("absent")),
        Err(FieldError::Io(_))
    ));
}

#[test]
fn safetensors_errors() {
    let m = sample_mlp::<f64>(4);
    let bytes = m.to_safetensors_bytes().unwrap();
    let wrong = MlpConfig::new(2, &[5, 8, 3], Activation::Swish);
    match Mlp::<f64>::from_safetensors_bytes(&bytes, wrong) {
        Err(FieldError::Shape {
            what,
            expected,
            found,
        }) => {
            assert_eq!(
                (what.as_str(), expected, found),
                ("W1", vec![8, 5], vec![7, 5])
            );
        }
        other => panic!("expected a shape error, got {other:?}"),
    }
    let deeper = MlpConfig::new(2, &[5, 7, 3, 3], Activation::Swish);
    assert!(matches!(
        Mlp::<f64>::from_safetensors_bytes(&bytes, deeper),
        Err(FieldError::Shape { .. })
    ));
    assert!(matches!(
        Mlp::<f64>::from_safetensors_bytes(b"not a safetensors file", m.config().clone()),
        Err(FieldError::Malformed(_))
    ));
}

#[test]
fn constructor_errors() {
    let bad_dim = MlpConfig::new(0, &[4], Activation::Tanh);
    assert!(matches!(
        Mlp::<f64>::new(bad_dim, 0),
        Err(FieldError::InvalidConfig(_))
    ));
    let zero_width = MlpConfig::new(2, &[4, 0], Activation::Tanh);
    assert!(matches!(
        Mlp::<f64>::new(zero_width, 0),
        Err(FieldError::InvalidConfig(_))
    ));
    let config = MlpConfig::new(2, &[4], Activation::Tanh);
    assert!(matches!(
        Mlp::<f64>::from_params(config.clone(), vec![0.0; 3]),
        Err(FieldError::Shape { .. })
    ));
    let mut params = vec![0.1; config.num_params()];
    params[7] = f64::INFINITY;
    assert!(matches!(
        Mlp::<f64>::from_params(config.clone(), params),
        Err(FieldError::NonFinite { index: 7, .. })
    ));
    assert!(
        matches!("relu".parse::<Activation>(), Err(FieldError::UnknownActivation(name)) if name == "relu")
    );
    assert_eq!("SiLU".parse::<Activation>().unwrap(), Activation::Swish);
    let m = Mlp::<f64>::new(config, 0).unwrap();
    assert!(matches!(
        m.eval(0.0, &[1.0, 2.0, 3.0]),
        Err(FieldError::Shape { .. })
    ));
    assert!(matches!(
        m.divergence(0.0, &[1.0]),
        Err(FieldError::Shape { .. })
    ));
}

#[test]
fn config_json_round_trip() {
    let m = sample_mlp::<f32>(5);
    let back: MlpConfig = serde_json::from_str(&m.config_json().unwrap()).unwrap();
    assert_eq!(&back, m.config());
    assert!(
        serde_json::from_str::<MlpConfig>(r#"{"dim":2,"hidden":[4],"activation":"relu"}"#).is_err()
    );
}

/// Shape and row-major values.
type Tensor = (Vec<usize>, Vec<f64>);

/// Reads `name` from the npz as row-major f64 with its shape (independently of the crate).
fn raw(archive: &mut NpzArchive<std::io::BufReader<std::fs::File>>, name: &str) -> Tensor {
    let npy = archive.by_name(name).unwrap().unwrap();
    let shape = npy.shape().iter().map(|&n| n as usize).collect();
    let values = npy
        .into_vec::<f32>()
        .unwrap()
        .into_iter()
        .map(f64::from)
        .collect();
    (shape, values)
}

fn matvec(w: &[f64], rows: usize, x: &[f64]) -> Vec<f64> {
    let cols = x.len();
    (0..rows)
        .map(|i| (0..cols).map(|j| w[i * cols + j] * x[j]).sum())
        .collect()
}

fn matmul(a: &[f64], b: &[f64], n: usize, k: usize, m: usize) -> Vec<f64> {
    let mut c = vec![0.0; n * m];
    for i in 0..n {
        for j in 0..m {
            c[i * m + j] = (0..k).map(|l| a[i * k + l] * b[l * m + j]).sum();
        }
    }
    c
}

/// The diffrax-trained model: loaded v and exact trace equal a direct evaluation of
/// `W3 tanh(W2 tanh(W1 tanh(W0 [z,t] + b0) + b1) + b2) + b3` and of
/// `tr(W3 diag(s2') W2 diag(s1') W1 diag(s0') W0[:, :2])`.
#[test]
fn reference_npz_model_matches_direct_formula() {
    let m64 = Mlp::<f64>::from_npz(REFERENCE, &[64, 64, 64], Activation::Tanh).unwrap();
    let m32 = Mlp::<f32>::from_npz(REFERENCE, &[64, 64, 64], Activation::Tanh).unwrap();
    assert_eq!(m64.config().dim, 2);
    let mut archive = NpzArchive::open(REFERENCE).unwrap();
    let layers: Vec<(Tensor, Tensor)> = (0..4)
        .map(|i| {
            (
                raw(&mut archive, &format!("W{i}")),
                raw(&mut archive, &format!("b{i}")),
            )
        })
        .collect();
    assert_eq!(layers[0].0 .0, vec![64, 3]);
    assert_eq!(layers[3].0 .0, vec![2, 64]);

    let points = [
        ([0.3, -1.2], 0.0),
        ([2.5, 0.7], 0.4),
        ([-1.9, -2.2], 1.0),
        ([0.0, 0.0], 0.75),
    ];
    let (mut zs, mut v_direct, mut tr_direct) = (Vec::new(), Vec::new(), Vec::new());
    for (z, t) in points {
        let mut h = vec![z[0], z[1], t];
        // Product M = diag(s') W ... W0[:, :2], built up layer by layer.
        let w0 = &layers[0].0 .1;
        let mut m: Vec<f64> = (0..64).flat_map(|i| [w0[i * 3], w0[i * 3 + 1]]).collect();
        for (l, ((wshape, w), (_, b))) in layers.iter().enumerate() {
            let rows = wshape[0];
            if l > 0 {
                m = matmul(w, &m, rows, wshape[1], 2);
            }
            let a: Vec<f64> = matvec(w, rows, &h)
                .iter()
                .zip(b)
                .map(|(x, y)| x + y)
                .collect();
            if l == 3 {
                h = a;
            } else {
                h = a.iter().map(|x| x.tanh()).collect();
                for (i, hi) in h.iter().enumerate() {
                    let ds = 1.0 - hi * hi;
                    m[i * 2] *= ds;
                    m[i * 2 + 1] *= ds;
                }
            }
        }
        zs.extend(z);
        v_direct.extend(h);
        tr_direct.push(m[0] + m[3]);
    }
    let n = points.len();
    for (i, (z, t)) in points.iter().enumerate() {
        let v = m64.eval(*t, z).unwrap();
        assert!(
            common::max_rel_err(&v, &v_direct[i * 2..][..2]) < 1e-12,
            "{v:?} vs {:?}",
            &v_direct[i * 2..][..2]
        );
        let tr = m64.divergence(*t, z).unwrap();
        assert!(
            common::max_rel_err(&[tr], &[tr_direct[i]]) < 1e-12,
            "{tr} vs {}",
            tr_direct[i]
        );
        // The f32 model agrees to f32 accuracy.
        let z32 = [z[0] as f32, z[1] as f32];
        let v32: Vec<f64> = m32
            .eval(*t as f32, &z32)
            .unwrap()
            .into_iter()
            .map(f64::from)
            .collect();
        assert!(common::max_rel_err(&v32, &v_direct[i * 2..][..2]) < 1e-4);
        let tr32 = m32.divergence(*t as f32, &z32).unwrap() as f64;
        assert!(common::max_rel_err(&[tr32], &[tr_direct[i]]) < 1e-4);
    }
    // Batched: all points at one time share the batch path.
    let mut s = m64.scratch(n);
    let (mut v, mut div) = (vec![0.0; 2 * n], vec![0.0; n]);
    m64.eval_div_batch(
        &mut s,
        Inputs::shared(0.75, &zs),
        &Trace::Exact,
        &mut v,
        &mut div,
    );
    assert!(common::max_rel_err(&v[6..8], &v_direct[6..8]) < 1e-12);
    assert!(common::max_rel_err(&div[3..4], &tr_direct[3..4]) < 1e-12);
}

/// One array to write into a test npz.
enum Arr {
    F32(Vec<u64>, Vec<f32>),
    F64(Vec<u64>, Vec<f64>),
    I32(Vec<u64>, Vec<i32>),
}

/// Named arrays of a test npz.
type Arrays = Vec<(&'static str, Arr)>;

/// Appends one array of element type `E` to the archive.
fn write_array<E: npyz::AutoSerialize + Copy, W: std::io::Write + std::io::Seek>(
    npz: &mut NpzWriter<W>,
    name: &str,
    shape: &[u64],
    values: &[E],
) {
    let mut w = npz
        .array::<E>(name, Default::default())
        .unwrap()
        .default_dtype()
        .shape(shape)
        .begin_nd()
        .unwrap();
    w.extend(values.iter().copied()).unwrap();
    w.finish().unwrap();
}

fn write_npz(path: &Path, arrays: &[(&str, Arr)]) {
    let mut npz = NpzWriter::create(path).unwrap();
    for (name, arr) in arrays {
        match arr {
            Arr::F32(shape, v) => write_array(&mut npz, name, shape, v),
            Arr::F64(shape, v) => write_array(&mut npz, name, shape, v),
            Arr::I32(shape, v) => write_array(&mut npz, name, shape, v),
        }
    }
}

/// A valid small torch-layout model: d = 2, hidden [4, 3].
fn good_arrays() -> Arrays {
    let f = |shape: Vec<u64>| {
        let n = shape.iter().product::<u64>() as usize;
        Arr::F32(shape, (0..n).map(|i| (i as f32 * 0.37).sin()).collect())
    };
    vec![
        ("W0", f(vec![4, 3])),
        ("b0", f(vec![4])),
        ("W1", f(vec![3, 4])),
        ("b1", f(vec![3])),
        ("W2", f(vec![2, 3])),
        ("b2", f(vec![2])),
    ]
}

fn load(path: &Path) -> Result<Mlp<f64>, FieldError> {
    Mlp::from_npz(path, &[4, 3], Activation::Elu)
}

#[test]
fn npz_good_file_loads_in_both_precisions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("good.npz");
    let arrays = good_arrays();
    write_npz(&path, &arrays);
    let m = load(&path).unwrap();
    assert_eq!(m.config(), &MlpConfig::new(2, &[4, 3], Activation::Elu));
    let Arr::F32(_, w1) = &arrays[2].1 else {
        unreachable!()
    };
    assert_eq!(
        m.layer(1).0,
        w1.iter().map(|&x| x as f64).collect::<Vec<_>>().as_slice()
    );
    // f64 arrays are accepted too, and load into f32.
    let as_f64: Vec<(&str, Arr)> = arrays
        .iter()
        .map(|(n, a)| match a {
            Arr::F32(s, v) => (
                *n,
                Arr::F64(s.clone(), v.iter().map(|&x| x as f64).collect()),
            ),
            _ => unreachable!(),
        })
        .collect();
    let path64 = dir.path().join("good64.npz");
    write_npz(&path64, &as_f64);
    let m32 = Mlp::<f32>::from_npz(&path64, &[4, 3], Activation::Elu).unwrap();
    assert_eq!(m32, m.cast::<f32>());
}

#[test]
fn npz_bad_files_give_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let case = |name: &str, edit: &dyn Fn(&mut Arrays)| {
        let mut arrays = good_arrays();
        edit(&mut arrays);
        let path = dir.path().join(format!("{name}.npz"));
        write_npz(&path, &arrays);
        load(&path)
    };

    let r = case("wrong_shape", &|a| {
        a[2].1 = Arr::F32(vec![4, 3], vec![0.0; 12])
    });
    assert!(
        matches!(&r, Err(FieldError::Shape { what, expected, found }) if what == "W1" && expected == &[3, 4] && found == &[4, 3]),
        "{r:?}"
    );

    let r = case("wrong_bias", &|a| {
        a[1].1 = Arr::F32(vec![1, 4], vec![0.0; 4])
    });
    assert!(
        matches!(&r, Err(FieldError::Shape { what, .. }) if what == "b0"),
        "{r:?}"
    );

    let r = case("nan", &|a| {
        a[3].1 = Arr::F32(vec![3], vec![0.0, f32::NAN, 1.0])
    });
    assert!(
        matches!(&r, Err(FieldError::NonFinite { what, index: 1 }) if what == "b1"),
        "{r:?}"
    );

    let r = case("inf", &|a| {
        a[4].1 = Arr::F32(vec![2, 3], vec![0.0, 0.0, 0.0, 0.0, 0.0, f32::INFINITY])
    });
    assert!(
        matches!(&r, Err(FieldError::NonFinite { what, index: 5 }) if what == "W2"),
        "{r:?}"
    );

    let r = case("missing", &|a| {
        a.remove(5);
    });
    assert!(
        matches!(&r, Err(FieldError::MissingTensor(name)) if name == "b2"),
        "{r:?}"
    );

    let r = case("missing_w0", &|a| {
        a.remove(0);
    });
    assert!(
        matches!(&r, Err(FieldError::MissingTensor(name)) if name == "W0"),
        "{r:?}"
    );

    let r = case("w0_1d", &|a| a[0].1 = Arr::F32(vec![12], vec![0.0; 12]));
    assert!(
        matches!(&r, Err(FieldError::Shape { what, .. }) if what.starts_with("W0")),
        "{r:?}"
    );

    let r = case("int", &|a| a[1].1 = Arr::I32(vec![4], vec![1; 4]));
    assert!(
        matches!(&r, Err(FieldError::UnsupportedDtype { tensor, .. }) if tensor == "b0"),
        "{r:?}"
    );

    // Hidden widths that disagree with the file.
    let path = dir.path().join("good.npz");
    write_npz(&path, &good_arrays());
    let r = Mlp::<f64>::from_npz(&path, &[4, 5], Activation::Tanh);
    assert!(
        matches!(&r, Err(FieldError::Shape { what, .. }) if what == "W1"),
        "{r:?}"
    );

    let garbage = dir.path().join("garbage.npz");
    std::fs::write(&garbage, b"this is not a zip archive").unwrap();
    assert!(matches!(load(&garbage), Err(FieldError::Malformed(_))));
    assert!(matches!(
        load(&dir.path().join("absent.npz")),
        Err(FieldError::Io(_))
    ));
}

#[test]
fn npz_with_arrays_the_architecture_does_not_use_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    // Four linear layers (hidden [4, 3, 3]) imported as hidden [4, 3]: W3 and b3 would be
    // dropped; they used to be, silently.
    let mut arrays = good_arrays();
    arrays[4].1 = Arr::F32(vec![3, 3], vec![0.5; 9]);
    arrays[5].1 = Arr::F32(vec![3], vec![0.5; 3]);
    arrays.push(("W3", Arr::F32(vec![2, 3], vec![0.25; 6])));
    arrays.push(("b3", Arr::F32(vec![2], vec![0.25; 2])));
    let path = dir.path().join("extra_layer.npz");
    write_npz(&path, &arrays);
    let r = load(&path);
    assert!(
        matches!(&r, Err(FieldError::UnusedTensors { unused, expected: 6 }) if unused == &["W3", "b3"]),
        "{r:?}"
    );
    let message = r.unwrap_err().to_string();
    assert!(message.contains("W3, b3"), "{message}");
    // With the right widths every array is used and the file loads.
    let m = Mlp::<f64>::from_npz(&path, &[4, 3, 3], Activation::Elu).unwrap();
    assert_eq!(m.config().hidden, [4, 3, 3]);

    // Any stray array counts, not only extra layers.
    let mut arrays = good_arrays();
    arrays.push(("notes", Arr::I32(vec![1], vec![7])));
    write_npz(&path, &arrays);
    let r = load(&path);
    assert!(
        matches!(&r, Err(FieldError::UnusedTensors { unused, .. }) if unused == &["notes"]),
        "{r:?}"
    );
}

/// Writes `W0.npy` with a hand-made header (so that it can lie) and the rest of a good model.
fn write_npz_with_raw_w0(path: &Path, raw_w0: &[u8]) {
    use std::io::Write;
    let mut npz = NpzWriter::create(path).unwrap();
    npz.zip_writer()
        .start_file("W0.npy", Default::default())
        .unwrap();
    npz.zip_writer().write_all(raw_w0).unwrap();
    for (name, arr) in good_arrays().iter().skip(1) {
        let Arr::F32(shape, v) = arr else {
            unreachable!()
        };
        write_array(&mut npz, name, shape, v);
    }
}

fn raw_npy(shape: &str, data: &[u8]) -> Vec<u8> {
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
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

#[test]
fn npz_headers_that_lie_about_sizes_are_refused_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lying.npz");
    let data: Vec<u8> = (0..12)
        .flat_map(|i| (i as f32 * 0.1).to_le_bytes())
        .collect();
    // The honest version loads (so the helper writes a valid file).
    write_npz_with_raw_w0(&path, &raw_npy("(4, 3)", &data));
    assert!(load(&path).is_ok());

    let malformed = |shape: &str| {
        write_npz_with_raw_w0(&path, &raw_npy(shape, &data));
        match load(&path) {
            Err(FieldError::Malformed(m)) => m,
            other => panic!("{shape}: expected Malformed, got {other:?}"),
        }
    };
    // The element count overflows 64 bits (npyz multiplies unchecked).
    let m = malformed("(4611686018427387904, 4)");
    assert!(m.contains("more elements than fit in 64 bits"), "{m}");
    // Deep nesting (npyz's header parser recurses).
    let m = malformed(&format!("({}4{}", "(".repeat(5000), ")".repeat(5000)));
    assert!(m.contains("nested too deeply"), "{m}");

    // A header length past the end of the entry.
    let mut raw = raw_npy("(4, 3)", &data);
    raw[8..10].copy_from_slice(&u16::MAX.to_le_bytes());
    write_npz_with_raw_w0(&path, &raw);
    let r = load(&path);
    assert!(
        matches!(&r, Err(FieldError::Malformed(m)) if m.contains("header claims 65535 bytes")),
        "{r:?}"
    );

    // W0 with the right rows but a wider claimed width: refused because the data is not
    // there (checked against the entry's size before reading).
    let wide = raw_npy("(4, 1001)", &data);
    write_npz_with_raw_w0(&path, &wide);
    let r = Mlp::<f64>::from_npz(&path, &[4, 3], Activation::Elu);
    assert!(
        matches!(&r, Err(FieldError::Malformed(m)) if m.contains("needs more data than the archive holds")),
        "{r:?}"
    );
}
