//! A dense row-major table of finite `f64` values with column names.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::error::DataError;

/// `n_rows` x `n_cols` finite values, row-major, with one name per column.
///
/// A table read from a CSV file whose first row was all numbers, in header mode `auto`, also
/// carries a [`HeaderNote`] ([`Table::header_note`]): that row was read as data. The note is
/// about where the table came from, not part of its contents: tables compare equal without
/// it, and tables derived from it (rows selected, split, transformed) do not carry it.
#[derive(Debug, Clone)]
pub struct Table {
    n_rows: usize,
    n_cols: usize,
    data: Vec<f64>,
    names: Vec<String>,
    header_note: Option<Box<HeaderNote>>,
}

impl PartialEq for Table {
    fn eq(&self, other: &Self) -> bool {
        (self.n_rows, self.n_cols) == (other.n_rows, other.n_cols)
            && self.data == other.data
            && self.names == other.names
    }
}

/// What header detection decided when it read a first row of numbers as data: the command line
/// prints it as a note (a numeric header such as `400,500` would otherwise become a data row
/// with no word said).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderNote {
    /// The CSV file.
    pub path: std::path::PathBuf,
    /// The first row's fields, as written.
    pub first_row: Vec<String>,
}

impl std::fmt::Display for HeaderNote {
    /// `t.csv: the first row (400, 500) is all numbers, read as data; pass --header yes if it
    /// names the columns` (at most 6 fields shown).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const SHOWN: usize = 6;
        let mut row = self
            .first_row
            .iter()
            .take(SHOWN)
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        if self.first_row.len() > SHOWN {
            row += &format!(", ... ({} fields)", self.first_row.len());
        }
        write!(
            f,
            "{}: the first row ({row}) is all numbers, read as data; pass --header yes if it \
             names the columns",
            self.path.display()
        )
    }
}

impl Table {
    /// Builds a table, checking that the sizes agree and every value is finite.
    ///
    /// # Errors
    /// [`DataError::Shape`] if `data` does not hold `n_rows * n_cols` values;
    /// [`DataError::ColumnCount`] if there are not `n_cols` names;
    /// [`DataError::NonFiniteValue`] naming the first NaN or infinite value.
    pub fn new(
        n_rows: usize,
        n_cols: usize,
        data: Vec<f64>,
        names: Vec<String>,
    ) -> Result<Self, DataError> {
        let expected = n_rows.checked_mul(n_cols);
        if expected != Some(data.len()) {
            let expected = expected.unwrap_or(usize::MAX);
            return Err(DataError::Shape {
                n_rows,
                n_cols,
                expected,
                found: data.len(),
            });
        }
        if names.len() != n_cols {
            return Err(DataError::ColumnCount {
                expected: n_cols,
                found: names.len(),
            });
        }
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            return Err(DataError::NonFiniteValue {
                row: i / n_cols,
                column: i % n_cols,
                value: data[i],
            });
        }
        Ok(Self {
            n_rows,
            n_cols,
            data,
            names,
            header_note: None,
        })
    }

    /// The table with `note` attached (see [`Table::header_note`]).
    pub(crate) fn with_header_note(mut self, note: HeaderNote) -> Self {
        self.header_note = Some(Box::new(note));
        self
    }

    /// Set when this table was read from a CSV file in header mode `auto` and its first row,
    /// all numbers, was read as data: print it as a note.
    pub fn header_note(&self) -> Option<&HeaderNote> {
        self.header_note.as_deref()
    }

    /// Builds a table with default column names `x0`, `x1`, ...
    ///
    /// # Errors
    /// [`DataError::Shape`] or [`DataError::NonFiniteValue`], as [`Table::new`].
    pub fn with_default_names(
        n_rows: usize,
        n_cols: usize,
        data: Vec<f64>,
    ) -> Result<Self, DataError> {
        Self::new(n_rows, n_cols, data, default_names(n_cols))
    }

    /// Builds an `n x 2` table from points.
    ///
    /// # Errors
    /// [`DataError::NonFiniteValue`] naming the first NaN or infinite coordinate.
    pub fn from_points(points: &[[f64; 2]]) -> Result<Self, DataError> {
        let data = points.iter().flatten().copied().collect();
        Self::with_default_names(points.len(), 2, data)
    }

    /// Builds an `n x 2` table from points that are finite by construction
    /// (generated, not read), so there is nothing to check.
    pub(crate) fn from_generated_points(points: Vec<[f64; 2]>) -> Self {
        Table {
            n_rows: points.len(),
            n_cols: 2,
            data: points.into_iter().flatten().collect(),
            names: default_names(2),
            header_note: None,
        }
    }

    /// Number of rows (samples).
    pub fn n_rows(&self) -> usize {
        self.n_rows
    }

    /// Number of columns (the dimension of each sample).
    pub fn n_cols(&self) -> usize {
        self.n_cols
    }

    /// All values, row-major.
    pub fn data(&self) -> &[f64] {
        &self.data
    }

    /// All values, row-major, without a copy.
    pub fn into_data(self) -> Vec<f64> {
        self.data
    }

    /// Column names, one per column: the CSV header's, or `x0`, `x1`, ... when there was none.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Row `i`, or `None` past the end.
    pub fn row(&self, i: usize) -> Option<&[f64]> {
        (i < self.n_rows).then(|| &self.data[i * self.n_cols..(i + 1) * self.n_cols])
    }

    /// Iterates over the rows.
    pub fn rows(&self) -> impl Iterator<Item = &[f64]> {
        // `max(1)` keeps `chunks_exact` valid for a table with no columns.
        self.data.chunks_exact(self.n_cols.max(1)).take(self.n_rows)
    }

    /// Column `j` copied out, or `None` past the end.
    pub fn column(&self, j: usize) -> Option<Vec<f64>> {
        (j < self.n_cols).then(|| self.rows().map(|r| r[j]).collect())
    }

    /// The rows as 2-D points, or `None` unless the table has exactly 2 columns.
    pub fn to_points(&self) -> Option<Vec<[f64; 2]>> {
        (self.n_cols == 2).then(|| self.rows().map(|r| [r[0], r[1]]).collect())
    }

    /// A new table of the given rows (indices past the end are skipped).
    pub fn select_rows(&self, indices: &[usize]) -> Table {
        let mut data = Vec::with_capacity(indices.len() * self.n_cols);
        let mut n_rows = 0;
        for row in indices.iter().filter_map(|&i| self.row(i)) {
            data.extend_from_slice(row);
            n_rows += 1;
        }
        Table {
            n_rows,
            n_cols: self.n_cols,
            data,
            names: self.names.clone(),
            header_note: None,
        }
    }

    /// A new table of the columns `cols` (a range of column indices, clamped to the table).
    pub fn select_columns(&self, cols: std::ops::Range<usize>) -> Table {
        let cols = cols.start.min(self.n_cols)..cols.end.min(self.n_cols);
        let width = cols.len();
        let mut data = Vec::with_capacity(self.n_rows * width);
        for row in self.rows() {
            data.extend_from_slice(&row[cols.clone()]);
        }
        Table {
            n_rows: self.n_rows,
            n_cols: width,
            data,
            names: self.names[cols].to_vec(),
            header_note: None,
        }
    }

    /// The columns of `self` followed by those of `right`, row by row.
    ///
    /// # Errors
    /// [`DataError::Shape`] when the tables have different numbers of rows.
    pub fn concat_columns(&self, right: &Table) -> Result<Table, DataError> {
        if right.n_rows != self.n_rows {
            return Err(DataError::Shape {
                n_rows: self.n_rows,
                n_cols: right.n_cols,
                expected: self.n_rows * right.n_cols,
                found: right.data.len(),
            });
        }
        let n_cols = self.n_cols + right.n_cols;
        let mut data = Vec::with_capacity(self.n_rows * n_cols);
        for (a, b) in self.rows().zip(right.rows()) {
            data.extend_from_slice(a);
            data.extend_from_slice(b);
        }
        Ok(Table {
            n_rows: self.n_rows,
            n_cols,
            data,
            names: self.names.iter().chain(&right.names).cloned().collect(),
            header_note: None,
        })
    }

    /// Splits the rows into (train, validation, test) by a random permutation
    /// drawn from `seed`. Sizes are `floor(f * n)` for train and validation;
    /// test gets the remainder so that no row is lost.
    ///
    /// ```
    /// use cnf_train::data::Table;
    ///
    /// let data: Vec<f64> = (0..20).map(f64::from).collect(); // rows (0, 1), (2, 3), ...
    /// let table = Table::with_default_names(10, 2, data)?;
    /// let (train, val, test) = table.split([0.8, 0.1, 0.1], 7)?;
    /// assert_eq!((train.n_rows(), val.n_rows(), test.n_rows()), (8, 1, 1));
    /// // A permutation of the rows: each row lands in exactly one part.
    /// let parts = train.rows().chain(val.rows()).chain(test.rows());
    /// let mut firsts: Vec<f64> = parts.map(|r| r[0]).collect();
    /// firsts.sort_by(f64::total_cmp);
    /// assert_eq!(firsts, (0..10).map(|i| 2.0 * f64::from(i)).collect::<Vec<_>>());
    /// # Ok::<(), cnf_train::DataError>(())
    /// ```
    ///
    /// # Errors
    /// [`DataError::BadSplit`] for fractions that are negative, not finite or do not sum to 1.
    pub fn split(
        &self,
        fractions: [f64; 3],
        seed: u64,
    ) -> Result<(Table, Table, Table), DataError> {
        let valid = fractions.iter().all(|f| f.is_finite() && *f >= 0.0)
            && (fractions.iter().sum::<f64>() - 1.0).abs() < 1e-9;
        if !valid {
            return Err(DataError::BadSplit(fractions));
        }
        let mut order: Vec<usize> = (0..self.n_rows).collect();
        order.shuffle(&mut StdRng::seed_from_u64(seed));
        let n = self.n_rows as f64;
        let n_train = ((fractions[0] * n).floor() as usize).min(self.n_rows);
        let n_val = ((fractions[1] * n).floor() as usize).min(self.n_rows - n_train);
        let (train, rest) = order.split_at(n_train);
        let (val, test) = rest.split_at(n_val);
        Ok((
            self.select_rows(train),
            self.select_rows(val),
            self.select_rows(test),
        ))
    }

    /// [`Self::split`] for training: the training part must hold at least 2 rows (to fit a
    /// standardisation) and the validation part at least 1. Otherwise the error names `path`
    /// (the file the table came from), its real number of rows and how many would do.
    ///
    /// # Errors
    /// [`DataError::BadSplit`] as [`Table::split`]; [`DataError::SplitTooSmall`] when the
    /// split leaves fewer than 2 training rows or no validation row.
    pub fn split_for_training(
        &self,
        fractions: [f64; 3],
        seed: u64,
        path: &std::path::Path,
    ) -> Result<(Table, Table, Table), DataError> {
        let (train, val, test) = self.split(fractions, seed)?;
        if train.n_rows() >= 2 && val.n_rows() >= 1 {
            return Ok((train, val, test));
        }
        let sizes = |n: usize| {
            let n_train = (fractions[0] * n as f64).floor() as usize;
            let n_val = ((fractions[1] * n as f64).floor() as usize).min(n - n_train.min(n));
            (n_train, n_val)
        };
        let needed = (self.n_rows..=self.n_rows.saturating_add(1_000_000)).find(|&n| {
            let (t, v) = sizes(n);
            t >= 2 && v >= 1
        });
        Err(DataError::SplitTooSmall {
            path: path.to_path_buf(),
            rows: self.n_rows,
            train: train.n_rows(),
            val: val.n_rows(),
            needed,
        })
    }
}

/// Names `x0`, `x1`, ... for tables read without a header.
pub fn default_names(n_cols: usize) -> Vec<String> {
    (0..n_cols).map(|j| format!("x{j}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counting_table(n: usize) -> Table {
        let data = (0..n).flat_map(|i| [i as f64, -(i as f64)]).collect();
        Table::with_default_names(n, 2, data).unwrap()
    }

    #[test]
    fn new_rejects_wrong_length_and_non_finite() {
        assert!(matches!(
            Table::with_default_names(2, 2, vec![1.0; 3]),
            Err(DataError::Shape { found: 3, .. })
        ));
        assert!(matches!(
            Table::with_default_names(2, 2, vec![1.0, 2.0, f64::NAN, 4.0]),
            Err(DataError::NonFiniteValue {
                row: 1,
                column: 0,
                ..
            })
        ));
    }

    #[test]
    fn accessors_follow_row_major_layout() {
        let t = counting_table(3);
        assert_eq!(t.row(2), Some(&[2.0, -2.0][..]));
        assert_eq!(t.row(3), None);
        assert_eq!(t.column(1), Some(vec![0.0, -1.0, -2.0]));
        assert_eq!(t.rows().count(), 3);
        assert_eq!(t.to_points().unwrap()[1], [1.0, -1.0]);
    }

    #[test]
    fn split_is_a_seeded_partition_of_the_rows() {
        let t = counting_table(101);
        let (a, b, c) = t.split([0.8, 0.1, 0.1], 7).unwrap();
        assert_eq!((a.n_rows(), b.n_rows(), c.n_rows()), (80, 10, 11));
        let mut seen: Vec<f64> = [&a, &b, &c]
            .iter()
            .flat_map(|t| t.column(0).unwrap())
            .collect();
        seen.sort_by(f64::total_cmp);
        assert_eq!(seen, t.column(0).unwrap());
        // Rows stay whole: the second column is still minus the first.
        assert!(a.rows().all(|r| r[1] == -r[0]));
        assert_eq!(t.split([0.8, 0.1, 0.1], 7).unwrap().0, a);
        assert_ne!(t.split([0.8, 0.1, 0.1], 8).unwrap().0, a);
    }

    #[test]
    fn split_for_training_names_the_file_and_its_real_row_count() {
        let path = std::path::Path::new("one.csv");
        let err = counting_table(1)
            .split_for_training([0.8, 0.1, 0.1], 0, path)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "one.csv: 1 data row leaves 0 for training and 0 for validation; need at least 2 \
             to train and 1 to validate: at least 10 rows in all"
        );
        let (a, b, c) = counting_table(10)
            .split_for_training([0.8, 0.1, 0.1], 0, path)
            .unwrap();
        assert_eq!((a.n_rows(), b.n_rows(), c.n_rows()), (8, 1, 1));
        let err = counting_table(10)
            .split_for_training([1.0, 0.0, 0.0], 0, path)
            .unwrap_err();
        assert!(
            matches!(
                err,
                DataError::SplitTooSmall {
                    needed: None,
                    val: 0,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn new_rejects_a_shape_whose_size_overflows() {
        assert!(matches!(
            Table::with_default_names(1 << 62, 4, vec![]),
            Err(DataError::Shape { found: 0, .. })
        ));
    }

    #[test]
    fn split_rejects_bad_fractions() {
        let t = counting_table(4);
        assert!(t.split([0.5, 0.5, 0.5], 0).is_err());
        assert!(t.split([-0.5, 1.0, 0.5], 0).is_err());
        assert!(t.split([f64::NAN, 0.5, 0.5], 0).is_err());
    }
}
