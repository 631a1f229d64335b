//! The `cnf` command over the cnf-train library: argument parsing (clap), the subcommands, the
//! progress bar (indicatif) and the plots (plotters). Everything a library user needs lives in
//! cnf-train, cnf-flow, cnf-field and cnf-ode, which build without these.

pub mod cli;
pub mod commands;
pub mod plot;
pub mod progress;
pub mod report;
