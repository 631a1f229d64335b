//! Reading `.npy` arrays (f32 or f64; 2-D, or 1-D as a single column).

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use npyz::{DType, NpyFile, Order, TypeChar};

use crate::data::table::{default_names, Table};
use crate::error::DataError;

/// Reads a 2-D (or 1-D, as one column) float32/float64 `.npy` file.
///
/// The header is checked before anything is allocated from it: its length and the data size
/// its shape and dtype claim must fit in the file, and the shape's product must not overflow.
///
/// # Errors
/// [`DataError::Io`] if the file cannot be opened or read; [`DataError::Npy`] for a
/// malformed or truncated file, an array that is not 1-D or 2-D float32 / float64, or a NaN or
/// infinite value (naming its row and column); [`DataError::NoRows`] for a zero-sized array.
pub fn read_npy(path: impl AsRef<Path>) -> Result<Table, DataError> {
    let path = path.as_ref();
    let npy_error = |message: String| DataError::Npy {
        path: path.to_path_buf(),
        message,
    };
    let io_error = |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io_error)?;
    let file_len = file.metadata().map_err(io_error)?.len();
    let mut reader = BufReader::new(file);
    let header = cnf_field::npy_header::read_checked(&mut reader, file_len).map_err(npy_error)?;
    let npy =
        NpyFile::new(header.as_slice().chain(reader)).map_err(|e| npy_error(e.to_string()))?;
    let (n_rows, n_cols) = match *npy.shape() {
        [n] => (n, 1),
        [n, m] => (n, m),
        ref other => {
            return Err(npy_error(format!(
                "expected a 1-D or 2-D array, got shape {other:?}"
            )))
        }
    };
    let item_size = match npy.dtype() {
        DType::Plain(t) if t.type_char() == TypeChar::Float && matches!(t.size_field(), 4 | 8) => {
            t.size_field()
        }
        other => {
            return Err(npy_error(format!(
                "unsupported dtype {}, expected float32 or float64",
                other.descr()
            )))
        }
    };
    // The header check guarantees the product fits in u64; the data must also fit in the file.
    let data_len = file_len - header.len() as u64;
    let needed = n_rows
        .checked_mul(n_cols)
        .and_then(|n| n.checked_mul(item_size));
    match needed {
        Some(bytes) if bytes <= data_len => {}
        _ => {
            return Err(npy_error(format!(
                "the header's shape {:?} needs {} bytes of data, but the file holds {data_len}",
                npy.shape(),
                needed.map_or_else(|| "more than 2^64".to_string(), |b| b.to_string()),
            )))
        }
    }
    // Both fit in usize now: their product is at most the file length.
    let (n_rows, n_cols) = (n_rows as usize, n_cols as usize);
    if n_rows == 0 || n_cols == 0 {
        return Err(DataError::NoRows {
            path: path.to_path_buf(),
        });
    }
    let fortran = npy.order() == Order::Fortran;
    let values: Vec<f64> = if item_size == 8 {
        npy.into_vec::<f64>()
    } else {
        npy.into_vec::<f32>()
            .map(|v| v.into_iter().map(f64::from).collect())
    }
    .map_err(|e| npy_error(e.to_string()))?;
    if values.len() != n_rows * n_cols {
        return Err(npy_error(format!(
            "{} values for shape {:?}",
            values.len(),
            [n_rows, n_cols]
        )));
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
pub(crate) mod tests {
    use super::*;
    use npyz::WriterBuilder;

    /// Writes `values` as a .npy array of `shape`.
    pub(crate) fn write_npy<T: npyz::Serialize + npyz::AutoSerialize + Copy>(
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

    /// A version-1 `.npy` file written by hand, so that its header can say anything.
    fn npy_bytes(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
        let mut header =
            format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
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

    fn read_bytes(bytes: &[u8]) -> Result<Table, DataError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("h.npy");
        std::fs::write(&p, bytes).unwrap();
        read_npy(&p)
    }

    fn npy_message(result: Result<Table, DataError>) -> String {
        match result {
            Err(DataError::Npy { message, .. }) => message,
            other => panic!("expected an Npy error, got {other:?}"),
        }
    }

    #[test]
    fn hand_written_header_reads_like_numpy_output() {
        let data: Vec<u8> = [1.0f64, 2.0, 3.0, 4.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let t = read_bytes(&npy_bytes("<f8", "(2, 2)", &data)).unwrap();
        assert_eq!((t.n_rows(), t.n_cols()), (2, 2));
        assert_eq!(t.data(), [1.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    fn headers_that_lie_about_sizes_are_typed_errors() {
        let data = [0u8; 32];
        // 2^62 x 4: the element count overflows 64 bits (it used to panic "capacity overflow").
        let m = npy_message(read_bytes(&npy_bytes(
            "<f8",
            "(4611686018427387904, 4)",
            &data,
        )));
        assert!(m.contains("more elements than fit in 64 bits"), "{m}");
        // (2^62 + 1) x 4 wraps to 4 elements: it used to read as a 2^62-row table.
        let m = npy_message(read_bytes(&npy_bytes(
            "<f8",
            "(4611686018427387905, 4)",
            &data,
        )));
        assert!(m.contains("more elements"), "{m}");
        // 2^61 x 2 elements fit, their bytes do not.
        let m = npy_message(read_bytes(&npy_bytes(
            "<f8",
            "(2305843009213693952, 2)",
            &data,
        )));
        assert!(m.contains("needs more than 2^64 bytes"), "{m}");
        // A plausible shape with more data than the file holds is refused before reading.
        let m = npy_message(read_bytes(&npy_bytes("<f4", "(1000000, 3)", &data)));
        assert!(
            m.contains("needs 12000000 bytes of data, but the file holds 32"),
            "{m}"
        );
        // A header length past the end of the file.
        let mut bytes = npy_bytes("<f8", "(2, 2)", &data);
        bytes[8..10].copy_from_slice(&u16::MAX.to_le_bytes());
        let m = npy_message(read_bytes(&bytes));
        assert!(m.contains("the header claims 65535 bytes"), "{m}");
        // Deep nesting (the header parser recurses).
        let deep = format!("({}2{}", "(".repeat(5000), ")".repeat(5000));
        let m = npy_message(read_bytes(&npy_bytes("<f8", &deep, &data)));
        assert!(m.contains("nested too deeply"), "{m}");
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
