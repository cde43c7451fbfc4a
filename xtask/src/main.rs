//! Project automation: toolchain set-up, privileged test runs, benchmarks.

mod bench;
mod bench_hooks;
mod bench_perf_data;
mod bench_serve;
mod bench_soak;
mod bench_teardown;
mod decoy;
mod image;
mod setup;
mod test;
mod vm;
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
    /// Set up what building needs (rust-src, bpf-linker; no test tools), build (release) and run
    /// nstrace with the given arguments (default: `live`).
    Run {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Set up, build (release) and run the benchmarks; writes docs/benchmarks.{md,json}.
    Bench {
        /// Run only these cases (snapshot, overhead, hot_hooks, throughput, memory, serve, hooks, busy_host,
        /// soak: 30 minutes, or NSTRACE_SOAK_MINUTES); the report then goes to target/bench/ instead of docs/.
        #[arg(long)]
        only: Vec<String>,
        /// An earlier nstrace binary to measure side by side where a case supports it (memory).
        #[arg(long)]
        baseline: Option<std::path::PathBuf>,
    },
    /// Set up, then run every test: unit tests and root integration tests on this kernel, then the
    /// integration tests in VMs on Debian's 6.1 and 6.12 kernels (skip those with --host-only or
    /// NSTRACE_SKIP_VM=1).
    Test {
        /// Only the tests on the running kernel: no VMs.
        #[arg(long)]
        host_only: bool,
        /// Extra arguments for `cargo test` (e.g. a test name filter); those after `--` also go
        /// to the test binaries in the VMs.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Build the container image the DaemonSet runs (deploy/Containerfile, from scratch: the
    /// nstrace binary and the libraries it links; no registry needed).
    Image {
        /// Ship this binary instead of building the release one.
        #[arg(long)]
        binary: Option<std::path::PathBuf>,
        #[arg(long, default_value = concat!("nstrace:", env!("CARGO_PKG_VERSION")))]
        tag: String,
        /// The Docker daemon to build with (`docker -H`).
        #[arg(long)]
        docker_host: Option<String>,
    },
    /// Write the man pages (nstrace.1 and one per subcommand) into docs/man/ from the clap
    /// definitions (a test checks that they are current).
    Man,
    /// Boot kernels under qemu (TCG) with this host's root filesystem and run the root
    /// integration tests inside each; prints a summary per kernel.
    VmTest {
        /// `6.1` or `6.12` (the newest Debian linux-image-*-amd64-unsigned of that series), a
        /// kernel .deb, or a bzImage; repeat for several.
        #[arg(long = "kernel", required = true)]
        kernels: Vec<String>,
        /// `--test-threads` for each test binary in the guest [default: 2, as on the host].
        #[arg(long)]
        test_threads: Option<u32>,
        /// Minutes one VM may run before it is killed [default: 40].
        #[arg(long)]
        timeout_min: Option<u64>,
        /// Virtual CPUs [default: 2].
        #[arg(long)]
        cpus: Option<u32>,
        /// Boot the kernels one after the other rather than all at once.
        #[arg(long)]
        sequential: bool,
        /// One host thread per vCPU (qemu `-accel tcg,thread=multi`) instead of one per VM:
        /// faster, but guests crashed in BPF trampoline patching with it.
        #[arg(long)]
        mttcg: bool,
        /// Run only this suite (a test binary: foundation, mechanisms, listns, ...); repeat for
        /// several [default: every suite].
        #[arg(long = "suite")]
        suites: Vec<String>,
        /// Extra arguments for each test binary (e.g. a test name filter).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Setup => setup::setup(),
        Command::Run { args } => {
            setup::build_only()?;
            test::run_nstrace(&args)
        }
        Command::Bench { only, baseline } => {
            setup::setup()?;
            bench::bench(&only, baseline)
        }
        Command::Test { host_only, args } => {
            setup::setup()?;
            test::test(&args, host_only || std::env::var_os("NSTRACE_SKIP_VM").is_some_and(|v| v != "0"))
        }
        Command::Image { binary, tag, docker_host } => {
            if binary.is_none() {
                setup::setup()?;
            }
            image::image(&image::Options { binary, tag, docker_host })
        }
        Command::Man => {
            setup::build_only()?;
            test::man_pages()
        }
        Command::VmTest { kernels, test_threads, timeout_min, cpus, sequential, mttcg, suites, args } => {
            setup::setup()?;
            let mut opts = vm::Options::new(kernels);
            opts.test_threads = test_threads.unwrap_or(opts.test_threads);
            opts.timeout = timeout_min.map_or(opts.timeout, |m| std::time::Duration::from_secs(m * 60));
            opts.cpus = cpus.unwrap_or(opts.cpus);
            opts.parallel = !sequential;
            opts.mttcg = mttcg;
            opts.test_args = args;
            opts.only_suites = suites;
            vm::vm_test(&opts)
        }
    }
}
