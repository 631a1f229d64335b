//! The Rust side of the Python overhead benchmark (`benches/overhead.py`): the work of
//! `CNFDensity.score_samples` and `CNFDensity.sample` done by cnf-train directly, on the same
//! model folder and rows, timed in the same run, on the extension's allocator. Prints one JSON
//! line of median seconds.
//!
//! `cargo run --release -p cnf-py --example rust_peer -- MODEL_DIR POINTS.csv N_SAMPLES REPS`
use std::time::Instant;

/// The extension's allocator, so that the two sides differ only by the binding.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use cnf_field::{Mlp, Real};
use cnf_flow::{Batching, Cnf};
use cnf_train::data::{read_table, ColumnSelection, Table};
use cnf_train::error::TrainError;
use cnf_train::model::{log_density_table, ModelConfig, ModelDir, Precision};
use rand::{rngs::StdRng, SeedableRng};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn time<T: Real>(
    dir: &ModelDir,
    config: &ModelConfig,
    table: &Table,
    n: usize,
    reps: usize,
) -> Result<(f64, f64), TrainError> {
    let cnf: Cnf<T, Mlp<T>> = dir
        .load_cnf::<T>(config, None)?
        .with_batching(Batching::Chunks(1024));
    let (mut dens, mut samp) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        let t0 = Instant::now();
        std::hint::black_box(log_density_table(&cnf, config, table)?);
        dens.push(t0.elapsed().as_secs_f64());
        let t0 = Instant::now();
        let z = cnf.sample(n, &mut StdRng::seed_from_u64(0))?.points;
        let x: Vec<f64> = match &config.standardizer {
            Some(s) => z
                .chunks_exact(config.mlp.dim)
                .flat_map(|r| {
                    s.inverse_row(
                        &r.iter()
                            .map(|v| v.to_f64().unwrap_or(f64::NAN))
                            .collect::<Vec<_>>(),
                    )
                })
                .collect(),
            None => z.iter().map(|v| v.to_f64().unwrap_or(f64::NAN)).collect(),
        };
        std::hint::black_box(x);
        samp.push(t0.elapsed().as_secs_f64());
    }
    Ok((median(dens), median(samp)))
}

fn main() -> Result<(), TrainError> {
    let args: Vec<String> = std::env::args().collect();
    let [_, model, points, n, reps] = args.as_slice() else {
        return Err(TrainError::Invalid(
            "usage: rust_peer MODEL_DIR POINTS.csv N_SAMPLES REPS".into(),
        ));
    };
    let parse = |s: &str| {
        s.parse::<usize>()
            .map_err(|e| TrainError::Invalid(format!("{s}: {e}")))
    };
    let dir = ModelDir::new(model);
    let config = dir.config()?;
    let table = read_table(points.as_ref(), &ColumnSelection::default())?;
    let (n, reps) = (parse(n)?, parse(reps)?);
    let (dens, samp) = match config.precision {
        Precision::F32 => time::<f32>(&dir, &config, &table, n, reps)?,
        Precision::F64 => time::<f64>(&dir, &config, &table, n, reps)?,
    };
    println!(
        "{{\"rows\": {}, \"log_density_s\": {dens}, \"sample_s\": {samp}, \"n_samples\": {n}}}",
        table.n_rows()
    );
    Ok(())
}
