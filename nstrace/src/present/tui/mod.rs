//! The full-screen view of `nstrace live`: UI state and keys ([`app`]),
//! drawing ([`ui`]), and the terminal plumbing here: a guard that restores
//! the terminal on every way out (return, error, Ctrl-C, panic) and a
//! thread that turns terminal input into channel messages.

/// The keys of the full-screen view: its help screen (`?`) and
/// `nstrace live --help` show this one text (at most 76 columns: it fits
/// an 80-column terminal inside its frame).
pub const KEYS_HELP: &str = "\
Keys:
  q, Ctrl-C   quit
  /           search: command, ip-netns name, container, holder comm,
              mount path, id or inode (the table follows as you type;
              Enter keeps it, Esc cancels; Esc later clears it)
  s           cycle sort: age, type, state, tasks
  r           reverse the sort
  t           cycle type: all, net, uts, ipc, pid, user, mnt, cgroup, time
  S           cycle state: all, active, mounted, fd-only, orphaned,
              inactive, dying, destroyed
  c           clear all filters
  Enter       open/close the detail pane of the selected namespace
  p, space    pause/resume the display (tracing goes on)
  up/k down/j move; PgUp/PgDn page; g/Home top; G/End bottom
  ?           this help (any key closes it)

Destroyed namespaces stay dimmed for a while, below the live ones. AGE is
'-' for namespaces created before nstrace started and not recorded by
`nstrace serve`.";

pub mod app;
pub mod ui;

use std::{
    io::{self, Write},
    sync::{
        Arc, Once,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use crossterm::{
    cursor::{Hide, Show},
    event::Event as TermEvent,
    execute,
    terminal::{EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode},
};
use tokio::sync::mpsc;

/// True while the terminal is in raw mode on the alternate screen.
static ACTIVE: AtomicBool = AtomicBool::new(false);
static PANIC_HOOK: Once = Once::new();

/// Leaves the alternate screen, disables raw mode, shows the cursor. Does
/// nothing when the terminal is not taken, so it may run more than once.
pub fn restore_terminal() {
    if ACTIVE.swap(false, Ordering::SeqCst) {
        let _ = disable_raw_mode();
        let mut out = io::stdout();
        let _ = execute!(out, LeaveAlternateScreen, Show);
        let _ = out.flush();
    }
}

/// Restores the terminal before the default hook prints a panic, so the
/// message lands on the normal screen and the shell is usable.
fn install_panic_hook() {
    PANIC_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore_terminal();
            previous(info);
        }));
    });
}

/// Owns the terminal mode: raw, alternate screen, hidden cursor; restored
/// when dropped.
pub struct TerminalGuard(());

impl TerminalGuard {
    pub fn enter() -> io::Result<TerminalGuard> {
        install_panic_hook();
        enable_raw_mode()?;
        ACTIVE.store(true, Ordering::SeqCst);
        // From here on a failure still restores (the guard's Drop).
        let guard = TerminalGuard(());
        execute!(io::stdout(), EnterAlternateScreen, Hide)?;
        Ok(guard)
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal();
    }
}

/// Reads terminal events on a blocking thread and sends them to the async
/// loop; stops when dropped (within one poll period).
pub struct InputThread {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl InputThread {
    pub fn spawn() -> io::Result<(InputThread, mpsc::UnboundedReceiver<io::Result<TermEvent>>)> {
        let (tx, rx) = mpsc::unbounded_channel();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::Builder::new().name("nstrace-input".into()).spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match crossterm::event::poll(Duration::from_millis(100)) {
                    Ok(false) => continue,
                    Ok(true) => {}
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                }
                let ev = crossterm::event::read();
                let failed = ev.is_err();
                if tx.send(ev).is_err() || failed {
                    return;
                }
            }
        })?;
        Ok((InputThread { stop, handle: Some(handle) }, rx))
    }
}

impl Drop for InputThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
