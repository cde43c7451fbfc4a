//! `nstrace completions SHELL` (a completion script on stdout) and the man
//! pages (`nstrace man-pages --dir DIR`, hidden: `cargo xtask man` writes
//! them into docs/man/), both from the clap definitions, so they never
//! drift from the command line itself.

use std::{io::Write, path::Path};

use clap_complete::Shell;

use crate::error::Error;

/// Writes the completion script for `shell` to `out`.
pub fn completions(shell: Shell, cmd: clap::Command, out: &mut dyn Write) -> Result<(), Error> {
    let name = cmd.get_name().to_string();
    // Hidden subcommands (`man-pages`, for packagers) are not offered:
    // clap_complete lists them, so the command is rebuilt without them.
    let visible: Vec<clap::Command> = cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned().collect();
    let mut cmd = clap::Command::new("nstrace").version(env!("CARGO_PKG_VERSION")).subcommands(visible);
    clap_complete::generate(shell, &mut cmd, name, out);
    out.flush().map_err(|e| Error::io("writing the completion script", e))
}

/// Writes `nstrace.1` and one page per subcommand (`nstrace-ls.1`, ...)
/// into `dir`; returns their names, sorted.
pub fn man_pages(cmd: clap::Command, dir: &Path) -> Result<Vec<String>, Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    clap_mangen::generate_to(cmd, dir)
        .map_err(|e| Error::io(format!("writing man pages into {}", dir.display()), e))?;
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(format!("listing {}", dir.display()), e))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".1"))
        .collect();
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hidden subcommand (`man-pages`) is for packagers: no shell offers it.
    #[test]
    fn hidden_subcommands_are_not_offered() {
        let cmd = clap::Command::new("nstrace")
            .subcommand(clap::Command::new("leaks"))
            .subcommand(clap::Command::new("man-pages").hide(true));
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let mut out = Vec::new();
            completions(shell, cmd.clone(), &mut out).unwrap();
            let script = String::from_utf8(out).unwrap();
            assert!(script.contains("leaks") && !script.contains("man-pages"), "{shell}: {script}");
        }
    }
}
