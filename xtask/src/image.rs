//! `cargo xtask image`: the container image the DaemonSet runs, built with
//! no registry: deploy/Containerfile starts `FROM scratch`, and the context
//! is a root filesystem assembled here from the nstrace binary and the
//! shared libraries it links (this host's Debian libc, libm, libgcc_s and
//! the dynamic loader), plus the empty directories nstrace writes to.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, bail};

use crate::setup::{cargo, output, run, workspace_root};

pub struct Options {
    /// The binary to ship; None builds the release binary.
    pub binary: Option<PathBuf>,
    pub tag: String,
    /// `docker -H` (a test's own dockerd); None: docker's default.
    pub docker_host: Option<String>,
}

pub fn image(opts: &Options) -> anyhow::Result<()> {
    let root = workspace_root();
    let binary = match &opts.binary {
        Some(b) => b.clone(),
        None => {
            run(cargo().current_dir(&root).args(["build", "--release", "-p", "nstrace"]))?;
            root.join("target/release/nstrace")
        }
    };
    let context = root.join("target/image");
    if context.exists() {
        std::fs::remove_dir_all(&context).with_context(|| format!("removing {}", context.display()))?;
    }
    let rootfs = context.join("rootfs");
    copy_into(&rootfs, &binary, Path::new("/usr/local/bin/nstrace"))?;
    for lib in linked_libraries(&binary)? {
        copy_into(&rootfs, &lib, &lib)?;
    }
    // The database, the socket, and tempfiles (volumes in the DaemonSet).
    for dir in ["var/lib/nstrace", "run/nstrace", "tmp"] {
        std::fs::create_dir_all(rootfs.join(dir))?;
    }
    let mut docker = Command::new("docker");
    if let Some(host) = &opts.docker_host {
        docker.args(["-H", host]);
    }
    // The classic builder: BuildKit (buildx) is a separate package.
    docker.env("DOCKER_BUILDKIT", "0");
    docker.args(["build", "--quiet", "-t", &opts.tag, "-f"]).arg(root.join("deploy/Containerfile")).arg(&context);
    run(&mut docker)?;
    eprintln!("xtask: built image {}", opts.tag);
    Ok(())
}

/// Copies `from` to `to` inside `rootfs` (the file a symlink points to,
/// under the link's own name).
fn copy_into(rootfs: &Path, from: &Path, to: &Path) -> anyhow::Result<()> {
    let dest = rootfs.join(to.strip_prefix("/").unwrap_or(to));
    std::fs::create_dir_all(dest.parent().unwrap())?;
    std::fs::copy(from, &dest).with_context(|| format!("copying {} to {}", from.display(), dest.display()))?;
    Ok(())
}

/// The shared libraries `binary` loads, by the paths the loader finds them
/// at (ldd), and the loader itself.
fn linked_libraries(binary: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let text = output(Command::new("ldd").arg(binary))?;
    let mut libs = Vec::new();
    for line in text.lines() {
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)".
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next().filter(|p| p.starts_with('/')),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            libs.push(PathBuf::from(p));
        }
    }
    if text.contains("not a dynamic executable") {
        return Ok(Vec::new());
    }
    if !libs.iter().any(|l| l.to_string_lossy().contains("ld-linux")) {
        bail!("ldd {} named no dynamic loader: {text}", binary.display());
    }
    Ok(libs)
}
