//! The fd walk: every open nsfs file of every process, read from each
//! thread-group leader's file table. A process holding a namespace by an
//! fd is found here without listing and `readlink`ing every
//! `/proc/PID/fd/N` (most of a /proc snapshot's kernel time), including
//! fds opened through a bind-mount path, which /proc shows as that path.
//! So is every socket whose net namespace is not its process's own: the
//! one link to a netns only a socket keeps, read here from the socket
//! itself (SIOCGSKNS, the /proc way, opens the namespace and on 6.19+
//! makes an inactive one active again).
//!
//! Like the task walk, a run starts at the caller's group leader, follows
//! `init_task.tasks` and ends with the leader itself. One loop iteration
//! does one thing: move to the next task, load one word of its
//! `open_fds` bitmap, or look at one open fd. A run visits at most
//! `budget` iterations and saves (task, next fd) as its cursor, so a
//! process with 100,000 fds or a full ring buffer resumes exactly where
//! it stopped. Blind spot (as /proc's leader-only `fd` listing): a thread
//! that unshared its file table (CLONE_FILES).
//!
//! # Safety
//! The repeated `unsafe` here is one pattern: map values (the walk state,
//! ring reservations) through pointers from lookups or reservations checked
//! for null, valid until the program returns; `bpf_get_current_task` is
//! always valid in a program. Kernel memory is read only through
//! `read.rs`.

use aya_ebpf::{
    helpers::bpf_get_current_task,
    macros::{map, raw_tracepoint},
    maps::PerCpuArray,
    programs::RawTracePointContext,
};
use nstrace_common::{
    config::ABSENT,
    event::{EventKind, NsFdRecord, WALK_STATE_FDS, fd_via, walk_flags, walk_status},
    ns::{NSFS_MAGIC, NsType, SOCKFS_MAGIC},
};

use super::{budget, fresh_step, report, reset, run_loop, step_of};
use crate::{
    maps::{WALK_FDS, WALK_STATE, config},
    read::{header, ptr_at, u32_at, u64_at},
};

/// `CLONE_NEWNET`: the type of a socket's namespace.
const CLONE_NEWNET: u32 = 0x4000_0000;

/// Cursor value of `resume_fd`: the cursor's task is done, go on with the next.
const NEXT_TASK: u32 = u32::MAX;

#[raw_tracepoint]
pub fn fd_walk(_ctx: RawTracePointContext) -> i32 {
    let (status, emitted) = try_fd_walk();
    report(WALK_STATE_FDS, status, emitted);
    if let Some(state) = WALK_STATE.get_ptr_mut(WALK_STATE_FDS) {
        unsafe { (*state).flags = if sockets_readable() { walk_flags::SOCKETS } else { 0 } };
    }
    0
}

/// This CPU's run state (see [`run_loop`]).
#[map]
static FD_STEP: PerCpuArray<FdStep> = PerCpuArray::with_max_entries(1, 0);

/// State of one run, shared with the per-iteration callback.
#[repr(C)]
struct FdStep {
    /// List node of the task in progress (or of the last one finished).
    pos: u64,
    start: u64,
    list_off: u64,
    /// The task in progress; 0 between tasks.
    task: u64,
    /// Its `fdtable.fd` array and `open_fds` bitmap.
    fds: u64,
    open_fds: u64,
    /// Bits of the current bitmap word not looked at yet.
    word: u64,
    /// The task in progress's last file found not to be nsfs (its fds
    /// 1 and 2 are often one file).
    other_file: u64,
    /// Superblocks known: nsfs's one, and the last other one seen (most
    /// fds of most processes are on a few filesystems). A superblock
    /// outlives the files on it, so this holds for the whole run.
    nsfs_sb: u64,
    other_sb: u64,
    /// sockfs's superblock, once seen.
    sock_sb: u64,
    /// The task in progress's own net namespace (`struct net`): its
    /// sockets there say nothing its task holder does not.
    task_net: u64,
    /// Fd number of the current word's bit 0.
    base: u32,
    next_word: u32,
    words: u32,
    pid: u32,
    /// Whether the task in progress is the start one (the walk's last).
    last: u32,
    emitted: u32,
    status: u32,
    /// Whether socket files are looked into (the kernel has every offset).
    sockets: u32,
}

fn try_fd_walk() -> (u32, u32) {
    let Some(state) = WALK_STATE.get_ptr_mut(WALK_STATE_FDS) else {
        return (walk_status::UNSUPPORTED, 0);
    };
    let list_off = config!(offsets.task_tasks);
    let leader_off = config!(offsets.task_group_leader);
    if list_off == ABSENT
        || leader_off == ABSENT
        || config!(offsets.task_files) == ABSENT
        || config!(offsets.files_fdt) == ABSENT
        || config!(offsets.fdtable_open_fds) == ABSENT
        || config!(offsets.fdtable_fd) == ABSENT
        || config!(offsets.inode_i_private) == ABSENT
    {
        return (walk_status::UNSUPPORTED, 0);
    }
    let budget = budget(state);
    let init = FdStep {
        pos: 0,
        start: 0,
        list_off: list_off as u64,
        task: 0,
        fds: 0,
        open_fds: 0,
        word: 0,
        other_file: 0,
        nsfs_sb: 0,
        other_sb: 0,
        sock_sb: 0,
        task_net: 0,
        base: 0,
        next_word: 0,
        words: 0,
        pid: 0,
        last: 0,
        emitted: 0,
        status: walk_status::MORE,
        sockets: sockets_readable() as u32,
    };
    let Some(s) = fresh_step(&FD_STEP, init) else {
        return (walk_status::UNSUPPORTED, 0);
    };
    let node = unsafe { (*state).cursor_node };
    if node == 0 {
        let leader = ptr_at(unsafe { bpf_get_current_task() }, leader_off);
        if leader == 0 {
            return (walk_status::NO_START, 0);
        }
        s.pos = leader + list_off as u64;
        s.start = s.pos;
        unsafe { (*state).start_node = s.pos };
    } else {
        let task = node - list_off as u64;
        if u32_at(task, config!(offsets.task_pid)) as u64 != unsafe { (*state).cursor_id } {
            reset(state);
            return (walk_status::RESTART, 0);
        }
        s.pos = node;
        s.start = unsafe { (*state).start_node };
        s.last = (node == s.start) as u32;
        let resume = unsafe { (*state).resume_fd };
        if resume != NEXT_TASK {
            load_task(s, task, resume);
        } else if s.last != 0 {
            reset(state);
            return (walk_status::COMPLETE, 0);
        }
    }
    run_loop(budget, fd_step, s);
    if s.status != walk_status::MORE {
        reset(state);
        return (s.status, s.emitted);
    }
    let resume = if s.task == 0 {
        NEXT_TASK
    } else if s.word != 0 {
        s.base + bit_index(s.word & s.word.wrapping_neg())
    } else {
        s.next_word * 64
    };
    unsafe {
        (*state).cursor_node = s.pos;
        (*state).cursor_id = u32_at(s.pos - s.list_off, config!(offsets.task_pid)) as u64;
        (*state).resume_fd = resume;
    }
    (walk_status::MORE, s.emitted)
}

/// Whether the kernel has what reading a socket's net namespace takes.
#[inline(always)]
fn sockets_readable() -> bool {
    config!(offsets.file_private_data) != ABSENT
        && config!(offsets.socket_sk) != ABSENT
        && config!(offsets.sock_net) != ABSENT
        && config!(offsets.inode_i_ino) != ABSENT
        && config!(offsets.ns_common_in[NsType::Net as usize]) != ABSENT
}

/// Makes `task` the one in progress, from fd `from` on.
#[inline(always)]
fn load_task(s: &mut FdStep, task: u64, from: u32) {
    if s.sockets != 0 {
        s.task_net = ptr_at(ptr_at(task, config!(offsets.task_nsproxy)), config!(offsets.nsproxy_net));
    }
    let files = ptr_at(task, config!(offsets.task_files));
    let fdt = ptr_at(files, config!(offsets.files_fdt));
    let max_fds = u32_at(fdt, config!(offsets.fdtable_max_fds));
    s.task = task;
    s.other_file = 0;
    s.pid = u32_at(task, config!(offsets.task_tgid));
    s.fds = ptr_at(fdt, config!(offsets.fdtable_fd));
    s.open_fds = ptr_at(fdt, config!(offsets.fdtable_open_fds));
    s.words = max_fds.div_ceil(64);
    s.next_word = from / 64;
    s.word = 0;
    if from % 64 != 0 && s.next_word < s.words {
        s.word = u64_at(s.open_fds + s.next_word as u64 * 8, 0) & (u64::MAX << (from % 64));
        s.base = s.next_word * 64;
        s.next_word += 1;
    }
}

/// Index of the one set bit of `low` (BPF has no ctz): a de Bruijn
/// multiply and a table lookup. Branch-free on purpose: six `if`s gave the
/// verifier 64 differently-known values to carry through the rest of the
/// step, and 7.x's verifier gave up (over a million instructions).
#[inline(always)]
fn bit_index(low: u64) -> u32 {
    let slot = (low.wrapping_mul(DE_BRUIJN) >> 58) as usize & 63;
    // SAFETY: `slot` < 64, the table's length.
    unsafe { *BIT_OF_SLOT.get_unchecked(slot) as u32 }
}

const DE_BRUIJN: u64 = 0x022f_dd63_cc95_386d;

/// Bit position for each value of the top 6 bits of `bit * DE_BRUIJN`.
static BIT_OF_SLOT: [u8; 64] = {
    let mut table = [0u8; 64];
    let mut bit = 0;
    while bit < 64 {
        table[((1u64 << bit).wrapping_mul(DE_BRUIJN) >> 58) as usize] = bit as u8;
        bit += 1;
    }
    table
};

/// One step; returns 1 to stop the loop.
#[inline(never)]
unsafe extern "C" fn fd_step(_index: u64, ctx: *mut core::ffi::c_void) -> i64 {
    let s = unsafe { step_of::<FdStep>(ctx) };
    if s.task == 0 {
        let next = ptr_at(s.pos, 0); // list_head.next
        if next == 0 {
            s.status = walk_status::RESTART;
            return 1;
        }
        s.pos = next;
        s.last = (next == s.start) as u32;
        load_task(s, next - s.list_off, 0);
        return 0;
    }
    if s.word == 0 {
        if s.next_word >= s.words {
            if s.last != 0 {
                s.status = walk_status::COMPLETE;
                return 1;
            }
            s.task = 0;
            return 0;
        }
        s.word = u64_at(s.open_fds + s.next_word as u64 * 8, 0);
        s.base = s.next_word * 64;
        s.next_word += 1;
        return 0;
    }
    let fd = s.base + bit_index(s.word & s.word.wrapping_neg());
    if !emit_if_holder(s, fd) {
        // The ring is full: the cursor keeps this fd for the next run.
        return 1;
    }
    s.word &= s.word - 1;
    0
}

/// Emits a record when fd `fd` of the task in progress is an nsfs file
/// or a socket of another net namespace; false when the ring buffer is full.
#[inline(always)]
fn emit_if_holder(s: &mut FdStep, fd: u32) -> bool {
    let file = ptr_at(s.fds + fd as u64 * 8, 0);
    if file == 0 || file == s.other_file {
        return true;
    }
    let inode = ptr_at(file, config!(offsets.file_f_inode));
    let sb = ptr_at(inode, config!(offsets.inode_i_sb));
    if sb == 0 || sb == s.other_sb {
        s.other_file = file;
        return true;
    }
    if sb != s.nsfs_sb && sb != s.sock_sb {
        match u64_at(sb, config!(offsets.sb_s_magic)) as u32 {
            NSFS_MAGIC => s.nsfs_sb = sb,
            SOCKFS_MAGIC if s.sockets != 0 => s.sock_sb = sb,
            _ => {
                s.other_sb = sb;
                s.other_file = file;
                return true;
            }
        }
    }
    if sb == s.nsfs_sb {
        let common = ptr_at(inode, config!(offsets.inode_i_private));
        return emit(s, fd, common, u32_at(common, config!(offsets.ns_type)), fd_via::NSFS, 0);
    }
    // struct socket *sock = file->private_data; sock->sk->__sk_common.skc_net.net
    let sk = ptr_at(ptr_at(file, config!(offsets.file_private_data)), config!(offsets.socket_sk));
    let net = if sk == 0 { 0 } else { ptr_at(sk, config!(offsets.sock_net)) };
    if net == 0 || net == s.task_net {
        s.other_file = file;
        return true;
    }
    let common = net + config!(offsets.ns_common_in[NsType::Net as usize]) as u64;
    emit(s, fd, common, CLONE_NEWNET, fd_via::SOCKET, u64_at(inode, config!(offsets.inode_i_ino)))
}

/// One fd record of the task in progress for the namespace at `common`;
/// false when the ring buffer is full.
#[inline(always)]
fn emit(s: &mut FdStep, fd: u32, common: u64, ns_flag: u32, via: u32, socket_ino: u64) -> bool {
    let Some(mut entry) = WALK_FDS.reserve::<NsFdRecord>(0) else {
        // Not a loss: the run ends here and the next resumes at this entry.
        return false;
    };
    let e = entry.as_mut_ptr();
    unsafe {
        (*e).header = header::<NsFdRecord>(EventKind::NsFd, s.pid, 0);
        (*e).fd = fd;
        (*e).ns_flag = ns_flag;
        (*e).inum = u32_at(common, config!(offsets.ns_inum));
        (*e).via = via;
        (*e).id = u64_at(common, config!(offsets.ns_id));
        (*e).socket_ino = socket_ino;
    }
    entry.submit(0);
    s.emitted += 1;
    true
}
