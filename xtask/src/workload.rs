//! Namespace workloads for benchmarks: processes holding namespaces, fds
//! holding namespaces, and churn. Children only make async-signal-safe calls.

use std::{ffi::CString, time::Instant};

pub const ALL_NEW: libc::c_int = libc::CLONE_NEWUSER
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWNS
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWPID
    | 0x80; // CLONE_NEWTIME

/// Process groups holding namespaces; killed on drop.
pub struct Held {
    groups: Vec<libc::pid_t>,
}

/// Forks a child in its own process group that runs `child` with the write
/// end of a pipe; returns once the child wrote a byte to it (it is ready),
/// or fails (and kills it) if the child exited first. `child` must only
/// make async-signal-safe calls and never return.
fn fork_when_ready(child: impl FnOnce(i32) -> libc::c_int) -> anyhow::Result<libc::pid_t> {
    let mut ready = [0i32; 2];
    // SAFETY: plain syscalls; the child leaves through _exit.
    unsafe {
        if libc::pipe(ready.as_mut_ptr()) != 0 {
            anyhow::bail!("pipe: {}", std::io::Error::last_os_error());
        }
        let pid = libc::fork();
        if pid == 0 {
            libc::setpgid(0, 0);
            libc::close(ready[0]);
            libc::_exit(child(ready[1]));
        }
        libc::close(ready[1]);
        let mut b = 0u8;
        let n = libc::read(ready[0], (&raw mut b).cast(), 1);
        libc::close(ready[0]);
        if pid < 0 || n != 1 {
            if pid > 0 {
                libc::kill(-pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
            anyhow::bail!("a workload process failed before it was ready");
        }
        Ok(pid)
    }
}

/// Signals readiness on `fd`, then sleeps until killed.
fn ready_and_wait(fd: i32) -> ! {
    // SAFETY: async-signal-safe calls only.
    unsafe {
        libc::write(fd, b"x".as_ptr().cast(), 1);
        loop {
            libc::pause();
        }
    }
}

impl Held {
    /// `units` process pairs, each in 8 new namespaces (the unit's child is
    /// in all eight; its parent in six): about 8 namespaces per unit.
    pub fn processes(units: usize) -> anyhow::Result<Held> {
        let mut held = Held { groups: Vec::with_capacity(units) };
        for _ in 0..units {
            held.groups.push(fork_when_ready(|ready| {
                // SAFETY: async-signal-safe calls only.
                unsafe {
                    if libc::unshare(ALL_NEW) != 0 {
                        return 1;
                    }
                    if libc::fork() == 0 {
                        ready_and_wait(ready);
                    }
                    loop {
                        libc::pause();
                    }
                }
            })?);
        }
        Ok(held)
    }

    /// `count` processes, each in its own new uts and ipc namespaces (2 new
    /// namespaces per process: the snapshot workload).
    pub fn uts_ipc_processes(count: usize) -> anyhow::Result<Held> {
        let mut held = Held { groups: Vec::with_capacity(count) };
        for _ in 0..count {
            held.groups.push(fork_when_ready(|ready| {
                // SAFETY: async-signal-safe calls only.
                if unsafe { libc::unshare(libc::CLONE_NEWUTS | libc::CLONE_NEWIPC) } != 0 {
                    return 1;
                }
                ready_and_wait(ready)
            })?);
        }
        Ok(held)
    }

    /// Processes holding `count` namespaces (uts and ipc alternately: each
    /// type has its own per-user limit, /proc/sys/user/max_*_namespaces) by
    /// open nsfs fds, at most 16,000 per process (the hard fd limit here).
    pub fn fds(count: usize) -> anyhow::Result<Held> {
        const PER_PROCESS: usize = 16_000;
        let uts = CString::new("/proc/self/ns/uts")?;
        let ipc = CString::new("/proc/self/ns/ipc")?;
        let mut held = Held { groups: Vec::new() };
        let mut left = count;
        while left > 0 {
            let n = left.min(PER_PROCESS);
            held.groups.push(fork_when_ready(|ready| {
                // SAFETY: async-signal-safe calls only.
                unsafe {
                    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
                    libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
                    lim.rlim_cur = lim.rlim_max;
                    libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
                    for i in 0..n {
                        let (flag, path) =
                            if i % 2 == 0 { (libc::CLONE_NEWUTS, &uts) } else { (libc::CLONE_NEWIPC, &ipc) };
                        if libc::unshare(flag) != 0 || libc::open(path.as_ptr(), libc::O_RDONLY) < 0 {
                            return 1;
                        }
                    }
                }
                ready_and_wait(ready)
            })?);
            left -= n;
        }
        Ok(held)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        for &g in &self.groups {
            // SAFETY: kill(2) takes no pointers; the pid is our own child.
            unsafe {
                libc::kill(-g, libc::SIGKILL);
                libc::kill(g, libc::SIGKILL);
            }
        }
        for &g in &self.groups {
            // SAFETY: waitpid(2) on our own child; a null status pointer is allowed.
            unsafe { libc::waitpid(g, std::ptr::null_mut(), 0) };
        }
    }
}

/// Plain fork + exit (no namespace change), `n` times; returns the wall time.
pub fn churn_fork(n: usize) -> std::time::Duration {
    churn_unshare(n, -1)
}

/// A thread created and joined, `n` times; returns the wall time.
pub fn churn_threads(n: usize) -> std::time::Duration {
    let start = Instant::now();
    for _ in 0..n {
        let _ = std::thread::spawn(|| {}).join();
    }
    start.elapsed()
}

/// Forks `n` children that unshare `flags` (none if negative) and exit;
/// returns the wall time.
pub fn churn_unshare(n: usize, flags: libc::c_int) -> std::time::Duration {
    let start = Instant::now();
    for _ in 0..n {
        // SAFETY: the child only calls unshare and _exit.
        unsafe {
            let pid = libc::fork();
            if pid == 0 {
                if flags >= 0 {
                    libc::unshare(flags);
                }
                libc::_exit(0);
            }
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
    }
    start.elapsed()
}

/// `rate` fork + unshare(`flags`) + exit a second, for `secs` seconds, in
/// steps of 10 ms (a steady churn rather than a burst); returns how many ran.
pub fn paced_unshare(rate: usize, secs: u64, flags: libc::c_int) -> usize {
    // Steps of 10 ms, or one unshare a step below 100 a second.
    let per_step = (rate / 100).max(1);
    let step = std::time::Duration::from_secs(1) * per_step as u32 / rate.max(1) as u32;
    let start = Instant::now();
    let mut done = 0;
    while start.elapsed() < std::time::Duration::from_secs(secs) {
        let due = start + step * (done / per_step + 1) as u32;
        churn_unshare(per_step, flags);
        done += per_step;
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
    }
    done
}

/// clone3 with CLONE_NEW* flags, `n` times; returns the wall time.
pub fn churn_clone3(n: usize, flags: u64) -> std::time::Duration {
    #[repr(C)]
    #[derive(Default)]
    struct CloneArgs {
        flags: u64,
        pidfd: u64,
        child_tid: u64,
        parent_tid: u64,
        exit_signal: u64,
        stack: u64,
        stack_size: u64,
        tls: u64,
    }
    let args = CloneArgs { flags, exit_signal: libc::SIGCHLD as u64, ..Default::default() };
    let start = Instant::now();
    for _ in 0..n {
        // SAFETY: waitpid(2) on our own child; a null status pointer is allowed.
        unsafe {
            let pid = libc::syscall(libc::SYS_clone3, &args as *const CloneArgs, size_of::<CloneArgs>());
            if pid == 0 {
                libc::_exit(0);
            }
            libc::waitpid(pid as i32, std::ptr::null_mut(), 0);
        }
    }
    start.elapsed()
}

/// setns into a target's net+uts namespaces and back, `n` times, in a child.
pub fn churn_setns(n: usize) -> std::time::Duration {
    let start = Instant::now();
    // SAFETY: unshare(2) takes no pointers.
    unsafe {
        let pid = libc::fork();
        if pid == 0 {
            let own_net = libc::open(c"/proc/self/ns/net".as_ptr(), libc::O_RDONLY);
            let own_uts = libc::open(c"/proc/self/ns/uts".as_ptr(), libc::O_RDONLY);
            libc::unshare(libc::CLONE_NEWNET | libc::CLONE_NEWUTS);
            let new_net = libc::open(c"/proc/self/ns/net".as_ptr(), libc::O_RDONLY);
            let new_uts = libc::open(c"/proc/self/ns/uts".as_ptr(), libc::O_RDONLY);
            for _ in 0..n {
                libc::setns(own_net, libc::CLONE_NEWNET);
                libc::setns(own_uts, libc::CLONE_NEWUTS);
                libc::setns(new_net, libc::CLONE_NEWNET);
                libc::setns(new_uts, libc::CLONE_NEWUTS);
            }
            libc::_exit(0);
        }
        libc::waitpid(pid, std::ptr::null_mut(), 0);
    }
    start.elapsed()
}

/// Small-allocation churn: socket open/close cycles (kmalloc/kfree heavy).
pub fn churn_sockets(n: usize) -> std::time::Duration {
    let start = Instant::now();
    for _ in 0..n {
        // SAFETY: socket(2) takes no pointers; close(2) closes what it made.
        unsafe {
            let fd = libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM, 0);
            libc::close(fd);
        }
    }
    start.elapsed()
}
