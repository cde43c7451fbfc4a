//! One module per subcommand.

pub mod diff;
pub mod doctor;
pub mod export;
pub mod leaks;
pub mod live;
pub mod ls;
pub mod trace;
pub mod why;

/// `--mechanism JOB=NAME`, shared by the subcommands that trace.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct MechanismArgs {
    /// Force the mechanism for a job instead of the best one probed (repeatable):
    /// create=fexit-ns-tree|fexit-constructors|kprobe-constructors|tracepoints,
    /// destroy=fentry-ns-tree|fentry-free-inum|kprobe-free-inum|tree-walk|proc-rescan,
    /// snapshot=tree-walk|proc. `nstrace doctor` lists what this kernel supports.
    #[arg(long = "mechanism", value_name = "JOB=NAME")]
    pub mechanism: Vec<String>,
}

impl MechanismArgs {
    pub fn overrides(&self) -> Result<crate::kernel::mechanism::Overrides, crate::error::Error> {
        crate::kernel::mechanism::Overrides::parse(&self.mechanism)
            .map_err(|e| crate::error::Error::Usage(e.to_string()))
    }
}
