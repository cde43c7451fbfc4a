//! Fills [`KernelOffsets`] from the running kernel's BTF.
//!
//! Several of these structs use `__randomize_layout`, so nothing here is
//! hard-coded: every offset comes from BTF. Fields that older kernels (or
//! kernels without CONFIG_TIME_NS / CONFIG_CGROUPS) lack are [`ABSENT`].

use crate::kernel::btf::{Btf, BtfError};
use nstrace_common::config::{ABSENT, KernelOffsets};
use nstrace_common::ns::{NS_TYPES, NsType};

#[derive(Debug, thiserror::Error)]
pub enum OffsetsError {
    #[error("kernel BTF lacks {ty}.{member}, which nstrace needs")]
    Missing {
        ty: &'static str,
        member: &'static str,
        #[source]
        source: BtfError,
    },
}

/// Kernel struct holding each namespace type, indexed by `NsType as usize`,
/// and the member that points at the owning user namespace.
const NS_STRUCTS: [(&str, &str); NS_TYPES] = [
    ("net", "user_ns"),
    ("uts_namespace", "user_ns"),
    ("ipc_namespace", "user_ns"),
    ("pid_namespace", "user_ns"),
    ("user_namespace", "parent"),
    ("mnt_namespace", "user_ns"),
    ("cgroup_namespace", "user_ns"),
    ("time_namespace", "user_ns"),
];

pub fn kernel_offsets(btf: &Btf) -> Result<KernelOffsets, OffsetsError> {
    let req = |ty: &'static str, member: &'static str| {
        btf.member_offset(ty, member).map_err(|source| OffsetsError::Missing { ty, member, source })
    };
    // Absent members are fine; a malformed or unaligned one is still an error.
    let opt = |ty: &'static str, member: &'static str| match btf.member_offset(ty, member) {
        Ok(off) => Ok(off),
        Err(BtfError::NoSuchType(_) | BtfError::NoSuchMember { .. }) => Ok(ABSENT),
        Err(source) => Err(OffsetsError::Missing { ty, member, source }),
    };

    let mut o = KernelOffsets::absent();
    o.task_pid = req("task_struct", "pid")?;
    o.task_tgid = req("task_struct", "tgid")?;
    o.task_comm = req("task_struct", "comm")?;
    o.task_nsproxy = req("task_struct", "nsproxy")?;
    o.task_real_cred = req("task_struct", "real_cred")?;
    o.task_thread_pid = req("task_struct", "thread_pid")?;
    o.task_tasks = req("task_struct", "tasks")?;
    o.task_real_parent = req("task_struct", "real_parent")?;
    o.task_group_leader = req("task_struct", "group_leader")?;
    o.task_flags = opt("task_struct", "flags")?;
    // Only used to find multi-threaded processes in the task walk: optional.
    o.task_signal = opt("task_struct", "signal")?;
    o.signal_nr_threads = opt("signal_struct", "nr_threads")?;
    // Only used to name the kind of fd setns(2) got: optional.
    o.task_files = opt("task_struct", "files")?;
    o.files_fdt = opt("files_struct", "fdt")?;
    o.fdtable_max_fds = opt("fdtable", "max_fds")?;
    o.fdtable_fd = opt("fdtable", "fd")?;
    // The fd walk (nsfs fds held by processes) also needs these two.
    o.fdtable_open_fds = opt("fdtable", "open_fds")?;
    o.inode_i_private = opt("inode", "i_private")?;
    o.file_f_inode = opt("file", "f_inode")?;
    o.inode_i_sb = opt("inode", "i_sb")?;
    o.sb_s_magic = opt("super_block", "s_magic")?;
    // And for sockets held in another net namespace than their process's.
    o.file_private_data = opt("file", "private_data")?;
    o.socket_sk = opt("socket", "sk")?;
    o.sock_net = opt("sock", "__sk_common.skc_net.net")?;
    o.inode_i_ino = opt("inode", "i_ino")?;
    // Only for the start of a cleanup_net run (dying network namespaces).
    o.work_func = opt("work_struct", "func")?;
    // Only used to copy a creator's command line: optional.
    o.task_mm = opt("task_struct", "mm")?;
    o.mm_arg_start = opt("mm_struct", "arg_start")?;
    o.mm_arg_end = opt("mm_struct", "arg_end")?;
    o.nsproxy_count = opt("nsproxy", "count")?;
    o.nsproxy_size = btf.struct_size("nsproxy").unwrap_or(ABSENT);
    // Only used to read one /proc/PID/cgroup per cgroup: optional.
    o.task_cgroups = opt("task_struct", "cgroups")?;
    o.css_set_dfl_cgrp = opt("css_set", "dfl_cgrp")?;
    o.cgroup_kn = opt("cgroup", "kn")?;
    o.kernfs_node_id = opt("kernfs_node", "id")?;
    o.cred_user_ns = req("cred", "user_ns")?;

    o.nsproxy_uts = req("nsproxy", "uts_ns")?;
    o.nsproxy_ipc = req("nsproxy", "ipc_ns")?;
    o.nsproxy_mnt = req("nsproxy", "mnt_ns")?;
    o.nsproxy_pid_for_children = req("nsproxy", "pid_ns_for_children")?;
    o.nsproxy_net = req("nsproxy", "net_ns")?;
    o.nsproxy_time = opt("nsproxy", "time_ns")?;
    o.nsproxy_time_for_children = opt("nsproxy", "time_ns_for_children")?;
    o.nsproxy_cgroup = opt("nsproxy", "cgroup_ns")?;

    o.pid_level = req("pid", "level")?;
    o.pid_numbers = req("pid", "numbers")?;
    o.upid_size =
        btf.struct_size("upid").map_err(|source| OffsetsError::Missing { ty: "upid", member: "(size)", source })?;
    o.upid_ns = req("upid", "ns")?;
    o.upid_nr = req("upid", "nr")?;

    o.ns_type = opt("ns_common", "ns_type")?;
    o.ns_inum = req("ns_common", "inum")?;
    // Renamed from `count` to `__ns_ref` in 6.18.
    o.ns_ref = match opt("ns_common", "__ns_ref")? {
        ABSENT => req("ns_common", "count")?,
        off => off,
    };
    o.ns_id = opt("ns_common", "ns_id")?;
    // The per-type list each namespace is on: 6.18 `ns_list_node`; 6.19+
    // `ns_tree_node.ns_list_entry` (inside an anonymous struct), with
    // `__ns_ref_active`. Member names decide; a kernel with ns_id but
    // neither is an unknown layout and is not walked (see `ns_tree_layout`).
    o.ns_list_node = opt("ns_common", "ns_list_node")?;
    o.ns_ref_active = opt("ns_common", "__ns_ref_active")?;
    if o.ns_list_node == ABSENT {
        o.ns_list_node = opt("ns_common", "ns_tree_node.ns_list_entry")?;
    }
    // 6.18's static per-type `struct ns_tree`, whose seqlock counts adds
    // and removes (the change check). 6.19+ has one lock for every type and
    // no `struct ns_tree` of this shape: no change check there.
    o.ns_tree_list = opt("ns_tree", "ns_list")?;
    o.ns_tree_seq = opt("ns_tree", "ns_tree_lock.seqcount.seqcount.sequence")?;
    o.ns_tree_type = opt("ns_tree", "type")?;

    for t in NsType::ALL {
        let (ty, owner) = NS_STRUCTS[t as usize];
        // Cgroup and time namespaces depend on kernel config.
        let optional = matches!(t, NsType::Cgroup | NsType::Time);
        let get = |ty, m| if optional { opt(ty, m) } else { req(ty, m) };
        o.ns_common_in[t as usize] = get(ty, "ns")?;
        o.owner_in[t as usize] = get(ty, owner)?;
    }

    charge_offsets(btf, &mut o, &opt)?;

    o.pid_ns_parent = req("pid_namespace", "parent")?;
    o.pid_ns_level = req("pid_namespace", "level")?;
    o.user_ns_parent = req("user_namespace", "parent")?;
    o.user_ns_level = req("user_namespace", "level")?;
    Ok(o)
}

/// The `enum ucount_type` names of each namespace type's counter, indexed by `NsType`.
const UCOUNT_NAMES: [&str; NS_TYPES] = [
    "UCOUNT_NET_NAMESPACES",
    "UCOUNT_UTS_NAMESPACES",
    "UCOUNT_IPC_NAMESPACES",
    "UCOUNT_PID_NAMESPACES",
    "UCOUNT_USER_NAMESPACES",
    "UCOUNT_MNT_NAMESPACES",
    "UCOUNT_CGROUP_NAMESPACES",
    "UCOUNT_TIME_NAMESPACES",
];

/// Where the kernel keeps what each namespace is charged to (all optional:
/// without them refusals and `limits` say less, nothing else changes).
fn charge_offsets(
    btf: &Btf,
    o: &mut KernelOffsets,
    opt: &dyn Fn(&'static str, &'static str) -> Result<u32, OffsetsError>,
) -> Result<(), OffsetsError> {
    o.task_cred = opt("task_struct", "cred")?;
    // x86_64's first syscall argument register; other architectures name it
    // otherwise (absent: a refused clone's flags stay unknown).
    o.pt_regs_arg0 = opt("pt_regs", "di")?;
    o.cred_euid = opt("cred", "euid")?;
    o.cred_ucounts = opt("cred", "ucounts")?;
    o.ucounts_ns = opt("ucounts", "ns")?;
    o.ucounts_uid = opt("ucounts", "uid")?;
    let counters = opt("ucounts", "ucount")?;
    let limits = opt("user_namespace", "ucount_max")?;
    for t in NsType::ALL {
        let i = t as usize;
        o.ucounts_in[i] = opt(NS_STRUCTS[i].0, "ucounts")?;
        // atomic_long_t and long: 8 bytes on the 64-bit kernels nstrace runs on.
        let index = btf.enumerator(UCOUNT_NAMES[i]).ok().flatten().and_then(|v| u32::try_from(v).ok());
        let at = |base: u32| match index {
            Some(index) if base != ABSENT => base.checked_add(index * 8).unwrap_or(ABSENT),
            _ => ABSENT,
        };
        o.ucount_of[i] = at(counters);
        o.ucount_max_of[i] = at(limits);
    }
    Ok(())
}

/// True when the kernel has the per-type namespace lists (6.18+) that the
/// tree walk follows.
pub fn has_ns_tree(o: &KernelOffsets) -> bool {
    ns_tree_layout(o).is_some()
}

/// Which namespace-list layout the kernel has, as doctor names it; None
/// when the walk cannot run (before 6.18, or a layout nstrace does not know).
pub fn ns_tree_layout(o: &KernelOffsets) -> Option<&'static str> {
    if o.ns_id == ABSENT || o.ns_list_node == ABSENT || o.ns_type == ABSENT {
        return None;
    }
    Some(if o.ns_ref_active == ABSENT {
        "6.18 layout: ns_common.ns_list_node"
    } else {
        "6.19+ layout: ns_common.ns_tree_node.ns_list_entry, __ns_ref_active"
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::btf::tests::Builder;

    /// A fake pre-6.18 kernel: `ns_common.count`, no ns_id/ns_list_node/ns_type,
    /// no time or cgroup namespaces. Members sit 8 bytes apart.
    fn old_kernel(skip: Option<(&str, &str)>) -> Btf {
        fake_kernel(skip, |_, _| None)
    }

    /// A fake 6.19+ kernel: `ns_common { inum, ns_type, __ns_ref, struct {
    /// ns_id, __ns_ref_active, ns_tree_node { ns_node, ns_list_entry } } }`
    /// (without the list entry: a layout nstrace does not know).
    fn kernel_6_19(list: bool) -> Btf {
        fake_kernel(None, |b, int| {
            let members: &[(&str, u32, u32)] =
                if list { &[("ns_node", int, 0), ("ns_list_entry", int, 192)] } else { &[("ns_node", int, 0)] };
            let node = b.strukt("ns_tree_node", 40, members);
            let anon =
                b.strukt("", 64, &[("ns_id", int, 0), ("__ns_ref_active", int, 64), ("ns_tree_node", node, 128)]);
            Some(b.strukt(
                "ns_common",
                96,
                &[("inum", int, 0), ("ns_type", int, 32), ("__ns_ref", int, 64), ("", anon, 256)],
            ))
        })
    }

    /// The structs every kernel has, `ns_common` from `ns_common` when it
    /// gives one, else the pre-6.18 one.
    fn fake_kernel(skip: Option<(&str, &str)>, ns_common: impl FnOnce(&mut Builder, u32) -> Option<u32>) -> Btf {
        let mut b = Builder::new();
        let int = b.int("int", 4);
        let custom = ns_common(&mut b, int).is_some();
        let structs: &[(&str, &[&str])] = &[
            (
                "task_struct",
                &["pid", "tgid", "comm", "nsproxy", "real_cred", "thread_pid", "tasks", "real_parent", "group_leader"],
            ),
            ("cred", &["uid", "user_ns"]),
            ("nsproxy", &["count", "uts_ns", "ipc_ns", "mnt_ns", "pid_ns_for_children", "net_ns"]),
            ("pid", &["count", "level", "numbers"]),
            ("upid", &["nr", "ns"]),
            ("ns_common", &["stashed", "ops", "inum", "count"]),
            ("net", &["passive", "user_ns", "ns"]),
            ("uts_namespace", &["name", "user_ns", "ns"]),
            ("ipc_namespace", &["ids", "user_ns", "ns"]),
            ("pid_namespace", &["idr", "level", "parent", "user_ns", "ns"]),
            ("user_namespace", &["uid_map", "parent", "level", "ns"]),
            ("mnt_namespace", &["ns", "root", "user_ns"]),
        ];
        for (name, members) in structs {
            if custom && *name == "ns_common" {
                continue;
            }
            let ms: Vec<(&str, u32, u32)> = members
                .iter()
                .filter(|m| skip != Some((name, m)))
                .enumerate()
                .map(|(i, m)| (*m, int, i as u32 * 64))
                .collect();
            b.strukt(name, members.len() as u32 * 8, &ms);
        }
        Btf::parse(b.build()).unwrap()
    }

    #[test]
    fn old_kernel_falls_back_and_marks_absent() {
        let o = kernel_offsets(&old_kernel(None)).unwrap();
        assert_eq!(o.ns_ref, 24, "falls back to ns_common.count");
        assert_eq!((o.ns_id, o.ns_list_node, o.ns_type), (ABSENT, ABSENT, ABSENT));
        assert!(!has_ns_tree(&o));
        assert_eq!(o.nsproxy_time, ABSENT);
        assert_eq!(o.ns_common_in[NsType::Time as usize], ABSENT);
        assert_eq!(o.owner_in[NsType::Cgroup as usize], ABSENT);
        assert_eq!(o.ns_common_in[NsType::Mnt as usize], 0);
        assert_eq!(o.owner_in[NsType::User as usize], 8);
        assert_eq!(o.owner_in[NsType::Pid as usize], 24);
        assert_eq!(o.upid_size, 16);
        assert_eq!(o.task_real_parent, 56);
        assert_eq!(o.task_group_leader, 64);
    }

    #[test]
    fn the_6_19_layout_is_found_by_member_names() {
        let o = kernel_offsets(&kernel_6_19(true)).unwrap();
        assert_eq!((o.ns_id, o.ns_ref_active, o.ns_list_node, o.ns_type, o.ns_ref), (32, 40, 32 + 16 + 24, 4, 8));
        assert!(ns_tree_layout(&o).is_some_and(|l| l.starts_with("6.19+")), "{o:?}");
        // ns_id without a list member nstrace knows: refused, not misread.
        let o = kernel_offsets(&kernel_6_19(false)).unwrap();
        assert_eq!((o.ns_id, o.ns_list_node), (32, ABSENT));
        assert_eq!(ns_tree_layout(&o), None);
        assert!(!has_ns_tree(&o));
    }

    #[test]
    fn missing_required_member_is_named() {
        let err = kernel_offsets(&old_kernel(Some(("pid_namespace", "level")))).unwrap_err();
        let OffsetsError::Missing { ty, member, .. } = &err;
        assert_eq!((*ty, *member), ("pid_namespace", "level"));
        assert!(err.to_string().contains("pid_namespace.level"), "{err}");
        let err = kernel_offsets(&old_kernel(Some(("ns_common", "count")))).unwrap_err();
        assert!(err.to_string().contains("ns_common.count"), "{err}");
    }

    #[test]
    fn real_kernel_offsets() {
        let btf = match Btf::from_sys_fs() {
            Ok(b) => b,
            Err(e) => {
                crate::test_skip("real_kernel_offsets", &format!("no kernel BTF ({e})"));
                return;
            }
        };
        let o = kernel_offsets(&btf).unwrap();
        eprintln!("{o:?}");
        let size = |s| btf.struct_size(s).unwrap();
        for off in [
            o.task_pid,
            o.task_tgid,
            o.task_comm,
            o.task_nsproxy,
            o.task_real_cred,
            o.task_thread_pid,
            o.task_tasks,
            o.task_real_parent,
        ] {
            assert!(off < size("task_struct"));
        }
        assert_eq!(o.task_tgid, o.task_pid + 4, "pid and tgid are adjacent pid_t");
        let mut nsp = vec![o.nsproxy_uts, o.nsproxy_ipc, o.nsproxy_mnt, o.nsproxy_pid_for_children, o.nsproxy_net];
        nsp.extend(
            [o.nsproxy_time, o.nsproxy_time_for_children, o.nsproxy_cgroup].into_iter().filter(|&x| x != ABSENT),
        );
        let n = nsp.len();
        nsp.sort();
        nsp.dedup();
        assert_eq!(nsp.len(), n, "nsproxy members distinct");
        assert!(nsp.iter().all(|&x| x < size("nsproxy") && x % 8 == 0));
        assert!(o.upid_ns + 8 <= o.upid_size);
        assert!(o.pid_level < o.pid_numbers);
        assert!(o.ns_inum < size("ns_common") && o.ns_ref < size("ns_common"));
        for t in NsType::ALL {
            let (ty, _) = NS_STRUCTS[t as usize];
            if o.ns_common_in[t as usize] == ABSENT {
                continue;
            }
            assert!(o.ns_common_in[t as usize] + size("ns_common") <= size(ty), "{ty}");
            assert!(o.owner_in[t as usize] < size(ty), "{ty}");
            assert_ne!(o.owner_in[t as usize], o.ns_common_in[t as usize]);
        }
        assert!(o.ns_common_in[NsType::Net as usize] + o.ns_inum < size("net"));
        assert!(o.pid_ns_parent < size("pid_namespace") && o.user_ns_level < size("user_namespace"));
        if btf.has_func("__ns_tree_add_raw") {
            assert!(has_ns_tree(&o), "6.18+ kernel without ns tree offsets: {o:?}");
            // ns_id and the list node share the anonymous union after __ns_ref.
            assert!(o.ns_id > o.ns_ref && o.ns_list_node > o.ns_id);
        }
    }
}
