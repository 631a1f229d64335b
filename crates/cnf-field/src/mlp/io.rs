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
fn assemble<T: Real>(
    config: MlpConfig,
    mut fetch: impl FnMut(&str) -> Result<Option<Loaded>, FieldError>,
) -> Result<Mlp<T>, FieldError> {
    config.validate()?;
    let mut params = Vec::with_capacity(config.num_params());
    for (name, shape) in config.tensor_specs() {
        let (found, values) =
            fetch(&name)?.ok_or_else(|| FieldError::MissingTensor(name.clone()))?;
        if found != shape {
            return Err(FieldError::Shape {
                what: name,
                expected: shape,
                found,
            });
        }
        check_finite(&name, &values)?;
        params.extend(values.iter().map(|&x| cast::<T, f64>(x)));
    }
    // from_params re-checks finiteness, which catches f64 values overflowing f32.
    Mlp::from_params(config, params)
}

fn malformed(e: impl std::fmt::Display) -> FieldError {
    FieldError::Malformed(e.to_string())
}

impl<T: Real> Mlp<T> {
    /// The configuration as JSON.
    pub fn config_json(&self) -> Result<String, FieldError> {
        Ok(serde_json::to_string_pretty(&self.config)?)
    }

    /// The weights as a safetensors document (tensors `W0, b0, ...` in the native precision;
    /// the JSON config is also stored in the metadata under `"config"`).
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
    pub fn from_safetensors_bytes(bytes: &[u8], config: MlpConfig) -> Result<Self, FieldError> {
        let st = SafeTensors::deserialize(bytes).map_err(malformed)?;
        assemble(config, |name| {
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
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<(), FieldError> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join(CONFIG_FILE), self.config_json()?)?;
        std::fs::write(dir.join(WEIGHTS_FILE), self.to_safetensors_bytes()?)?;
        Ok(())
    }

    /// Reads a directory written by [`Mlp::save`].
    pub fn load(dir: impl AsRef<Path>) -> Result<Self, FieldError> {
        let dir = dir.as_ref();
        let config: MlpConfig =
            serde_json::from_str(&std::fs::read_to_string(dir.join(CONFIG_FILE))?)?;
        Self::from_safetensors_bytes(&std::fs::read(dir.join(WEIGHTS_FILE))?, config)
    }

    /// Imports PyTorch / JAX weights from an `.npz` in torch layout: `W_i (out, in)`, `b_i (out)`
    /// for `i = 0..=hidden.len()`, f32 or f64. The state dimension is inferred from `W0`,
    /// which must be `(hidden[0], d + 1)` (input `[z, t]`); every shape is checked and
    /// non-finite weights are rejected.
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
        let (w0_shape, _) = read_npz_tensor(&mut archive, "W0")?
            .ok_or_else(|| FieldError::MissingTensor("W0".into()))?;
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
        assemble(config, |name| read_npz_tensor(&mut archive, name))
    }
}

/// Reads one array of an npz archive (f32 or f64, C or Fortran order) into row-major f64.
fn read_npz_tensor<R: Read + Seek>(
    archive: &mut NpzArchive<R>,
    name: &str,
) -> Result<Option<Loaded>, FieldError> {
    let Some(npy) = archive.by_name(name).map_err(malformed)? else {
        return Ok(None);
    };
    let shape: Vec<usize> = npy.shape().iter().map(|&n| n as usize).collect();
    let fortran = npy.order() == Order::Fortran;
    let values = read_npy_floats(npy, name)?;
    let expected: usize = shape.iter().product();
    if values.len() != expected {
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
