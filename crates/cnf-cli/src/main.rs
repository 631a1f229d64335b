//! The `cnf` command: see `cnf --help`.
use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cnf_cli::cli::Cli::parse();
    match cnf_cli::commands::run(cli.command) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
