use std::process::ExitCode;

use clap::Parser;
use sgprobe::cli::{Cli, closed_pipe, exit_code, run};

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(error) if closed_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("sgprobe: error: {error:#}");
            ExitCode::from(exit_code(&error))
        }
    }
}
