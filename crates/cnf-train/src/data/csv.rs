//! CSV reading (with the `csv` crate) and writing for numeric tables: comma-separated,
//! spaces trimmed, double-quoted fields allowed (with `""` for a quote, and commas and newlines
//! inside when the quote opens right after the comma: `a,"b, c"`; after spaces, `a, "b"`, the
//! quotes are dropped but cannot protect a comma). The first non-blank row is a header as
//! [`HeaderMode`] says: by default when any of its fields is not a number (a first row of
//! numbers is read as data, and the table records a [`HeaderNote`] saying so).

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::data::table::{default_names, HeaderNote, Table};
use crate::error::DataError;

/// How the first row of a CSV file is read (`Debug` prints the word: `yes`).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum HeaderMode {
    /// Names when any field is not a number; otherwise data (columns x0, x1, ...), with a note.
    #[default]
    Auto,
    /// Always names, even when numeric (`400,500`: wavelengths, years).
    Yes,
    /// Always data (columns x0, x1, ...).
    No,
}

impl std::fmt::Debug for HeaderMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl HeaderMode {
    /// `auto`, `yes` or `no`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Yes => "yes",
            Self::No => "no",
        }
    }
}

impl std::fmt::Display for HeaderMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for HeaderMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "yes" => Ok(Self::Yes),
            "no" => Ok(Self::No),
            _ => Err(format!("header mode {s:?} is not one of auto, yes, no")),
        }
    }
}

/// Which columns to keep: `columns` (in that order) or all, minus `drop`; and how the first
/// row is read (`header`). Each entry is a header name or, failing that, a 0-based index such
/// as `"2"`.
///
/// A name that two header columns share cannot select or drop either of them, and the kept
/// columns must have distinct names and be distinct columns
/// ([`DataError::DuplicateColumn`], [`DataError::RepeatedColumn`]): a model never reads one
/// column twice.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColumnSelection {
    /// Columns to keep, in this order (which may reorder them, not repeat them); `None` keeps
    /// all columns in file order.
    pub columns: Option<Vec<String>>,
    /// Columns removed after `columns` is applied (for instance a label or an id column).
    pub drop: Vec<String>,
    /// Whether the first row names the columns (CSV only).
    pub header: HeaderMode,
}

impl ColumnSelection {
    /// Resolves the selection against `names` to column indices.
    pub(crate) fn resolve(&self, names: &[String], path: &Path) -> Result<Vec<usize>, DataError> {
        // The first column of each name, and the first repeat of a name, if any.
        let mut first_of: HashMap<&str, usize> = HashMap::with_capacity(names.len());
        let mut repeats: HashMap<&str, usize> = HashMap::new();
        for (j, n) in names.iter().enumerate() {
            if first_of.contains_key(n.as_str()) {
                repeats.entry(n.as_str()).or_insert(j);
            } else {
                first_of.insert(n.as_str(), j);
            }
        }
        let duplicate = |name: &str| -> DataError {
            DataError::DuplicateColumn {
                path: path.to_path_buf(),
                name: name.to_string(),
                first: first_of[name] + 1,
                second: repeats[name] + 1,
            }
        };
        let find = |wanted: &String| -> Result<usize, DataError> {
            if let Some(&j) = first_of.get(wanted.as_str()) {
                if repeats.contains_key(wanted.as_str()) {
                    return Err(duplicate(wanted));
                }
                return Ok(j);
            }
            wanted
                .parse::<usize>()
                .ok()
                .filter(|&i| i < names.len())
                .ok_or_else(|| DataError::UnknownColumn {
                    path: path.to_path_buf(),
                    name: wanted.clone(),
                    available: names.to_vec(),
                })
        };
        let mut kept = match &self.columns {
            Some(columns) => {
                let kept = columns.iter().map(find).collect::<Result<Vec<_>, _>>()?;
                let mut seen: HashMap<usize, usize> = HashMap::with_capacity(kept.len());
                for (k, &j) in kept.iter().enumerate() {
                    if let Some(&before) = seen.get(&j) {
                        return Err(DataError::RepeatedColumn {
                            path: path.to_path_buf(),
                            name: names[j].clone(),
                            first: columns[before].clone(),
                            second: columns[k].clone(),
                        });
                    }
                    seen.insert(j, k);
                }
                kept
            }
            None => (0..names.len()).collect(),
        };
        let dropped = self.drop.iter().map(find).collect::<Result<Vec<_>, _>>()?;
        kept.retain(|j| !dropped.contains(j));
        if kept.is_empty() {
            return Err(DataError::NoColumns {
                path: path.to_path_buf(),
            });
        }
        // Two kept columns of one name (kept by index, or all kept): refused.
        if !repeats.is_empty() {
            let mut seen: HashMap<&str, usize> = HashMap::with_capacity(kept.len());
            for &j in &kept {
                if let Some(&before) = seen.get(names[j].as_str()) {
                    return Err(DataError::DuplicateColumn {
                        path: path.to_path_buf(),
                        name: names[j].clone(),
                        first: before.min(j) + 1,
                        second: before.max(j) + 1,
                    });
                }
                seen.insert(names[j].as_str(), j);
            }
        }
        Ok(kept)
    }
}

/// Reads a numeric CSV file into a [`Table`], keeping the selected columns.
///
/// ```
/// use cnf_train::data::{read_csv, write_csv, ColumnSelection};
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("points.csv");
/// std::fs::write(&path, "x,y,label\n0.5,-1,3\n2, 4e-1 ,7\n")?;
/// let selection = ColumnSelection {
///     drop: vec!["label".into()],
///     ..ColumnSelection::default()
/// };
/// let table = read_csv(&path, &selection)?;
/// assert_eq!(table.names(), ["x", "y"]);
/// assert_eq!(table.data(), [0.5, -1.0, 2.0, 0.4]);
/// // Written and read back: the same table, bit for bit.
/// let copy = dir.path().join("copy.csv");
/// write_csv(&copy, &table)?;
/// assert_eq!(read_csv(&copy, &ColumnSelection::default())?, table);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`DataError::Io`] if the file cannot be opened or read; [`DataError::NoRows`] for a file
/// without data rows; [`DataError::NotUtf8`] for a header field that is not UTF-8;
/// [`DataError::UnknownColumn`], [`DataError::DuplicateColumn`],
/// [`DataError::RepeatedColumn`] or [`DataError::NoColumns`] for a selection that does not
/// resolve to distinct columns; [`DataError::RaggedRow`] for a line with another number of
/// fields; [`DataError::NotNumeric`] / [`DataError::NonFinite`] for a kept field that is not a
/// finite number; [`DataError::Csv`] for other malformed CSV. Every message names the file
/// (and the line and column where there is one).
pub fn read_csv(path: impl AsRef<Path>, selection: &ColumnSelection) -> Result<Table, DataError> {
    let path = path.as_ref();
    let file = File::open(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_reader(file, path, selection)
}

/// Parses CSV text; `path` is only used in error messages.
#[cfg(test)]
pub(crate) fn parse_csv(
    text: &str,
    path: &Path,
    selection: &ColumnSelection,
) -> Result<Table, DataError> {
    parse_reader(text.as_bytes(), path, selection)
}

/// Reads CSV from any reader with the `csv` crate: one reused [`csv::ByteRecord`], values parsed
/// straight from its bytes (no allocation per cell). Blank lines are skipped; a UTF-8 byte
/// order mark at the start is dropped; quoted fields may hold commas, `""` and newlines.
/// `path` is only used in error messages.
pub(crate) fn parse_reader(
    reader: impl Read,
    path: &Path,
    selection: &ColumnSelection,
) -> Result<Table, DataError> {
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .buffer_capacity(1 << 16)
        .from_reader(reader);
    let mut record = csv::ByteRecord::new();
    let mut next = |record: &mut csv::ByteRecord| -> Result<Option<usize>, DataError> {
        loop {
            let more = csv
                .read_byte_record(record)
                .map_err(|e| csv_error(e, path))?;
            if !more {
                return Ok(None);
            }
            let line = record.position().map_or(0, |p| p.line() as usize);
            let blank = record.len() == 1 && record[0].iter().all(u8::is_ascii_whitespace);
            if !blank {
                return Ok(Some(line));
            }
        }
    };
    let no_rows = || DataError::NoRows {
        path: path.to_path_buf(),
    };
    let first_line = next(&mut record)?.ok_or_else(no_rows)?;
    let all_numbers = record.iter().all(|f| parse_f64(f).is_some());
    let is_header = match selection.header {
        HeaderMode::Auto => !all_numbers,
        HeaderMode::Yes => true,
        HeaderMode::No => false,
    };
    // Auto mode read a first row of numbers as data: say so.
    let note = (selection.header == HeaderMode::Auto && all_numbers).then(|| HeaderNote {
        path: path.to_path_buf(),
        first_row: record
            .iter()
            .enumerate()
            .map(|(j, f)| String::from_utf8_lossy(strip_bom(f, first_line, j)).into_owned())
            .collect(),
    });
    let names = if is_header {
        record
            .iter()
            .enumerate()
            .map(|(j, f)| {
                field_name(strip_bom(f, first_line, j)).map_err(|_| DataError::NotUtf8 {
                    path: path.to_path_buf(),
                    line: first_line,
                    column: j + 1,
                })
            })
            .collect::<Result<Vec<_>, _>>()?
    } else {
        default_names(record.len())
    };
    let kept = selection.resolve(&names, path)?;

    let mut data = Vec::new();
    let mut n_rows = 0;
    let mut line = if is_header {
        next(&mut record)?
    } else {
        Some(first_line)
    };
    while let Some(line_no) = line {
        if record.len() != names.len() {
            return Err(DataError::RaggedRow {
                path: path.to_path_buf(),
                line: line_no,
                found: record.len(),
                expected: names.len(),
            });
        }
        for &j in &kept {
            data.push(parse_value(&record[j], path, line_no, j + 1)?);
        }
        n_rows += 1;
        line = next(&mut record)?;
    }
    if n_rows == 0 {
        return Err(no_rows());
    }
    data.shrink_to_fit();
    let names = kept.iter().map(|&j| names[j].clone()).collect();
    let table = Table::new(n_rows, kept.len(), data, names)?;
    Ok(match note {
        Some(note) => table.with_header_note(note),
        None => table,
    })
}

/// The csv crate drops a byte order mark before the first record; this also drops one that
/// reaches the first field (e.g. after trimming), so it never becomes part of a name.
fn strip_bom(field: &[u8], line: usize, column: usize) -> &[u8] {
    if line <= 1 && column == 0 {
        field.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(field)
    } else {
        field
    }
}

fn csv_error(e: csv::Error, path: &Path) -> DataError {
    let line = e.position().map(|p| p.line() as usize);
    match e.into_kind() {
        csv::ErrorKind::Io(source) => DataError::Io {
            path: path.to_path_buf(),
            source,
        },
        other => DataError::Csv {
            path: path.to_path_buf(),
            line: line.unwrap_or(0),
            message: format!("{other:?}"),
        },
    }
}

/// A field as a number, or `None` if it is not one (or not UTF-8).
fn parse_f64(field: &[u8]) -> Option<f64> {
    std::str::from_utf8(late_quoted(field).unwrap_or(field))
        .ok()?
        .parse::<f64>()
        .ok()
}

/// The inside of a field the csv crate left quoted because spaces came before its opening
/// quote (`1, "2"`): RFC 4180 keeps such quotes, this reader drops them as it always did.
fn late_quoted(field: &[u8]) -> Option<&[u8]> {
    match field {
        [b'"', inner @ .., b'"'] => Some(inner),
        _ => None,
    }
}

/// A header field as a name (quotes left by [`late_quoted`] removed, `""` read as `"`).
fn field_name(field: &[u8]) -> Result<String, std::str::Utf8Error> {
    let name = std::str::from_utf8(field)?;
    Ok(match late_quoted(field) {
        Some(_) => name[1..name.len() - 1].trim().replace("\"\"", "\""),
        None => name.to_string(),
    })
}

fn parse_value(field: &[u8], path: &Path, line: usize, column: usize) -> Result<f64, DataError> {
    match parse_f64(field) {
        Some(v) if v.is_finite() => Ok(v),
        parsed => {
            let text = String::from_utf8_lossy(field).into_owned();
            let path = path.to_path_buf();
            Err(if parsed.is_some() {
                DataError::NonFinite {
                    path,
                    line,
                    column,
                    text,
                }
            } else {
                DataError::NotNumeric {
                    path,
                    line,
                    column,
                    text,
                }
            })
        }
    }
}

/// Writes `table` as CSV with a header row to `path`.
/// The file is written atomically ([`crate::atomic::AtomicFile`]): an error leaves an existing
/// file intact.
///
/// # Errors
/// [`crate::error::TrainError::Invalid`] if `path` has no file name;
/// [`crate::error::TrainError::Io`] if the file cannot be created, written or renamed into
/// place.
pub fn write_csv(path: impl AsRef<Path>, table: &Table) -> Result<(), crate::error::TrainError> {
    let path = path.as_ref();
    let mut file = crate::atomic::AtomicFile::create(path)?;
    write_csv_to(&mut file, table).map_err(crate::error::TrainError::io(path.display()))?;
    file.commit()
}

/// Writes `table` as CSV with a header row to any writer. Values use Rust's
/// shortest representation that reads back to the same `f64`.
///
/// # Errors
/// The writer's I/O error.
pub fn write_csv_to(writer: &mut impl Write, table: &Table) -> std::io::Result<()> {
    let header: Vec<String> = table.names().iter().map(|n| quote_if_needed(n)).collect();
    writeln!(writer, "{}", header.join(","))?;
    for row in table.rows() {
        for (j, v) in row.iter().enumerate() {
            let sep = if j == 0 { "" } else { "," };
            write!(writer, "{sep}{v}")?;
        }
        writeln!(writer)?;
    }
    Ok(())
}

fn quote_if_needed(name: &str) -> String {
    if name.contains([',', '"', '\n', '\r']) || name.trim() != name {
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
            header: HeaderMode::Auto,
        }
    }

    #[test]
    fn header_is_detected_and_values_read() {
        let t = parse(" a ,\"b, quoted\" , \" c\"\"\" \n1, 2.5,-3e2\n\n4,5, \"6\" \n").unwrap();
        assert_eq!(t.names(), ["a", "b, quoted", "c\""]);
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

    fn with_header(mode: HeaderMode) -> ColumnSelection {
        ColumnSelection {
            header: mode,
            ..ColumnSelection::default()
        }
    }

    /// A header naming two columns alike is refused, naming the column (both columns used
    /// to read as the first, and `density` matched both model columns to it).
    #[test]
    fn duplicate_header_names_are_refused_naming_the_column() {
        let path = Path::new("t.csv");
        let err = parse("v,v\n1,2\n3,4\n").unwrap_err();
        assert!(
            matches!(&err, DataError::DuplicateColumn { name, first: 1, second: 2, .. } if name == "v"),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            "t.csv: columns 1 and 2 are both named \"v\"; rename one (or leave one out with a \
             selection by index)"
        );
        let text = "w,v,u,v\n1,2,3,4\n5,6,7,8\n";
        // Naming the shared name to keep or to drop is ambiguous; keeping both by index too.
        for sel in [
            select(Some(&["v"]), &[]),
            select(None, &["v"]),
            select(Some(&["1", "3"]), &[]),
            select(None, &["w"]),
        ] {
            let err = parse_csv(text, path, &sel).unwrap_err();
            assert!(
                matches!(&err, DataError::DuplicateColumn { name, first: 2, second: 4, .. } if name == "v"),
                "{sel:?}: {err}"
            );
        }
        // Unambiguous selections still work: the other columns, or one of the two by index.
        let t = parse_csv(text, path, &select(Some(&["u", "w"]), &[])).unwrap();
        assert_eq!(t.data(), [3.0, 1.0, 7.0, 5.0]);
        let t = parse_csv(text, path, &select(None, &["3"])).unwrap();
        assert_eq!(t.names(), ["w", "v", "u"]);
    }

    /// A selection that keeps one column twice is refused, by name or by name and index.
    #[test]
    fn a_selection_naming_a_column_twice_is_refused() {
        let path = Path::new("t.csv");
        let text = "x,y\n1,2\n3,4\n";
        for (sel, second) in [(["x", "x"], "x"), (["x", "0"], "0")] {
            let err = parse_csv(text, path, &select(Some(&sel), &[])).unwrap_err();
            assert!(
                matches!(&err, DataError::RepeatedColumn { name, first, second: s, .. }
                    if name == "x" && first == "x" && s == second),
                "{err}"
            );
        }
        let err = parse_csv(text, path, &select(Some(&["y", "0", "x"]), &[])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "t.csv: the column selection names column \"x\" twice (\"0\" and \"x\")"
        );
        let headerless = parse_csv("1,2\n3,4\n", path, &select(Some(&["x1", "1"]), &[]));
        assert!(matches!(headerless, Err(DataError::RepeatedColumn { .. })));
    }

    /// `auto` reads a first row of numbers as data and says so; `yes` reads it as names even
    /// when numeric; `no` reads it as data.
    #[test]
    fn header_mode_decides_the_first_row_and_auto_says_what_it_did() {
        let path = Path::new("w.csv");
        let text = "400,500\n1,2\n3,4\n";
        let auto = parse_csv(text, path, &with_header(HeaderMode::Auto)).unwrap();
        assert_eq!(auto.n_rows(), 3);
        assert_eq!(auto.names(), ["x0", "x1"]);
        let note = auto
            .header_note()
            .expect("auto must report a numeric first row");
        assert_eq!(note.first_row, ["400", "500"]);
        assert_eq!(
            note.to_string(),
            "w.csv: the first row (400, 500) is all numbers, read as data; pass --header yes if \
             it names the columns"
        );
        let yes = parse_csv(text, path, &with_header(HeaderMode::Yes)).unwrap();
        assert_eq!(yes.names(), ["400", "500"]);
        assert_eq!(yes.data(), [1.0, 2.0, 3.0, 4.0]);
        assert!(yes.header_note().is_none());
        let no = parse_csv(text, path, &with_header(HeaderMode::No)).unwrap();
        assert_eq!((no.n_rows(), no.data()[0]), (3, 400.0));
        assert!(no.header_note().is_none());
        // Selection by a numeric name under `yes`, and duplicates are checked there too.
        let sel = ColumnSelection {
            columns: Some(vec!["500".into()]),
            ..with_header(HeaderMode::Yes)
        };
        assert_eq!(parse_csv(text, path, &sel).unwrap().data(), [2.0, 4.0]);
        let dup = parse_csv("7,7\n1,2\n", path, &with_header(HeaderMode::Yes));
        assert!(matches!(dup, Err(DataError::DuplicateColumn { .. })));
        // A word in the first row: a header under auto (no note), an error under `no`.
        let named = parse_csv("a,b\n1,2\n", path, &ColumnSelection::default()).unwrap();
        assert!(named.header_note().is_none());
        let err = parse_csv("a,b\n1,2\n", path, &with_header(HeaderMode::No)).unwrap_err();
        assert!(matches!(
            err,
            DataError::NotNumeric {
                line: 1,
                column: 1,
                ..
            }
        ));
        // The note is not part of the table's contents and does not follow its rows.
        assert_eq!(auto, no);
        assert!(auto.select_rows(&[0, 1]).header_note().is_none());
        // Modes are read and written as words (config.json).
        for mode in [HeaderMode::Auto, HeaderMode::Yes, HeaderMode::No] {
            let json = serde_json::to_string(&mode).unwrap();
            assert_eq!(json, format!("\"{mode}\""));
            assert_eq!(mode.as_str().parse::<HeaderMode>(), Ok(mode));
        }
    }

    #[test]
    fn a_long_numeric_first_row_is_shortened_in_the_note() {
        let row: Vec<String> = (0..10).map(|j| j.to_string()).collect();
        let text = format!("{}\n{}\n", row.join(","), row.join(","));
        let t = parse(&text).unwrap();
        let note = t.header_note().unwrap().to_string();
        assert!(
            note.contains("(0, 1, 2, 3, 4, 5, ... (10 fields))"),
            "{note}"
        );
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
    fn quoted_fields_may_hold_newlines_and_lines_stay_counted() {
        let t = parse("\"multi\nline\",b\n1,2\n").unwrap();
        assert_eq!(t.names(), ["multi\nline", "b"]);
        assert_eq!(t.data(), [1.0, 2.0]);
        // The value on line 4 is reported as line 4, after a header spanning lines 1-2.
        let err = parse("\"a\n\",b\n1,2\n3,x\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "t.csv: line 4, column 2: \"x\" is not a number"
        );
    }

    #[test]
    fn byte_order_mark_is_not_part_of_the_first_name() {
        let t = parse("\u{feff}a,b\n1,2\n").unwrap();
        assert_eq!(t.names(), ["a", "b"]);
        let t = parse("\u{feff}1,2\n3,4\n").unwrap();
        assert_eq!((t.n_rows(), t.data()[0]), (2, 1.0));
        let selected = parse_csv(
            "\u{feff}a,b\n1,2\n",
            Path::new("t.csv"),
            &select(Some(&["a"]), &[]),
        )
        .unwrap();
        assert_eq!(selected.data(), [1.0]);
    }

    #[test]
    fn invalid_utf8_is_a_typed_error() {
        let path = Path::new("t.csv");
        let all = ColumnSelection::default();
        let err = parse_reader(&b"a,\xff\n1,2\n"[..], path, &all).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::NotUtf8 {
                    line: 1,
                    column: 2,
                    ..
                }
            ),
            "{err}"
        );
        let err = parse_reader(&b"a,b\n1,\xff\n"[..], path, &all).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::NotNumeric {
                    line: 2,
                    column: 2,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn names_with_newlines_are_quoted_when_written() {
        let t = Table::new(1, 1, vec![1.5], vec!["two\nlines".to_string()]).unwrap();
        let mut out = Vec::new();
        write_csv_to(&mut out, &t).unwrap();
        assert_eq!(out, b"\"two\nlines\"\n1.5\n");
        let back = parse(std::str::from_utf8(&out).unwrap()).unwrap();
        assert_eq!(back, t);
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
