//! Simulations of an sbibm benchmark task as CSV, for training a conditional flow on them
//! (`cnf train --data sims.csv --context x_1,...`) and scoring its posterior (docs/sbi.md).
//!
//! ```text
//! cargo run --release --example sbi_simulate -- TASK [--n N] [--seed S] [--out sims.csv]
//!     [--observation K [--given given.csv] [--reference exact.csv] [--n-reference M]]
//! ```
//!
//! - TASK: two_moons, gaussian_linear or slcp.
//! - `--out`: N pairs (theta ~ prior, x ~ simulator) with columns theta_1.., x_1.. [N = 10000,
//!   seed 0].
//! - `--given`: sbibm's observation K (1..10) as a one-row CSV with columns x_1.., the file
//!   `cnf sample --given` reads.
//! - `--reference`: M exact posterior draws for observation K, columns theta_1.. [M = 10000,
//!   seed + 1]: gaussian linear (closed form) and two moons (sbibm's exact sampler); SLCP has
//!   none (its reference is sbibm's file).
use cnf::train::data::{write_csv, Table};
use cnf::train::sbi::{task, Observation};
use rand::{rngs::StdRng, SeedableRng};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opt = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map(String::as_str)
    };
    let name = args
        .first()
        .filter(|a| !a.starts_with("--"))
        .ok_or("usage: sbi_simulate TASK [--n N] [--seed S] [--out F] [--observation K --given F --reference F]")?;
    let task = task(name)?;
    let n: usize = opt("--n").map_or(Ok(10_000), str::parse)?;
    let seed: u64 = opt("--seed").map_or(Ok(0), str::parse)?;

    if let Some(out) = opt("--out") {
        let sims = task.simulate_pairs(n, seed)?;
        let (dt, dx) = (task.theta_dim(), task.x_dim());
        let rows = sims.theta.chunks_exact(dt).zip(sims.x.chunks_exact(dx));
        let data: Vec<f64> = rows.flat_map(|(t, x)| t.iter().chain(x).copied()).collect();
        let names = [task.theta_names(), task.x_names()].concat();
        write_csv(out, &Table::new(n, dt + dx, data, names)?)?;
        eprintln!("{out}: {n} simulations of {name} (seed {seed})");
    }

    let (given, reference) = (opt("--given"), opt("--reference"));
    if given.is_none() && reference.is_none() {
        return Ok(());
    }
    let number: usize = opt("--observation")
        .ok_or("--given and --reference need --observation K (1..10)")?
        .parse()?;
    let obs = Observation::new(number)?;
    if let Some(given) = given {
        let table = Table::new(1, task.x_dim(), task.observation(obs), task.x_names())?;
        write_csv(given, &table)?;
        eprintln!("{given}: observation {number} of {name}");
    }
    if let Some(reference) = reference {
        let m: usize = opt("--n-reference").map_or(Ok(10_000), str::parse)?;
        let mut rng = StdRng::seed_from_u64(seed.wrapping_add(1));
        let draws = task.reference_posterior(obs, m, &mut rng)?;
        write_csv(
            reference,
            &Table::new(m, task.theta_dim(), draws, task.theta_names())?,
        )?;
        eprintln!("{reference}: {m} exact posterior draws for observation {number} of {name}");
    }
    Ok(())
}
