//! Which kernel mechanism does each job (create, destroy, snapshot) on
//! this kernel: the best one the probe found, or the one `--mechanism`
//! forces. Pure: selection is unit-tested with synthetic facts.

use std::fmt;

use nstrace_common::names::CONSTRUCTORS;
use serde::Serialize;

/// How new namespaces are reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Create {
    /// fexit on `__ns_tree_add_raw` (6.18+): every type, ns_id intact.
    FexitNsTree,
    /// fexit on the per-type constructors (`copy_net_ns`, ..., `create_user_ns`).
    FexitConstructors,
    /// kretprobes on the per-type constructors (user namespaces: first sighting).
    KprobeConstructors,
    /// First sightings by the task and syscall tracepoints, plus snapshots.
    Tracepoints,
}

/// How deaths are reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Destroy {
    /// fentry on `__ns_tree_remove` (6.18+).
    FentryNsTree,
    /// fentry on `proc_free_inum`, where every namespace frees its inode.
    FentryFreeInum,
    /// kprobe on `proc_free_inum`.
    KprobeFreeInum,
    /// The tree walk, run early when a workqueue hint says something died.
    TreeWalk,
    /// /proc re-scans: deaths are seen at the next scan.
    ProcRescan,
}

/// Where snapshots come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Snapshot {
    /// The eBPF walk of the kernel's per-type namespace lists (6.18+).
    TreeWalk,
    /// The lsns method over /proc plus nsfs ioctls.
    Proc,
    /// listns(2) (6.19+) plus the sockets' net namespaces; holders from /proc.
    Listns,
}

macro_rules! display_as_value {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                use clap::ValueEnum as _;
                f.write_str(self.to_possible_value().expect("no skipped variants").get_name())
            }
        }
    )*};
}
display_as_value!(Create, Destroy, Snapshot);

impl Destroy {
    /// The name `--mechanism` and `doctor` use.
    pub fn name(self) -> &'static str {
        match self {
            Destroy::FentryNsTree => "fentry-ns-tree",
            Destroy::FentryFreeInum => "fentry-free-inum",
            Destroy::KprobeFreeInum => "kprobe-free-inum",
            Destroy::TreeWalk => "tree-walk",
            Destroy::ProcRescan => "proc-rescan",
        }
    }

    /// Whether a kernel hook reports every death (so a /proc snapshot that
    /// misses a live namespace must not be taken as its death).
    pub fn is_exact_hook(self) -> bool {
        matches!(self, Destroy::FentryNsTree | Destroy::FentryFreeInum | Destroy::KprobeFreeInum)
    }
}

/// The mechanism per job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Mechanisms {
    pub create: Create,
    pub destroy: Destroy,
    pub snapshot: Snapshot,
}

/// What the probe found that selection depends on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    /// BPF_PROG_TYPE_TRACING (fentry/fexit) programs load.
    pub tracing: bool,
    pub kprobes: bool,
    /// The kernel has per-type namespace lists and the walk can run.
    pub tree_walk: bool,
    /// listns(2) answers (6.19+).
    pub listns: bool,
    /// Hookable kernel functions (in kallsyms, traceable, with BTF where
    /// fentry needs it).
    pub functions: Vec<String>,
}

/// Kernel functions the constructor mechanisms hook (all must be hookable).
pub const CONSTRUCTOR_FUNCTIONS: [&str; CONSTRUCTORS.len()] = {
    let mut f = [""; CONSTRUCTORS.len()];
    let mut i = 0;
    while i < f.len() {
        f[i] = CONSTRUCTORS[i].function;
        i += 1;
    }
    f
};
/// Kernel functions hooked apart from the per-type constructors.
const OTHER_HOOKED_FUNCTIONS: [&str; 4] = ["__ns_tree_add_raw", "__ns_tree_remove", "proc_free_inum", "create_user_ns"];
/// Every kernel function any mechanism hooks.
pub const HOOKED_FUNCTIONS: [&str; OTHER_HOOKED_FUNCTIONS.len() + CONSTRUCTORS.len()] = {
    let mut f = [""; OTHER_HOOKED_FUNCTIONS.len() + CONSTRUCTORS.len()];
    let mut i = 0;
    while i < f.len() {
        f[i] = if i < OTHER_HOOKED_FUNCTIONS.len() {
            OTHER_HOOKED_FUNCTIONS[i]
        } else {
            CONSTRUCTOR_FUNCTIONS[i - OTHER_HOOKED_FUNCTIONS.len()]
        };
        i += 1;
    }
    f
};

impl Facts {
    fn has(&self, f: &str) -> bool {
        self.functions.iter().any(|g| g == f)
    }

    /// Why `m` cannot run here, or None.
    pub fn create_unavailable(&self, m: Create) -> Option<String> {
        let missing =
            |fs: &[&str]| fs.iter().find(|f| !self.has(f)).map(|f| format!("kernel function {f} is not hookable"));
        match m {
            Create::FexitNsTree => self.need_tracing().or_else(|| missing(&["__ns_tree_add_raw"])),
            Create::FexitConstructors => {
                self.need_tracing().or_else(|| missing(&CONSTRUCTOR_FUNCTIONS)).or_else(|| missing(&["create_user_ns"]))
            }
            Create::KprobeConstructors => self.need_kprobes().or_else(|| missing(&CONSTRUCTOR_FUNCTIONS)),
            Create::Tracepoints => None,
        }
    }

    pub fn destroy_unavailable(&self, m: Destroy) -> Option<String> {
        let missing = |f: &str| (!self.has(f)).then(|| format!("kernel function {f} is not hookable"));
        match m {
            Destroy::FentryNsTree => self.need_tracing().or_else(|| missing("__ns_tree_remove")),
            Destroy::FentryFreeInum => self.need_tracing().or_else(|| missing("proc_free_inum")),
            Destroy::KprobeFreeInum => self.need_kprobes().or_else(|| missing("proc_free_inum")),
            Destroy::TreeWalk => self.snapshot_unavailable(Snapshot::TreeWalk),
            Destroy::ProcRescan => None,
        }
    }

    pub fn snapshot_unavailable(&self, m: Snapshot) -> Option<String> {
        match m {
            Snapshot::TreeWalk if !self.tree_walk => {
                Some("no namespace tree walk (needs 6.18+ per-type namespace lists)".into())
            }
            Snapshot::Listns if !self.listns => Some("no listns(2) (needs 6.19+)".into()),
            _ => None,
        }
    }

    fn need_tracing(&self) -> Option<String> {
        (!self.tracing).then(|| "BPF_PROG_TYPE_TRACING (fentry/fexit) programs do not load".into())
    }

    fn need_kprobes(&self) -> Option<String> {
        (!self.kprobes).then(|| "no kprobes".into())
    }
}

/// Mechanisms forced with `--mechanism JOB=NAME`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Overrides {
    pub create: Option<Create>,
    pub destroy: Option<Destroy>,
    pub snapshot: Option<Snapshot>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MechanismError {
    #[error("mechanism {name} for {job} is not available on this kernel: {why}")]
    Unavailable { job: &'static str, name: String, why: String },
    #[error("bad --mechanism {0:?}: expected JOB=NAME with JOB create, destroy or snapshot (see --help)")]
    Syntax(String),
    #[error("bad --mechanism {job}={name}: {job} mechanisms are {choices}")]
    UnknownName { job: String, name: String, choices: String },
}

impl Overrides {
    /// Parses `--mechanism` values such as `destroy=proc-rescan`.
    pub fn parse(values: &[String]) -> Result<Overrides, MechanismError> {
        use clap::ValueEnum;
        fn one<T: ValueEnum>(job: &str, name: &str) -> Result<T, MechanismError> {
            T::from_str(name, false).map_err(|_| MechanismError::UnknownName {
                job: job.into(),
                name: name.into(),
                choices: T::value_variants()
                    .iter()
                    .filter_map(|v| v.to_possible_value().map(|p| p.get_name().to_owned()))
                    .collect::<Vec<_>>()
                    .join(", "),
            })
        }
        let mut o = Overrides::default();
        for v in values {
            let (job, name) = v.split_once('=').ok_or_else(|| MechanismError::Syntax(v.clone()))?;
            match job {
                "create" => o.create = Some(one(job, name)?),
                "destroy" => o.destroy = Some(one(job, name)?),
                "snapshot" => o.snapshot = Some(one(job, name)?),
                _ => return Err(MechanismError::Syntax(v.clone())),
            }
        }
        Ok(o)
    }
}

/// The best mechanism per job, or the forced one (an error when it cannot
/// run here).
pub fn select(facts: &Facts, forced: &Overrides) -> Result<Mechanisms, MechanismError> {
    let unavailable = |job: &'static str, name: String, why: Option<String>| match why {
        Some(why) => Err(MechanismError::Unavailable { job, name, why }),
        None => Ok(()),
    };
    let create = match forced.create {
        Some(m) => {
            unavailable("create", m.to_string(), facts.create_unavailable(m))?;
            m
        }
        None => [Create::FexitNsTree, Create::FexitConstructors, Create::KprobeConstructors]
            .into_iter()
            .find(|m| facts.create_unavailable(*m).is_none())
            .unwrap_or(Create::Tracepoints),
    };
    let snapshot = match forced.snapshot {
        Some(m) => {
            unavailable("snapshot", m.to_string(), facts.snapshot_unavailable(m))?;
            m
        }
        None if facts.tree_walk => Snapshot::TreeWalk,
        None if facts.listns => Snapshot::Listns,
        None => Snapshot::Proc,
    };
    let destroy = match forced.destroy {
        Some(m) => {
            unavailable("destroy", m.to_string(), facts.destroy_unavailable(m))?;
            m
        }
        None => [Destroy::FentryNsTree, Destroy::FentryFreeInum, Destroy::KprobeFreeInum, Destroy::TreeWalk]
            .into_iter()
            .filter(|m| *m != Destroy::TreeWalk || snapshot == Snapshot::TreeWalk)
            .find(|m| facts.destroy_unavailable(*m).is_none())
            .unwrap_or(Destroy::ProcRescan),
    };
    if destroy == Destroy::TreeWalk && snapshot != Snapshot::TreeWalk {
        return Err(MechanismError::Unavailable {
            job: "destroy",
            name: destroy.to_string(),
            why: "it needs snapshot=tree-walk".into(),
        });
    }
    Ok(Mechanisms { create, destroy, snapshot })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(tracing: bool, kprobes: bool, tree_walk: bool, functions: &[&str]) -> Facts {
        Facts {
            tracing,
            kprobes,
            tree_walk,
            listns: false,
            functions: functions.iter().map(|f| f.to_string()).collect(),
        }
    }

    fn pick(f: &Facts) -> (String, String, String) {
        let m = select(f, &Overrides::default()).unwrap();
        (m.create.to_string(), m.destroy.to_string(), m.snapshot.to_string())
    }

    fn triple(a: &str, b: &str, c: &str) -> (String, String, String) {
        (a.into(), b.into(), c.into())
    }

    #[test]
    fn best_per_kernel() {
        // This project's 6.18 machines: no TRACING, no kprobes.
        assert_eq!(
            pick(&facts(false, false, true, &HOOKED_FUNCTIONS)),
            triple("tracepoints", "tree-walk", "tree-walk")
        );
        // 6.18+ with TRACING.
        assert_eq!(
            pick(&facts(true, true, true, &HOOKED_FUNCTIONS)),
            triple("fexit-ns-tree", "fentry-ns-tree", "tree-walk")
        );
        // 6.1/6.12 with TRACING and kprobes.
        let old = &HOOKED_FUNCTIONS[2..];
        assert_eq!(pick(&facts(true, true, false, old)), triple("fexit-constructors", "fentry-free-inum", "proc"));
        // kprobes only.
        assert_eq!(pick(&facts(false, true, false, old)), triple("kprobe-constructors", "kprobe-free-inum", "proc"));
        // Nothing but tracepoints before 6.18.
        assert_eq!(pick(&facts(false, false, false, old)), triple("tracepoints", "proc-rescan", "proc"));
        // An inlined constructor rules the constructor hooks out, not the destroy hook.
        let no_time = facts(true, true, false, &["proc_free_inum", "copy_net_ns"]);
        assert_eq!(pick(&no_time), triple("tracepoints", "fentry-free-inum", "proc"));
    }

    #[test]
    fn forced_mechanisms() {
        let f = facts(true, true, false, &HOOKED_FUNCTIONS[2..]);
        let o = Overrides::parse(&["destroy=proc-rescan".into(), "create=kprobe-constructors".into()]).unwrap();
        let m = select(&f, &o).unwrap();
        assert_eq!(
            (m.create, m.destroy, m.snapshot),
            (Create::KprobeConstructors, Destroy::ProcRescan, Snapshot::Proc)
        );
        let o = Overrides::parse(&["snapshot=tree-walk".into()]).unwrap();
        let e = select(&f, &o).unwrap_err().to_string();
        assert!(e.contains("tree-walk for snapshot is not available") && e.contains("6.18"), "{e}");
        let o = Overrides::parse(&["destroy=fentry-ns-tree".into()]).unwrap();
        assert!(select(&f, &o).unwrap_err().to_string().contains("__ns_tree_remove is not hookable"));
        let f = facts(false, false, true, &HOOKED_FUNCTIONS);
        let o = Overrides::parse(&["create=fexit-ns-tree".into()]).unwrap();
        assert!(select(&f, &o).unwrap_err().to_string().contains("TRACING"));
        let o = Overrides::parse(&["snapshot=proc".into(), "destroy=tree-walk".into()]).unwrap();
        let e = select(&f, &o).unwrap_err().to_string();
        assert!(e.contains("needs snapshot=tree-walk"), "{e}");
        // Forcing /proc snapshots on a tree-walk kernel makes deaths re-scan based.
        let o = Overrides::parse(&["snapshot=proc".into()]).unwrap();
        let m = select(&f, &o).unwrap();
        assert_eq!((m.destroy, m.snapshot), (Destroy::ProcRescan, Snapshot::Proc));
    }

    #[test]
    fn override_syntax() {
        assert!(matches!(Overrides::parse(&["proc".into()]), Err(MechanismError::Syntax(_))));
        assert!(matches!(Overrides::parse(&["events=proc".into()]), Err(MechanismError::Syntax(_))));
        let e = Overrides::parse(&["destroy=magic".into()]).unwrap_err().to_string();
        assert!(e.contains("fentry-ns-tree, fentry-free-inum, kprobe-free-inum, tree-walk, proc-rescan"), "{e}");
        assert_eq!(Destroy::KprobeFreeInum.to_string(), "kprobe-free-inum");
    }

    #[test]
    fn destroy_names_are_the_ones_mechanism_and_doctor_print() {
        use clap::ValueEnum;
        for d in Destroy::value_variants() {
            assert_eq!(d.name(), d.to_string(), "--mechanism destroy={} parses back", d.name());
            assert_eq!(Destroy::from_str(d.name(), false), Ok(*d));
        }
        assert_eq!(Destroy::ProcRescan.name(), "proc-rescan");
    }

    #[test]
    fn only_kernel_hooks_report_every_death() {
        let exact: Vec<Destroy> = [
            Destroy::FentryNsTree,
            Destroy::FentryFreeInum,
            Destroy::KprobeFreeInum,
            Destroy::TreeWalk,
            Destroy::ProcRescan,
        ]
        .into_iter()
        .filter(|d| d.is_exact_hook())
        .collect();
        assert_eq!(exact, [Destroy::FentryNsTree, Destroy::FentryFreeInum, Destroy::KprobeFreeInum]);
    }

    #[test]
    fn listns_is_the_snapshot_where_the_walk_cannot_run() {
        let mut f = facts(true, false, false, &HOOKED_FUNCTIONS);
        f.listns = true;
        assert_eq!(pick(&f).2, "listns");
        f.tree_walk = true;
        assert_eq!(pick(&f).2, "tree-walk", "the walk first");
        let forced = Overrides::parse(&["snapshot=listns".into()]).unwrap();
        assert_eq!(select(&f, &forced).unwrap().snapshot, Snapshot::Listns);
        f.listns = false;
        let err = select(&f, &forced).unwrap_err();
        assert!(err.to_string().contains("needs 6.19+"), "{err}");
    }
}
