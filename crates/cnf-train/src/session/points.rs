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
    let columns = config.input_columns();
    let mut all = read_table(path, &ColumnSelection::default())?;
    if let Some(note) = all.header_note() {
        let first: Vec<&str> = note.first_row.iter().map(|f| f.trim()).collect();
        if columns.iter().all(|c| first.contains(&c.as_str())) {
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
    if columns.iter().all(|c| names.contains(c)) {
        let idx: Vec<usize> = columns
            .iter()
            .filter_map(|c| names.iter().position(|n| n == c))
            .collect();
        let data = all
            .rows()
            .flat_map(|r| idx.iter().map(move |&j| r[j]))
            .collect();
        return Ok(Table::new(all.n_rows(), idx.len(), data, columns)?);
    }
    let headerless = names == default_names(names.len()).as_slice();
    if headerless && all.n_cols() == columns.len() {
        return Ok(all);
    }
    if headerless {
        return Err(TrainError::Invalid(format!(
            "{}: {} columns without a header, the model expects {} ({})",
            path.display(),
            all.n_cols(),
            columns.len(),
            columns.join(", ")
        )));
    }
    Err(lacks_columns(config, path, names))
}

/// The error for a header (`names`) that lacks some of the model's columns.
fn lacks_columns(config: &ModelConfig, path: &Path, names: &[String]) -> TrainError {
    let columns = config.input_columns();
    let missing: Vec<&str> = columns
        .iter()
        .filter(|c| !names.contains(c))
        .map(String::as_str)
        .collect();
    let context = config.context.as_ref().map_or(String::new(), |c| {
        format!(" given {}", c.columns.join(", "))
    });
    TrainError::Invalid(format!(
        "{}: the header lacks the model's column(s) {} (the model was trained on {}{context})",
        path.display(),
        missing.join(", "),
        config.columns.join(", ")
    ))
}

impl Session {
    /// The model's columns of the file at `path` as numbers (a conditional model's modelled
    /// columns, then its context columns): by name when the header has them (other columns
    /// may hold anything, words too), else, without a header, all columns in order. Notes about the header go to `notes`, one line each.
    ///
    /// # Errors
    /// The file cannot be read, is damaged (a ragged row, a non-finite value), or lacks the
    /// model's columns.
    pub fn read_points(&self, path: &Path, notes: &mut Vec<String>) -> Result<Table, TrainError> {
        let config = &self.config;
        let columns = config.input_columns();
        if !is_npy(path) {
            let by_name = ColumnSelection {
                columns: Some(columns.clone()),
                ..Default::default()
            };
            match read_table(path, &by_name) {
                Ok(t) if t.names() == columns.as_slice() => {
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

impl Session {
    /// The context rows of the file at `path` for a conditional model: exactly the model's
    /// context columns, by name (in any order), or, without a header, that many columns in
    /// order. Notes about the header go to `notes`.
    ///
    /// # Errors
    /// The model is unconditional; the file cannot be read, is damaged (a non-finite value), has
    /// no rows, lacks a context column or has a column that is not one.
    pub fn read_context(&self, path: &Path, notes: &mut Vec<String>) -> Result<Table, TrainError> {
        let Some(context) = &self.config.context else {
            return Err(TrainError::Invalid(format!(
                "{}: the model in {} is unconditional (no context columns); leave out the \
                 given values",
                path.display(),
                self.dir().display()
            )));
        };
        let wanted = &context.columns;
        let all = read_table(path, &ColumnSelection::default())?;
        if let Some(note) = all.header_note() {
            notes.push(format!("note: {note}"));
        }
        if all.n_rows() == 0 {
            return Err(TrainError::Invalid(format!("{}: no rows", path.display())));
        }
        let names = all.names();
        let headerless = names == default_names(names.len()).as_slice();
        if headerless && all.n_cols() == wanted.len() {
            return Ok(Table::new(
                all.n_rows(),
                all.n_cols(),
                all.data().to_vec(),
                wanted.clone(),
            )?);
        }
        let missing: Vec<&str> = wanted
            .iter()
            .filter(|c| !names.contains(c))
            .map(String::as_str)
            .collect();
        let extra: Vec<&str> = names
            .iter()
            .filter(|n| !wanted.contains(n))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() || !extra.is_empty() {
            let mut why = Vec::new();
            if !missing.is_empty() {
                why.push(format!(
                    "lacks the context column(s) {}",
                    missing.join(", ")
                ));
            }
            if !extra.is_empty() {
                why.push(format!(
                    "has column(s) {} that are not context columns",
                    extra.join(", ")
                ));
            }
            return Err(TrainError::Invalid(format!(
                "{}: {} (the model is conditioned on {})",
                path.display(),
                why.join(" and "),
                wanted.join(", ")
            )));
        }
        let by_name = ColumnSelection {
            columns: Some(wanted.clone()),
            ..Default::default()
        };
        read_table(path, &by_name)
    }
}
