use std::process::ExitCode;

use clap::{Parser, Subcommand};
use nstrace::{chain::Chain, cli, error::Error};

/// The states, exit codes and examples: `nstrace --help` and the man page.
const MORE_HELP: &str = "\
States (every namespace is in exactly one):
  active     a task is in it, or holds it as pid_for_children/time_for_children
  mounted    no task; an nsfs bind mount holds it (ip netns add, a runtime's
             /run/docker/netns/...), in any mount namespace
  fd-only    no task, no mount; only an open nsfs fd
  orphaned   none of these: a socket in another net namespace, a namespace it
             owns or parents, or a kernel reference
  inactive   (6.19+) orphaned, and the kernel counts no task, fd, mount or
             child namespace using it (listns(2) leaves it out)
  dying      no reference left; the kernel's teardown (cleanup_net) not done
  destroyed  gone (kept a while in live and history)

Exit codes:
  0  success
  1  findings: leaks found leaked namespaces, diff found differences,
     doctor says nstrace cannot run on this kernel
  2  usage: bad arguments, an unknown or ambiguous target
  3  runtime: not root (or without CAP_BPF, CAP_SYS_ADMIN...), no BTF, a
     kernel that refuses a program, an unreadable database

Examples:
  nstrace ls                        every namespace, its state and holders
  nstrace leaks                     namespaces no task is in, and each fix
  nstrace why /run/netns/blue       what keeps one namespace alive
  nstrace trace --format json       namespace events as they happen
  nstrace live                      the full-screen table (keys: live --help)
  nstrace serve                     the service: metrics, provenance, socket";

/// nstrace: every Linux namespace on this host, who holds it, and why it
/// did not go away.
#[derive(Debug, Parser)]
#[command(version, about, after_long_help = MORE_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show what this kernel offers and which mechanism nstrace uses for each job.
    Doctor {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Colour ok/no/err: auto (on a terminal, unless NO_COLOR is set), always, never.
        #[arg(long, value_enum, default_value_t, value_name = "WHEN")]
        color: nstrace::present::columns::ColorChoice,
        #[command(flatten)]
        mechanisms: cli::MechanismArgs,
    },
    /// List every namespace on the host with its state and holders.
    Ls(cli::ls::Args),
    /// Namespaces no task is in, and what keeps each alive (exit 1 if any).
    Leaks(cli::leaks::Args),
    /// Explain one namespace: every holder and how to release it.
    Why(cli::why::Args),
    /// Namespace limits per user namespace and uid: used, limit, headroom
    /// (why unshare/clone fail with ENOSPC; exit 1 if a level is full).
    Limits(cli::limits::Args),
    /// Compare two `nstrace ls --json` snapshots.
    Diff(cli::diff::Args),
    /// Stream namespace events.
    Trace(cli::trace::Args),
    /// Live view of every namespace (full-screen).
    #[command(after_help = nstrace::present::tui::KEYS_HELP)]
    Live(cli::live::Args),
    /// The service: trace, serve Prometheus metrics, record provenance in a
    /// database, answer ls/why/leaks/history on a unix socket.
    Serve(cli::serve::Args),
    /// `serve` under its older name (same flags, same defaults).
    Export(cli::serve::Args),
    /// Namespaces the provenance database remembers, including those gone.
    History(cli::history::Args),
    /// Print a shell completion script (e.g. `nstrace completions bash > /etc/bash_completion.d/nstrace`).
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the man pages (nstrace.1 and one per subcommand) into a directory.
    #[command(hide = true)]
    ManPages {
        #[arg(long, value_name = "DIR")]
        dir: std::path::PathBuf,
    },
}

fn main() -> ExitCode {
    tune_malloc();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .target(env_logger::Target::Stderr)
        .init();
    let cli = Cli::parse();
    // Exit codes (see nstrace::error::exit): 0 ok, 1 findings, 2 usage
    // error (clap exits 2 on bad arguments itself), 3 runtime failure.
    match run(cli) {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            eprintln!("nstrace: {}", Chain(&e));
            ExitCode::from(e.exit_code())
        }
    }
}

fn run(cli: Cli) -> Result<i32, Error> {
    match cli.command {
        Command::Doctor { json, color, mechanisms } => {
            let forced = mechanisms.overrides()?;
            let color = color.for_stdout();
            cli::to_stdout(|mut out| {
                cli::doctor::run(json, color, &forced, &mut out).map_err(|e| Error::io("writing the report", e))
            })
        }
        Command::Ls(args) => cli::ls::run(args),
        Command::Leaks(args) => cli::leaks::run(args),
        Command::Why(args) => cli::why::run(args),
        Command::Limits(args) => cli::limits::run(args),
        Command::Diff(args) => cli::diff::run(args),
        Command::Trace(args) => run_async(cli::trace::run(args)),
        Command::Live(args) => run_async(cli::live::run(args)),
        Command::Serve(args) | Command::Export(args) => run_async(cli::serve::run(args)),
        Command::History(args) => cli::history::run(args),
        Command::Completions { shell } => cli::to_stdout(|mut out| {
            cli::completions::completions(shell, <Cli as clap::CommandFactory>::command(), &mut out)?;
            Ok(0)
        }),
        Command::ManPages { dir } => {
            for name in cli::completions::man_pages(<Cli as clap::CommandFactory>::command(), &dir)? {
                println!("{}", dir.join(name).display());
            }
            Ok(0)
        }
    }
}

/// Runs a long-running command; once it returns, work still on a blocking
/// thread (a walk waiting for its lock, a /proc scan) does not hold the
/// exit: a stop is a stop.
fn run_async(command: impl std::future::Future<Output = Result<i32, Error>>) -> Result<i32, Error> {
    let rt = runtime()?;
    let result = rt.block_on(command);
    rt.shutdown_timeout(std::time::Duration::from_millis(100));
    result
}

fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting the async runtime", e))
}

/// nstrace's big allocations are transient and per refresh (a snapshot's
/// records, a holder scan's maps: megabytes at 100,000 namespaces). With
/// glibc's defaults they come from heap arenas (one per scanning thread)
/// that keep the memory after it is freed, so resident memory settles at
/// the peak. A fixed mmap threshold hands them back at free, and two arenas
/// bound the per-thread copies.
fn tune_malloc() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only changes allocator parameters; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn command_line_definition_is_consistent() {
        // clap checks flattened argument groups and names only when a
        // subcommand is first parsed: check them all here.
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }
}
