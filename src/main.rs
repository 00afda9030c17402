use std::process::ExitCode;

use clap::Parser;
use sgprobe::cli::{Cli, EXIT_ERROR, run};

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("sgprobe: error: {error:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}
