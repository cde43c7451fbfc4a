//! Project automation: toolchain set-up, privileged test runs, benchmarks.

mod bench;
mod setup;
mod test;
mod workload;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "nstrace project tasks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install what building and testing need: rust-src, bpf-linker, Debian packages.
    Setup,
    /// Set up, build (release) and run nstrace with the given arguments (default: `live`).
    Run {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Set up, build (release) and run the benchmarks; writes docs/benchmarks.{md,json}.
    Bench,
    /// Set up, then run every test: unit tests and root integration tests.
    Test {
        /// Extra arguments for `cargo test` (e.g. a test name filter).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Setup => setup::setup(),
        Command::Run { args } => {
            setup::setup()?;
            test::run_nstrace(&args)
        }
        Command::Bench => {
            setup::setup()?;
            bench::bench()
        }
        Command::Test { args } => {
            setup::setup()?;
            test::test(&args)
        }
    }
}
