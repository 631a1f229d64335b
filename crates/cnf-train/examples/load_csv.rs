//! Load-time and memory probe for the CSV reader.
//!
//! `cargo run --release -p cnf-train --example load_csv -- gen FILE [ROWS] [COLS]` writes a
//! table of pseudo-random values (header `c0,c1,...`; default 1 000 000 x 10);
//! `... -- load FILE` reads it with [`cnf_train::data::read_csv`] and prints the shape and the
//! seconds taken. Run `load` under `/usr/bin/time -v` for the peak resident memory.

use std::io::{BufWriter, Write};
use std::time::Instant;

use cnf_train::data::{read_csv, ColumnSelection};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: load_csv gen FILE [ROWS] [COLS] | load_csv load FILE";
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["gen", path, rest @ ..] => {
            let rows = rest.first().map_or(1_000_000, |r| r.parse().expect(usage));
            let cols = rest.get(1).map_or(10, |c| c.parse().expect(usage));
            generate(path, rows, cols).expect("writing the table");
        }
        ["load", path] => {
            let start = Instant::now();
            let table = read_csv(path, &ColumnSelection::default()).unwrap_or_else(|e| {
                eprintln!("error: {e}");
                std::process::exit(1)
            });
            let seconds = start.elapsed().as_secs_f64();
            println!(
                "{} rows x {} columns in {seconds:.3} s",
                table.n_rows(),
                table.n_cols()
            );
        }
        _ => {
            eprintln!("{usage}");
            std::process::exit(2)
        }
    }
}

/// Writes `rows` x `cols` values from a 64-bit LCG mapped to roughly N(0, 1)-sized numbers.
fn generate(path: &str, rows: usize, cols: usize) -> std::io::Result<()> {
    let mut out = BufWriter::new(std::fs::File::create(path)?);
    let header: Vec<String> = (0..cols).map(|j| format!("c{j}")).collect();
    writeln!(out, "{}", header.join(","))?;
    let mut state: u64 = 0x853c_49e6_748f_ea9b;
    for _ in 0..rows {
        for j in 0..cols {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let u = (state >> 11) as f64 / (1u64 << 53) as f64;
            let sep = if j + 1 == cols { "\n" } else { "," };
            write!(out, "{}{sep}", 6.0 * u - 3.0)?;
        }
    }
    out.flush()
}
