//! `cnf sample` and `cnf plot`: drawing from a model folder.
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::{emit_table, inspect::open};
use crate::cli::{PlotArgs, SampleArgs};
use crate::data::Table;
use crate::error::TrainError;
use crate::report::plot_density;

/// `cnf sample`.
pub fn sample(args: &SampleArgs) -> Result<(), TrainError> {
    let (dir, config) = open(&args.model)?;
    let cnf = dir.load_cnf::<f64>(&config, None)?;
    let mut rng = StdRng::seed_from_u64(args.seed);
    let out = cnf.sample(args.n, &mut rng)?;
    let d = config.mlp.dim;
    let names = if config.columns.len() == d {
        config.columns.clone()
    } else {
        (0..d).map(|i| format!("x{i}")).collect()
    };
    let mut table = Table::new(args.n, d, out.points, names)?;
    if let Some(s) = &config.standardizer {
        table = s.inverse(&table)?;
    }
    emit_table(&table, args.output.as_deref())?;
    eprintln!("{} samples ({})", args.n, out.stats);
    Ok(())
}

/// `cnf plot`.
pub fn plot(args: &PlotArgs) -> Result<(), TrainError> {
    let (dir, config) = open(&args.model)?;
    if config.mlp.dim != 2 {
        return Err(TrainError::Invalid(format!(
            "plot needs a 2-D model, this one has {} dimensions",
            config.mlp.dim
        )));
    }
    let cnf = dir.load_cnf::<f32>(&config, None)?;
    plot_density(&cnf, &config, &args.out, args.resolution)?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}
