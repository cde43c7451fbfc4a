//! Debian's trixie-backports kernels (6.19 and later) through a temporary apt
//! configuration of our own: its sources list, lists and cache live under
//! the VM cache; the system's sources are never read or changed.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use super::{download_with, newest, output};
use crate::setup::run;

const SOURCES: &str = "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] \
                       http://deb.debian.org/debian trixie-backports main\n";

pub struct Apt {
    config: PathBuf,
}

impl Apt {
    /// The configuration under `dir`, its package lists refreshed once a day.
    pub fn new(dir: &Path) -> anyhow::Result<Apt> {
        for sub in ["lists/partial", "cache/archives/partial", "sources.list.d"] {
            fs::create_dir_all(dir.join(sub))?;
        }
        let dir = fs::canonicalize(dir)?;
        fs::write(dir.join("sources.list"), SOURCES)?;
        let d = dir.display();
        let conf = format!(
            "Dir::Etc::sourcelist \"{d}/sources.list\";\nDir::Etc::sourceparts \"{d}/sources.list.d\";\n\
             Dir::State::Lists \"{d}/lists\";\nDir::Cache \"{d}/cache\";\nAPT::Sandbox::User \"root\";\n"
        );
        let config = dir.join("apt.conf");
        fs::write(&config, conf)?;
        let apt = Apt { config };
        let stamp = dir.join(".updated");
        let fresh = fs::metadata(&stamp)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().is_ok_and(|e| e.as_secs() < 86_400));
        if !fresh {
            run(apt.cmd("apt-get").args(["update", "-q"]))?;
            fs::write(&stamp, "")?;
        }
        Ok(apt)
    }

    fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("APT_CONFIG", &self.config);
        c
    }

    /// The newest kernel of `series` (a regex like `7\.3`): its image and
    /// modules packages (generic amd64 flavour: 9p is a module there) and
    /// their version. Where the archive has no modules package for any of
    /// the series' images (6.19, 7.0, 7.1), the newest `cloud-amd64` image
    /// and no modules: its NVMe and ext4 are built in, so the guest boots
    /// from a root image instead of the host's root over 9p.
    pub fn newest_kernel(&self, series: &str) -> anyhow::Result<(String, Option<String>, String)> {
        let regex = format!("^linux-binary-{series}\\.[0-9]+\\+deb[0-9]+-amd64$");
        let out = output(self.cmd("apt-cache").args(["search", "--names-only", &regex]))?;
        let found: Vec<&str> = out.lines().filter_map(|l| l.split_whitespace().next()).collect();
        if found.is_empty() {
            bail!("trixie-backports has no package matching {regex}");
        }
        let modules =
            modules_packages(&output(self.cmd("apt-cache").args(["search", "--names-only", "^linux-modules-"]))?);
        let names: Vec<&str> = found
            .iter()
            .copied()
            .filter(|b| modules.contains(&b.replacen("linux-binary-", "linux-modules-", 1)))
            .collect();
        if names.is_empty() {
            let regex = format!("^linux-binary-{series}\\.[0-9]+\\+deb[0-9]+-cloud-amd64$");
            let out = output(self.cmd("apt-cache").args(["search", "--names-only", &regex]))?;
            let cloud: Vec<&str> = out.lines().filter_map(|l| l.split_whitespace().next()).collect();
            if cloud.is_empty() {
                bail!(
                    "trixie-backports has {} but none of their linux-modules-* packages, and no cloud-amd64 image",
                    found.join(", ")
                );
            }
            let show = output(self.cmd("apt-cache").args(["show", "--no-all-versions"]).args(&cloud))?;
            let (binary, version) =
                newest(&show)?.with_context(|| format!("apt-cache show printed no versions for {cloud:?}"))?;
            return Ok((binary, None, version));
        }
        let show = output(self.cmd("apt-cache").args(["show", "--no-all-versions"]).args(&names))?;
        let (binary, version) =
            newest(&show)?.with_context(|| format!("apt-cache show printed no versions for {names:?}"))?;
        let modules = binary.replacen("linux-binary-", "linux-modules-", 1);
        Ok((binary, Some(modules), version))
    }

    /// `pkg` at `version` as a .deb in `dir` (kept: later runs reuse it).
    pub fn download(&self, pkg: &str, version: &str, dir: &Path) -> anyhow::Result<PathBuf> {
        download_with(self.cmd("apt-get"), pkg, version, dir)
    }
}

/// Package names in an `apt-cache search` listing.
fn modules_packages(listing: &str) -> std::collections::HashSet<String> {
    listing.lines().filter_map(|l| l.split_whitespace().next()).map(String::from).collect()
}
