//! The fixed splits and seeds of training runs, so that every model of a data set is validated
//! and tested on the same points, and the table readers by file extension.
use std::path::Path;

use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::data::{read_csv, read_npy, ColumnSelection, HeaderMode, Table, ToySet};
use crate::error::{DataError, TrainError};

/// Split of table data into train / validation / test.
pub const SPLIT: [f64; 3] = [0.8, 0.1, 0.1];
/// Offset of the toy validation seed from the training seed.
const TOY_VAL_STREAM: u64 = 1_000_003;
/// Seed of the toy test sets: one fixed set for every model, so test NLLs compare.
pub const TOY_TEST_SEED: u64 = 2_000_003;

/// Toy validation sample (2000 points) of a training run with `seed`.
pub fn toy_validation(set: ToySet, seed: u64) -> Table {
    set.sample(
        2_000,
        &mut StdRng::seed_from_u64(seed.wrapping_add(TOY_VAL_STREAM)),
    )
}

/// The toy test set: 10 000 points from [`TOY_TEST_SEED`], whatever the training seed.
pub fn toy_test(set: ToySet) -> Table {
    set.sample(10_000, &mut StdRng::seed_from_u64(TOY_TEST_SEED))
}

/// Reads a CSV or .npy table. A `.npy` file has no header row: a header mode other than
/// `auto` is refused for it rather than ignored.
///
/// # Errors
/// [`TrainError::Data`] with [`DataError::Npy`] for a header mode other than `auto` on a
/// `.npy` file, otherwise the errors of [`read_npy`] (a `.npy` extension, any case) or
/// [`read_csv`].
pub fn read_table(path: &Path, selection: &ColumnSelection) -> Result<Table, TrainError> {
    let is_npy = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npy"));
    Ok(if is_npy {
        if selection.header != HeaderMode::Auto {
            return Err(DataError::Npy {
                path: path.to_path_buf(),
                message: format!(
                    "a .npy file has no header row; header mode {:?} applies to CSV files",
                    selection.header.as_str()
                ),
            }
            .into());
        }
        read_npy(path)?
    } else {
        read_csv(path, selection)?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `.npy` file has no header row: `--header yes|no` is refused for it, not ignored.
    #[test]
    fn a_header_mode_is_refused_for_npy() {
        let selection = ColumnSelection {
            header: HeaderMode::Yes,
            ..ColumnSelection::default()
        };
        let err = read_table(Path::new("x.npy"), &selection).unwrap_err();
        assert_eq!(
            err.to_string(),
            "x.npy: a .npy file has no header row; header mode \"yes\" applies to CSV files"
        );
    }
}
