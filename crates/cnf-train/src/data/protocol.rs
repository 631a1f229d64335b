//! The fixed splits and seeds of training runs, so that every model of a data set is validated
//! and tested on the same points, and the table readers by file extension.
use std::path::Path;

use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::data::{read_csv, read_npy, ColumnSelection, HeaderMode, Table, ToySet};
use crate::error::{DataError, TrainError};

/// Split of table data into train / validation / test.
pub const SPLIT: [f64; 3] = [0.8, 0.1, 0.1];
/// Split of a conditional run's table (simulations): more of it to train on, as sbi's 10%
/// validation does; SLCP overfits 8000 training pairs (docs/sbi.md).
pub const CONDITIONAL_SPLIT: [f64; 3] = [0.9, 0.05, 0.05];
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

/// Reads a CSV or .npy table. A `.npy` file has no header row: its columns are named x0, x1,
/// ... (what `columns` and `drop` select by), and a header mode other than `auto` is refused
/// for it rather than ignored.
///
/// # Errors
/// [`TrainError::Data`] with [`DataError::Npy`] for a header mode other than `auto` on a
/// `.npy` file or a selection naming a column it does not have, otherwise the errors of
/// [`read_npy`] (a `.npy` extension, any case) or [`read_csv`].
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
        let table = read_npy(path)?;
        // The columns of a .npy file are named by `default_names` (x0, x1, ...): the
        // selection applies to those names as it does to a CSV header.
        let kept = selection.resolve(table.names(), path)?;
        if kept.iter().copied().eq(0..table.n_cols()) {
            table
        } else {
            let data = table
                .rows()
                .flat_map(|row| kept.iter().map(move |&j| row[j]))
                .collect();
            let names = kept.iter().map(|&j| table.names()[j].clone()).collect();
            Table::new(table.n_rows(), kept.len(), data, names)?
        }
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

    /// `columns` and `drop` select the columns of a .npy file by their names x0, x1, ...; an
    /// unknown name is refused.
    #[test]
    fn a_selection_applies_to_npy_columns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.npy");
        let values = [1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0];
        crate::data::npy::tests::write_npy(&path, &[2, 3], &values);
        let pick = |columns: Option<&[&str]>, drop: &[&str]| {
            read_table(
                &path,
                &ColumnSelection {
                    columns: columns.map(|c| c.iter().map(|s| s.to_string()).collect()),
                    drop: drop.iter().map(|s| s.to_string()).collect(),
                    ..ColumnSelection::default()
                },
            )
        };
        let all = pick(None, &[]).unwrap();
        assert_eq!(all.data(), values);
        let x2x0 = pick(Some(&["x2", "x0"]), &[]).unwrap();
        assert_eq!(x2x0.names(), ["x2", "x0"]);
        assert_eq!(x2x0.data(), [3.0, 1.0, 6.0, 4.0]);
        let no_x1 = pick(None, &["x1"]).unwrap();
        assert_eq!(no_x1.data(), [1.0, 3.0, 4.0, 6.0]);
        assert!(pick(Some(&["x7"]), &[]).is_err());
        assert!(pick(None, &["id"]).is_err());
    }
}
