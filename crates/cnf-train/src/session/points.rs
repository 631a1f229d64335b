//! Reading points in a model's columns from a CSV or .npy file.
use std::path::Path;

use super::Session;
use crate::data::table::default_names;
use crate::data::{read_table, ColumnSelection, HeaderMode, Table};
use crate::error::{DataError, TrainError};
use crate::model::ModelConfig;

/// Whether `path` names a .npy file.
pub fn is_npy(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npy"))
}

/// Reads the points of `path` in the model's columns. With a header that names every column the
/// model was trained on, columns are matched by name (in any order; other columns are ignored);
/// otherwise the file must have exactly the model's number of columns, taken in order. A note
/// about the header goes to `notes`.
pub(super) fn read_points(
    config: &ModelConfig,
    path: &Path,
    notes: &mut Vec<String>,
) -> Result<Table, TrainError> {
    let mut all = read_table(path, &ColumnSelection::default())?;
    if let Some(note) = all.header_note() {
        let first: Vec<&str> = note.first_row.iter().map(|f| f.trim()).collect();
        if config.columns.iter().all(|c| first.contains(&c.as_str())) {
            // A numeric first row that names the model's columns (a model trained with
            // `--header yes` on `400,500`): it is the header.
            all = read_table(
                path,
                &ColumnSelection {
                    header: HeaderMode::Yes,
                    ..Default::default()
                },
            )?;
        } else {
            notes.push(format!("note: {note}"));
        }
    }
    let names = all.names();
    if config.columns.iter().all(|c| names.contains(c)) {
        let idx: Vec<usize> = config
            .columns
            .iter()
            .filter_map(|c| names.iter().position(|n| n == c))
            .collect();
        let data = all
            .rows()
            .flat_map(|r| idx.iter().map(move |&j| r[j]))
            .collect();
        return Ok(Table::new(
            all.n_rows(),
            idx.len(),
            data,
            config.columns.clone(),
        )?);
    }
    let headerless = names == default_names(names.len()).as_slice();
    if headerless && all.n_cols() == config.mlp.dim {
        return Ok(all);
    }
    if headerless {
        return Err(TrainError::Invalid(format!(
            "{}: {} columns without a header, the model expects {} ({})",
            path.display(),
            all.n_cols(),
            config.mlp.dim,
            config.columns.join(", ")
        )));
    }
    Err(lacks_columns(config, path, names))
}

/// The error for a header (`names`) that lacks some of the model's columns.
fn lacks_columns(config: &ModelConfig, path: &Path, names: &[String]) -> TrainError {
    let missing: Vec<&str> = config
        .columns
        .iter()
        .filter(|c| !names.contains(c))
        .map(String::as_str)
        .collect();
    TrainError::Invalid(format!(
        "{}: the header lacks the model's column(s) {} (the model was trained on {})",
        path.display(),
        missing.join(", "),
        config.columns.join(", ")
    ))
}

impl Session {
    /// The model's columns of the file at `path` as numbers: by name when the header has them
    /// (other columns may hold anything, words too), else, without a header, all columns in
    /// order. Notes about the header go to `notes`, one line each.
    ///
    /// # Errors
    /// The file cannot be read, is damaged (a ragged row, a non-finite value), or lacks the
    /// model's columns.
    pub fn read_points(&self, path: &Path, notes: &mut Vec<String>) -> Result<Table, TrainError> {
        let config = &self.config;
        if !is_npy(path) {
            let by_name = ColumnSelection {
                columns: Some(config.columns.clone()),
                ..Default::default()
            };
            match read_table(path, &by_name) {
                Ok(t) if t.names() == config.columns.as_slice() => {
                    if let Some(note) = t.header_note() {
                        notes.push(format!("note: {note}"));
                    }
                    return Ok(t);
                }
                // Selected by index (a header of numbers): decide as without a header.
                Ok(_) => {}
                Err(TrainError::Data(DataError::UnknownColumn { available, .. }))
                    if available != default_names(available.len()) =>
                {
                    // A damaged file is reported as such first (a ragged row, a non-finite
                    // value), as by `read_points`; a word in another column is no damage.
                    match read_points(config, path, notes) {
                        Err(TrainError::Data(DataError::NotNumeric { .. })) => {}
                        other => return other,
                    }
                    return Err(lacks_columns(config, path, &available));
                }
                Err(TrainError::Data(DataError::UnknownColumn { .. })) => {}
                Err(e) => return Err(e),
            }
        }
        read_points(config, path, notes)
    }
}
