//! A small CSV reader and writer for numeric tables: comma-separated,
//! spaces trimmed, double-quoted fields allowed (with `""` for a quote).
//! The first non-blank row is a header when any of its fields is not a number.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::data::table::{default_names, Table};
use crate::error::DataError;

/// Which columns to keep: `columns` (in that order) or all, minus `drop`.
/// Each entry is a header name or, failing that, a 0-based index such as `"2"`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColumnSelection {
    pub columns: Option<Vec<String>>,
    pub drop: Vec<String>,
}

impl ColumnSelection {
    /// Resolves the selection against `names` to column indices.
    pub(crate) fn resolve(&self, names: &[String], path: &Path) -> Result<Vec<usize>, DataError> {
        let find = |wanted: &String| -> Result<usize, DataError> {
            names
                .iter()
                .position(|n| n == wanted)
                .or_else(|| wanted.parse::<usize>().ok().filter(|&i| i < names.len()))
                .ok_or_else(|| DataError::UnknownColumn {
                    path: path.to_path_buf(),
                    name: wanted.clone(),
                    available: names.to_vec(),
                })
        };
        let mut kept = match &self.columns {
            Some(columns) => columns.iter().map(find).collect::<Result<Vec<_>, _>>()?,
            None => (0..names.len()).collect(),
        };
        let dropped = self.drop.iter().map(find).collect::<Result<Vec<_>, _>>()?;
        kept.retain(|j| !dropped.contains(j));
        if kept.is_empty() {
            return Err(DataError::NoColumns {
                path: path.to_path_buf(),
            });
        }
        Ok(kept)
    }
}

/// Reads a numeric CSV file into a [`Table`], keeping the selected columns.
pub fn read_csv(path: impl AsRef<Path>, selection: &ColumnSelection) -> Result<Table, DataError> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_csv(&text, path, selection)
}

/// Parses CSV text; `path` is only used in error messages.
pub(crate) fn parse_csv(
    text: &str,
    path: &Path,
    selection: &ColumnSelection,
) -> Result<Table, DataError> {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, line)| (i + 1, line))
        .filter(|(_, line)| !line.trim().is_empty());
    let no_rows = || DataError::NoRows {
        path: path.to_path_buf(),
    };
    let (first_line_no, first_line) = lines.next().ok_or_else(no_rows)?;
    let first_fields = split_fields(first_line);
    let is_header = first_fields.iter().any(|f| f.parse::<f64>().is_err());
    let names = if is_header {
        first_fields.clone()
    } else {
        default_names(first_fields.len())
    };
    let kept = selection.resolve(&names, path)?;

    let data_lines = (!is_header)
        .then_some((first_line_no, first_line))
        .into_iter()
        .chain(lines);
    let mut data = Vec::new();
    let mut n_rows = 0;
    for (line_no, line) in data_lines {
        let fields = split_fields(line);
        if fields.len() != names.len() {
            return Err(DataError::RaggedRow {
                path: path.to_path_buf(),
                line: line_no,
                found: fields.len(),
                expected: names.len(),
            });
        }
        for &j in &kept {
            data.push(parse_value(&fields[j], path, line_no, j + 1)?);
        }
        n_rows += 1;
    }
    if n_rows == 0 {
        return Err(no_rows());
    }
    let names = kept.iter().map(|&j| names[j].clone()).collect();
    Table::new(n_rows, kept.len(), data, names)
}

fn parse_value(text: &str, path: &Path, line: usize, column: usize) -> Result<f64, DataError> {
    let (path, text_owned) = (path.to_path_buf(), text.to_string());
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err(DataError::NonFinite {
            path,
            line,
            column,
            text: text_owned,
        }),
        Err(_) => Err(DataError::NotNumeric {
            path,
            line,
            column,
            text: text_owned,
        }),
    }
}

/// Splits one line on commas outside double quotes, trimming each field and
/// removing its quotes.
fn split_fields(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut current = String::new();
    let mut in_quotes = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if in_quotes && chars.peek() == Some(&'"') => {
                current.push('"');
                chars.next();
            }
            '"' => in_quotes = !in_quotes,
            ',' if !in_quotes => fields.push(std::mem::take(&mut current).trim().to_string()),
            _ => current.push(c),
        }
    }
    fields.push(current.trim().to_string());
    fields
}

/// Writes `table` as CSV with a header row to `path`.
pub fn write_csv(path: impl AsRef<Path>, table: &Table) -> Result<(), DataError> {
    let path = path.as_ref();
    let io_error = |source| DataError::Io {
        path: PathBuf::from(path),
        source,
    };
    let mut writer = BufWriter::new(File::create(path).map_err(io_error)?);
    write_csv_to(&mut writer, table).map_err(io_error)?;
    writer.flush().map_err(io_error)
}

/// Writes `table` as CSV with a header row to any writer. Values use Rust's
/// shortest representation that reads back to the same `f64`.
pub fn write_csv_to(writer: &mut impl Write, table: &Table) -> std::io::Result<()> {
    let header: Vec<String> = table.names().iter().map(|n| quote_if_needed(n)).collect();
    writeln!(writer, "{}", header.join(","))?;
    for row in table.rows() {
        let fields: Vec<String> = row.iter().map(|v| v.to_string()).collect();
        writeln!(writer, "{}", fields.join(","))?;
    }
    Ok(())
}

fn quote_if_needed(name: &str) -> String {
    if name.contains([',', '"']) || name.trim() != name {
        format!("\"{}\"", name.replace('"', "\"\""))
    } else {
        name.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Table, DataError> {
        parse_csv(text, Path::new("t.csv"), &ColumnSelection::default())
    }

    fn select(columns: Option<&[&str]>, drop: &[&str]) -> ColumnSelection {
        ColumnSelection {
            columns: columns.map(|c| c.iter().map(|s| s.to_string()).collect()),
            drop: drop.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn header_is_detected_and_values_read() {
        let t = parse(" a , \"b, quoted\" ,c\n1, 2.5,-3e2\n\n4,5,6\n").unwrap();
        assert_eq!(t.names(), ["a", "b, quoted", "c"]);
        assert_eq!(t.data(), [1.0, 2.5, -300.0, 4.0, 5.0, 6.0]);
    }

    #[test]
    fn headerless_file_gets_default_names() {
        let t = parse("1,2\n3,4\n").unwrap();
        assert_eq!(t.names(), ["x0", "x1"]);
        assert_eq!(t.n_rows(), 2);
    }

    #[test]
    fn columns_are_selected_by_name_or_index_and_dropped() {
        let text = "a,b,c\n1,2,3\n4,5,6\n";
        let path = Path::new("t.csv");
        let t = parse_csv(text, path, &select(Some(&["c", "0"]), &[])).unwrap();
        assert_eq!(t.names(), ["c", "a"]);
        assert_eq!(t.data(), [3.0, 1.0, 6.0, 4.0]);
        let t = parse_csv(text, path, &select(None, &["b"])).unwrap();
        assert_eq!(t.data(), [1.0, 3.0, 4.0, 6.0]);
        let err = parse_csv(text, path, &select(Some(&["z"]), &[])).unwrap_err();
        assert!(matches!(&err, DataError::UnknownColumn { name, .. } if name == "z"));
        let err = parse_csv(text, path, &select(None, &["a", "b", "c"])).unwrap_err();
        assert!(matches!(err, DataError::NoColumns { .. }));
    }

    #[test]
    fn errors_name_line_and_column() {
        let err = parse("a,b\n1,2\n3\n").unwrap_err();
        assert!(matches!(
            err,
            DataError::RaggedRow {
                line: 3,
                found: 1,
                expected: 2,
                ..
            }
        ));
        assert_eq!(err.to_string(), "t.csv: line 3 has 1 fields, expected 2");
        let err = parse("a,b\n1,2\n3,x\n").unwrap_err();
        assert!(matches!(
            err,
            DataError::NotNumeric {
                line: 3,
                column: 2,
                ..
            }
        ));
        let err = parse("1,2\n3,inf\n").unwrap_err();
        assert!(matches!(
            err,
            DataError::NonFinite {
                line: 2,
                column: 2,
                ..
            }
        ));
        let err = parse("1,NaN\n").unwrap_err();
        assert!(matches!(
            err,
            DataError::NonFinite {
                line: 1,
                column: 2,
                ..
            }
        ));
        assert!(matches!(parse(""), Err(DataError::NoRows { .. })));
        assert!(matches!(parse("a,b\n  \n"), Err(DataError::NoRows { .. })));
    }

    #[test]
    fn write_then_read_round_trips_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("round.csv");
        let names = vec!["plain".to_string(), "with, comma".to_string()];
        let t = Table::new(2, 2, vec![0.1, -1e-300, 1.0 / 3.0, 12345.678], names).unwrap();
        write_csv(&path, &t).unwrap();
        assert_eq!(read_csv(&path, &ColumnSelection::default()).unwrap(), t);
    }

    #[test]
    fn missing_file_is_an_io_error_naming_the_path() {
        let err = read_csv("/nonexistent/x.csv", &ColumnSelection::default()).unwrap_err();
        assert!(err.to_string().starts_with("/nonexistent/x.csv: "));
    }
}
