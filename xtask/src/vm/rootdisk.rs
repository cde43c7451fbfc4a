//! The root of a guest whose kernel cannot load 9p (Debian's 6.19–7.1
//! images come without their modules packages): an ext4 image, made with
//! `mke2fs -d` from a tree of hard links (copies across filesystems) to the
//! host's programs, libraries and /etc, and to the workspace paths the guest
//! script uses (the tests directory, the staged binaries, the script). The
//! cloud-amd64 flavour has NVMe and ext4 built in; qemu attaches the image as
//! an NVMe drive. The image is per VM and thrown away: the guest writes to it.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::Context as _;

use crate::setup::run;

/// Host paths the guest's tools need (the rest of /usr/lib is compilers,
/// runtimes and data the tests never touch).
const HOST_PATHS: &[&str] = &[
    "etc",
    "usr/bin",
    "usr/sbin",
    "usr/libexec",
    "usr/lib64",
    "usr/lib/x86_64-linux-gnu",
    "usr/lib/python3",
    "usr/lib/python3.11",
    "usr/lib/python3.13",
    "usr/lib/iproute2",
    "usr/lib/locale",
    "usr/lib/os-release",
    "usr/share/zoneinfo",
];

/// Builds `image` holding the host paths above plus `extra` (absolute
/// workspace paths), with the merged-/usr links and the mount points.
pub fn build(image: &Path, extra: &[PathBuf]) -> anyhow::Result<()> {
    let tree = image.with_extension("tree");
    let _ = fs::remove_file(image);
    let _ = fs::remove_dir_all(&tree);
    fs::create_dir_all(&tree)?;
    for rel in HOST_PATHS {
        let from = Path::new("/").join(rel);
        if from.exists() {
            link_tree(&from, &tree.join(rel))?;
        }
    }
    for path in extra {
        let rel = path.strip_prefix("/").unwrap_or(path);
        link_tree(path, &tree.join(rel))?;
    }
    for (link, to) in [("bin", "usr/bin"), ("sbin", "usr/sbin"), ("lib", "usr/lib"), ("lib64", "usr/lib64")] {
        std::os::unix::fs::symlink(to, tree.join(link))?;
    }
    for dir in ["proc", "sys", "dev", "run", "tmp", "root", "var/tmp", "mnt"] {
        fs::create_dir_all(tree.join(dir))?;
    }
    run(Command::new("mke2fs").args(["-q", "-t", "ext4", "-L", "nstrace-root", "-d"]).arg(&tree).arg(image).arg("4G"))?;
    fs::remove_dir_all(&tree).with_context(|| format!("removing {}", tree.display()))?;
    Ok(())
}

/// `to` as a tree of hard links to `from` (`cp -al`), or a copy where
/// they are on different filesystems.
fn link_tree(from: &Path, to: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(to.parent().context("a path with a parent")?)?;
    let linked = Command::new("cp").arg("-al").arg(from).arg(to).stderr(std::process::Stdio::null()).status()?;
    if !linked.success() {
        let _ = fs::remove_dir_all(to);
        run(Command::new("cp").arg("-a").arg(from).arg(to))?;
    }
    Ok(())
}
