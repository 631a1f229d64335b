//! The fixed splits and seeds of training runs, so that every model of a data set is validated
//! and tested on the same points, and the table readers by file extension.
use std::path::Path;

use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::data::{read_csv, read_npy, ColumnSelection, Table, ToySet};
use crate::error::TrainError;

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

/// Reads a CSV or .npy table.
pub fn read_table(path: &Path, selection: &ColumnSelection) -> Result<Table, TrainError> {
    let is_npy = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npy"));
    Ok(if is_npy {
        read_npy(path)?
    } else {
        read_csv(path, selection)?
    })
}
