//! Reading `.npy` arrays (f32 or f64; 2-D, or 1-D as a single column).

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use npyz::{DType, NpyFile, Order, TypeChar};

use crate::data::table::{default_names, Table};
use crate::error::DataError;

/// Reads a 2-D (or 1-D, as one column) float32/float64 `.npy` file.
pub fn read_npy(path: impl AsRef<Path>) -> Result<Table, DataError> {
    let path = path.as_ref();
    let npy_error = |message: String| DataError::Npy {
        path: path.to_path_buf(),
        message,
    };
    let file = File::open(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let npy = NpyFile::new(BufReader::new(file)).map_err(|e| npy_error(e.to_string()))?;
    let (n_rows, n_cols) = match *npy.shape() {
        [n] => (n as usize, 1),
        [n, m] => (n as usize, m as usize),
        ref other => {
            return Err(npy_error(format!(
                "expected a 1-D or 2-D array, got shape {other:?}"
            )))
        }
    };
    let fortran = npy.order() == Order::Fortran;
    let values: Vec<f64> = match npy.dtype() {
        DType::Plain(t) if t.type_char() == TypeChar::Float && t.size_field() == 8 => {
            npy.into_vec::<f64>()
        }
        DType::Plain(t) if t.type_char() == TypeChar::Float && t.size_field() == 4 => npy
            .into_vec::<f32>()
            .map(|v| v.into_iter().map(f64::from).collect()),
        other => {
            return Err(npy_error(format!(
                "unsupported dtype {}, expected float32 or float64",
                other.descr()
            )))
        }
    }
    .map_err(|e| npy_error(e.to_string()))?;
    if n_rows == 0 || n_cols == 0 {
        return Err(DataError::NoRows {
            path: path.to_path_buf(),
        });
    }
    // Fortran order stores column by column; the table is row-major.
    let data = if fortran {
        (0..n_rows * n_cols)
            .map(|k| values[(k % n_cols) * n_rows + k / n_cols])
            .collect()
    } else {
        values
    };
    if let Some(k) = data.iter().position(|v: &f64| !v.is_finite()) {
        return Err(npy_error(format!(
            "row {}, column {}: value {} is not finite",
            k / n_cols,
            k % n_cols,
            data[k]
        )));
    }
    Table::new(n_rows, n_cols, data, default_names(n_cols))
}

#[cfg(test)]
mod tests {
    use super::*;
    use npyz::WriterBuilder;

    fn write_npy<T: npyz::Serialize + npyz::AutoSerialize + Copy>(
        path: &Path,
        shape: &[u64],
        values: &[T],
    ) {
        let mut file = File::create(path).unwrap();
        let mut writer = npyz::WriteOptions::new()
            .default_dtype()
            .shape(shape)
            .writer(&mut file)
            .begin_nd()
            .unwrap();
        writer.extend(values.iter().copied()).unwrap();
        writer.finish().unwrap();
    }

    #[test]
    fn reads_f64_matrix_f32_matrix_and_f64_vector() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.npy");
        write_npy(&p, &[2, 3], &[1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let t = read_npy(&p).unwrap();
        assert_eq!((t.n_rows(), t.n_cols()), (2, 3));
        assert_eq!(t.row(1), Some(&[4.0, 5.0, 6.0][..]));

        write_npy(&p, &[3, 1], &[0.5f32, -1.5, 2.25]);
        assert_eq!(read_npy(&p).unwrap().data(), [0.5, -1.5, 2.25]);

        write_npy(&p, &[4], &[1.0f64, 2.0, 3.0, 4.0]);
        let t = read_npy(&p).unwrap();
        assert_eq!((t.n_rows(), t.n_cols()), (4, 1));
    }

    #[test]
    fn rejects_nan_integers_3d_and_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("b.npy");
        write_npy(&p, &[2, 1], &[1.0f64, f64::NAN]);
        let err = read_npy(&p).unwrap_err().to_string();
        assert!(err.contains("row 1, column 0"), "{err}");

        write_npy(&p, &[2], &[1i64, 2]);
        assert!(read_npy(&p)
            .unwrap_err()
            .to_string()
            .contains("unsupported dtype"));

        write_npy(&p, &[1, 1, 2], &[1.0f64, 2.0]);
        assert!(read_npy(&p).unwrap_err().to_string().contains("shape"));

        std::fs::write(&p, b"not an npy file").unwrap();
        assert!(matches!(read_npy(&p), Err(DataError::Npy { .. })));

        write_npy::<f64>(&p, &[0, 2], &[]);
        assert!(matches!(read_npy(&p), Err(DataError::NoRows { .. })));
    }
}
