//! Data: the in-memory [`Table`], CSV and `.npy` input/output, toy sets and
//! standardisation.

pub mod context;
mod csv;
mod npy;
mod protocol;
pub mod standardize;
pub mod table;
pub mod toy;

pub use context::ContextColumns;
pub use csv::{read_csv, write_csv, write_csv_to, ColumnSelection, HeaderMode};
pub use npy::read_npy;
pub use protocol::{read_table, toy_test, toy_validation, CONDITIONAL_SPLIT, SPLIT, TOY_TEST_SEED};
pub use standardize::{dequantize, integer_columns, Standardizer};
pub use table::{HeaderNote, Table};
pub use toy::ToySet;
