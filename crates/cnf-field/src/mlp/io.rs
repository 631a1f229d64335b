//! Weights in and out: safetensors (+ JSON config) and PyTorch/JAX `.npz` in torch layout.

use super::{Activation, Mlp, MlpConfig};
use crate::error::{check_finite, FieldError};
use crate::real::{cast, Real};
use npyz::npz::NpzArchive;
use npyz::{DType, NpyFile, Order, TypeChar};
use safetensors::tensor::{Dtype, SafeTensors, View};
use std::borrow::Cow;
use std::io::{Read, Seek};
use std::path::Path;

/// File name of the weights inside a saved model directory.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// File name of the configuration inside a saved model directory.
pub const CONFIG_FILE: &str = "config.json";

/// One tensor to serialise.
struct Blob {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl View for &Blob {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

/// A tensor read from a file: shape and values widened to f64 (exact for f32 and f64).
type Loaded = (Vec<usize>, Vec<f64>);

/// Builds an MLP for `config`, asking `fetch` for every tensor of
/// [`MlpConfig::tensor_specs`] and checking presence, shape and finiteness.
///
/// `fetch` gets the expected shape too, so that it can refuse a tensor before reading its
/// data. Nothing is allocated from the configuration's sizes (which may be absurd): the
/// parameters grow as tensors of the expected shapes arrive.
fn assemble<T: Real>(
    config: MlpConfig,
    mut fetch: impl FnMut(&str, &[usize]) -> Result<Option<Loaded>, FieldError>,
) -> Result<Mlp<T>, FieldError> {
    config.validate()?;
    let mut params = Vec::new();
    for (name, shape) in config.tensor_specs() {
        let (found, values) =
            fetch(&name, &shape)?.ok_or_else(|| FieldError::MissingTensor(name.clone()))?;
        if found != shape {
            return Err(FieldError::Shape {
                what: name,
                expected: shape,
                found,
            });
        }
        check_finite(&name, &values)?;
        params.extend(values.iter().map(|&x| cast::<T>(x)));
    }
    // from_params re-checks finiteness, which catches f64 values overflowing f32.
    Mlp::from_params(config, params)
}

fn malformed(e: impl std::fmt::Display) -> FieldError {
    FieldError::Malformed(e.to_string())
}

impl<T: Real> Mlp<T> {
    /// The configuration as JSON.
    ///
    /// # Errors
    /// [`FieldError::Json`] if serialisation fails (it does not for a valid configuration).
    pub fn config_json(&self) -> Result<String, FieldError> {
        Ok(serde_json::to_string_pretty(&self.config)?)
    }

    /// The weights as a safetensors document (tensors `W0, b0, ...` in the native precision;
    /// the JSON config is also stored in the metadata under `"config"`).
    ///
    /// # Errors
    /// [`FieldError::Json`] if the configuration cannot be serialised and
    /// [`FieldError::Malformed`] if the safetensors writer refuses the tensors (neither happens
    /// for a network built by this crate).
    pub fn to_safetensors_bytes(&self) -> Result<Vec<u8>, FieldError> {
        let dtype = if T::NAME == "f32" {
            Dtype::F32
        } else {
            Dtype::F64
        };
        let blobs: Vec<(String, Blob)> = self
            .named_params()
            .into_iter()
            .map(|(name, shape, values)| {
                let mut bytes = Vec::with_capacity(std::mem::size_of_val(values));
                for &x in values {
                    x.extend_le_bytes(&mut bytes);
                }
                (
                    name,
                    Blob {
                        dtype,
                        shape,
                        bytes,
                    },
                )
            })
            .collect();
        let metadata = [("config".to_string(), serde_json::to_string(&self.config)?)].into();
        safetensors::serialize(blobs.iter().map(|(n, b)| (n.as_str(), b)), Some(metadata))
            .map_err(malformed)
    }

    /// Reads weights written by [`Mlp::to_safetensors_bytes`] (or any safetensors file with
    /// the f32 / f64 tensors of [`MlpConfig::tensor_specs`]) for the architecture `config`.
    ///
    /// ```
    /// use cnf_field::{Activation, Mlp, MlpConfig, VectorField};
    ///
    /// let config = MlpConfig::new(2, &[8], Activation::Softplus);
    /// let mlp = Mlp::<f32>::new(config.clone(), 3)?;
    /// let bytes = mlp.to_safetensors_bytes()?;
    /// // Round trip, and widened to f64 without loss (f32 -> f64 is exact).
    /// assert_eq!(Mlp::<f32>::from_safetensors_bytes(&bytes, config.clone())?, mlp);
    /// let wide = Mlp::<f64>::from_safetensors_bytes(&bytes, config)?;
    /// assert!(wide.params().iter().zip(mlp.params()).all(|(&a, &b)| a == f64::from(b)));
    /// # Ok::<(), cnf_field::FieldError>(())
    /// ```
    ///
    /// # Errors
    /// [`FieldError::Malformed`] if `bytes` is not a safetensors document;
    /// [`FieldError::InvalidConfig`] if `config` does not validate;
    /// [`FieldError::MissingTensor`] for a tensor of the architecture absent from the file;
    /// [`FieldError::UnsupportedDtype`] for a tensor that is not f32 / f64;
    /// [`FieldError::Shape`] for a tensor of the wrong shape; [`FieldError::NonFinite`] for a
    /// NaN or infinite weight (including f64 values beyond the range of f32 when `T = f32`).
    pub fn from_safetensors_bytes(bytes: &[u8], config: MlpConfig) -> Result<Self, FieldError> {
        let st = SafeTensors::deserialize(bytes).map_err(malformed)?;
        assemble(config, |name, _| {
            let Ok(view) = st.tensor(name) else {
                return Ok(None);
            };
            let data = view.data();
            let values: Vec<f64> = match view.dtype() {
                Dtype::F32 => data
                    .chunks_exact(4)
                    .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                    .collect(),
                Dtype::F64 => data
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                    .collect(),
                other => {
                    return Err(FieldError::UnsupportedDtype {
                        tensor: name.to_string(),
                        dtype: format!("{other:?}"),
                    })
                }
            };
            Ok(Some((view.shape().to_vec(), values)))
        })
    }

    /// Writes `dir/config.json` and `dir/model.safetensors` (creating `dir`). Not atomic; use
    /// [`Mlp::to_safetensors_bytes`] and [`Mlp::config_json`] to write atomically.
    ///
    /// ```
    /// use cnf_field::{Activation, Mlp, MlpConfig};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let mlp = Mlp::<f64>::new(MlpConfig::new(3, &[4, 4], Activation::Tanh), 7)?;
    /// mlp.save(dir.path())?;
    /// assert_eq!(Mlp::<f64>::load(dir.path())?, mlp); // the weights bit for bit
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`FieldError::Io`] if the folder cannot be created or a file cannot be written;
    /// [`FieldError::Json`] / [`FieldError::Malformed`] as [`Mlp::to_safetensors_bytes`].
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<(), FieldError> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join(CONFIG_FILE), self.config_json()?)?;
        std::fs::write(dir.join(WEIGHTS_FILE), self.to_safetensors_bytes()?)?;
        Ok(())
    }

    /// Reads a directory written by [`Mlp::save`].
    ///
    /// # Errors
    /// [`FieldError::Io`] if `config.json` or `model.safetensors` cannot be read;
    /// [`FieldError::Json`] if `config.json` is not a configuration; otherwise as
    /// [`Mlp::from_safetensors_bytes`].
    pub fn load(dir: impl AsRef<Path>) -> Result<Self, FieldError> {
        let dir = dir.as_ref();
        let config: MlpConfig =
            serde_json::from_str(&std::fs::read_to_string(dir.join(CONFIG_FILE))?)?;
        Self::from_safetensors_bytes(&std::fs::read(dir.join(WEIGHTS_FILE))?, config)
    }

    /// Imports PyTorch / JAX weights from an `.npz` in torch layout: `W_i (out, in)`, `b_i (out)`
    /// for `i = 0..=hidden.len()`, f32 or f64. The state dimension is inferred from `W0`,
    /// which must be `(hidden[0], d + 1)` (input `[z, t]`); every shape is checked and
    /// non-finite weights are rejected. Every array of the file must be one of those:
    /// extra arrays (say `W4` when `hidden` has three widths) are a
    /// [`FieldError::UnusedTensors`] error, not silently dropped. Each array's header is
    /// checked against the archive before anything is allocated from it.
    ///
    /// # Errors
    /// [`FieldError::Io`] if the file does not exist; [`FieldError::Malformed`] if it is not a
    /// readable `.npz` or an array's header or data is damaged; [`FieldError::MissingTensor`]
    /// for a missing `W_i` / `b_i`; [`FieldError::Shape`] if `W0` is not `(width, d + 1)` or
    /// another array has the wrong shape; [`FieldError::InvalidConfig`] if `hidden` does not
    /// validate; [`FieldError::UnusedTensors`] for arrays the architecture does not use;
    /// [`FieldError::UnsupportedDtype`] for arrays other than f32 / f64;
    /// [`FieldError::NonFinite`] for a NaN or infinite weight.
    pub fn from_npz(
        path: impl AsRef<Path>,
        hidden: &[usize],
        activation: Activation,
    ) -> Result<Self, FieldError> {
        let mut archive = NpzArchive::open(path.as_ref()).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                FieldError::Io(e)
            } else {
                malformed(format!("{}: {e}", path.as_ref().display()))
            }
        })?;
        let w0_shape = match open_npz_array(&mut archive, "W0")? {
            Some((npy, _)) => npy_shape(&npy, "W0")?,
            None => return Err(FieldError::MissingTensor("W0".into())),
        };
        let dim = match w0_shape.as_slice() {
            [_, cols] if *cols >= 2 => cols - 1,
            _ => {
                return Err(FieldError::Shape {
                    what: "W0 (width, d + 1)".into(),
                    expected: vec![hidden.first().copied().unwrap_or(0), 3],
                    found: w0_shape,
                })
            }
        };
        let config = MlpConfig::new(dim, hidden, activation);
        config.validate()?;
        let specs = config.tensor_specs();
        let mut unused: Vec<String> = archive
            .array_names()
            .filter(|n| !specs.iter().any(|(name, _)| name == n))
            .map(str::to_string)
            .collect();
        if !unused.is_empty() {
            unused.sort();
            return Err(FieldError::UnusedTensors {
                unused,
                expected: specs.len(),
            });
        }
        assemble(config, |name, expected| {
            read_npz_tensor(&mut archive, name, expected)
        })
    }
}

/// Opens array `name` of the archive, checking its `.npy` header before the `npyz` parser sees
/// it (see [`crate::npy_header::read_checked`]). Returns the reader and the number of data bytes the
/// archive says follow the header.
fn open_npz_array<'a, R: Read + Seek>(
    archive: &'a mut NpzArchive<R>,
    name: &str,
) -> Result<Option<(NpyFile<impl Read + 'a>, u64)>, FieldError> {
    if !archive.array_names().any(|n| n == name) {
        return Ok(None);
    }
    let bad = |e: &dyn std::fmt::Display| malformed(format!("array {name}: {e}"));
    let mut entry = archive
        .zip_archive()
        .by_name(&npyz::npz::file_name_from_array_name(name))
        .map_err(|e| bad(&e))?;
    let size = entry.size();
    let header = crate::npy_header::read_checked(&mut entry, size).map_err(|e| bad(&e))?;
    let data_len = size - header.len() as u64;
    let npy = NpyFile::new(std::io::Cursor::new(header).chain(entry)).map_err(|e| bad(&e))?;
    Ok(Some((npy, data_len)))
}

/// The shape of an array as `usize`s.
fn npy_shape<R: Read>(npy: &NpyFile<R>, name: &str) -> Result<Vec<usize>, FieldError> {
    npy.shape()
        .iter()
        .map(|&n| usize::try_from(n))
        .collect::<Result<_, _>>()
        .map_err(|_| {
            malformed(format!(
                "array {name}: shape {:?} is too large",
                npy.shape()
            ))
        })
}

/// Reads one array of an npz archive (f32 or f64, C or Fortran order) into row-major f64,
/// refusing it before reading its data if its shape is not `expected` or its data cannot
/// fit in the archive entry.
fn read_npz_tensor<R: Read + Seek>(
    archive: &mut NpzArchive<R>,
    name: &str,
    expected: &[usize],
) -> Result<Option<Loaded>, FieldError> {
    let Some((npy, data_len)) = open_npz_array(archive, name)? else {
        return Ok(None);
    };
    let shape = npy_shape(&npy, name)?;
    if shape != expected {
        return Err(FieldError::Shape {
            what: name.to_string(),
            expected: expected.to_vec(),
            found: shape,
        });
    }
    let fortran = npy.order() == Order::Fortran;
    // The header check makes the element count fit in u64; the bytes must fit in the entry.
    let count: u64 = npy.shape().iter().product();
    let item_size = match npy.dtype() {
        DType::Plain(ts) => ts.num_bytes().unwrap_or(usize::MAX) as u64,
        _ => 1,
    };
    let fits = matches!(count.checked_mul(item_size), Some(b) if b <= data_len);
    if !fits {
        return Err(malformed(format!(
            "array {name}: shape {shape:?} needs more data than the archive holds ({data_len} bytes)"
        )));
    }
    let values = read_npy_floats(npy, name)?;
    if values.len() as u64 != count {
        return Err(malformed(format!(
            "{name}: {} values for shape {shape:?}",
            values.len()
        )));
    }
    let values = if fortran && shape.len() == 2 {
        let (rows, cols) = (shape[0], shape[1]);
        (0..rows * cols)
            .map(|k| values[(k % cols) * rows + k / cols])
            .collect()
    } else {
        values
    };
    Ok(Some((shape, values)))
}

fn read_npy_floats<R: Read>(npy: NpyFile<R>, name: &str) -> Result<Vec<f64>, FieldError> {
    let dtype = npy.dtype();
    let unsupported = || FieldError::UnsupportedDtype {
        tensor: name.to_string(),
        dtype: dtype.descr(),
    };
    let DType::Plain(ts) = &dtype else {
        return Err(unsupported());
    };
    match (ts.type_char(), ts.size_field()) {
        (TypeChar::Float, 4) => Ok(npy
            .into_vec::<f32>()
            .map_err(malformed)?
            .into_iter()
            .map(f64::from)
            .collect()),
        (TypeChar::Float, 8) => npy.into_vec::<f64>().map_err(malformed),
        _ => Err(unsupported()),
    }
}
