//! Kernels for `vm-test`: resolves a series before 6.19 such as `6.1` or
//! `6.12` (the newest Debian package of that series from the system's apt
//! sources) and one from 6.19 on such as `7.3` (from trixie-backports
//! through a temporary apt configuration: the system's sources are never
//! touched), a kernel .deb or a bzImage, unpacks .debs, and collects the
//! modules the initramfs loads to mount the host's root over 9p. The
//! kernels `cargo xtask test` boots (6.1, 6.12, 7.3) are `VM_KERNELS` in
//! test.rs.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use crate::setup::run;

/// What the initramfs needs, in the order `modprobe --show-depends` gives.
const MODULES: &[&str] = &["virtio_pci", "9pnet_virtio", "9p", "overlay"];

pub struct Kernel {
    /// What the user asked for: `6.12`, a file name.
    pub label: String,
    /// Where it came from: a package name and version, or a path.
    pub origin: String,
    pub image: PathBuf,
    /// (file name, uncompressed .ko) in load order; empty when built in.
    pub modules: Vec<(String, Vec<u8>)>,
    /// 9p cannot be loaded (no modules): the guest's root is an ext4 image
    /// of the host's tools and the staged tests on an NVMe drive.
    pub disk_root: bool,
}

fn output(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| format!("spawning {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Resolves and unpacks `spec`; downloads and extracts under `cache`.
pub fn prepare(spec: &str, cache: &Path) -> anyhow::Result<Kernel> {
    let path = Path::new(spec);
    if let Some(series) = alias(spec)
        && split_packages(spec)
    {
        let apt = backports::Apt::new(&cache.join("apt"))?;
        let (binary, modules, version) = apt.newest_kernel(&series)?;
        let debs = cache.join("debs");
        let image_deb = apt.download(&binary, &version, &debs)?;
        let mut k = match modules {
            Some(modules) => from_debs(&[image_deb, apt.download(&modules, &version, &debs)?], cache)?,
            None => image_only(&image_deb, cache)?,
        };
        k.label = spec.to_string();
        k.origin = format!("{binary} {version} (trixie-backports)");
        return Ok(k);
    }
    if let Some(series) = alias(spec) {
        let (pkg, version) = newest_package(&series)?;
        let deb = download(&pkg, &version, &cache.join("debs"))?;
        let mut k = from_deb(&deb, cache)?;
        k.label = spec.to_string();
        k.origin = format!("{pkg} {version}");
        return Ok(k);
    }
    if !path.is_file() {
        bail!("--kernel {spec}: neither 6.1/6.12-style alias nor a file");
    }
    if spec.ends_with(".deb") {
        return from_deb(path, cache);
    }
    // A bare image: use modules from ../lib/modules/<kver> if it is named
    // vmlinuz-<kver> inside an unpacked tree (or is the host's /boot).
    let image = fs::canonicalize(path)?;
    let name = image.file_name().and_then(|n| n.to_str()).unwrap_or(spec).to_string();
    let root = image.parent().and_then(Path::parent).unwrap_or(Path::new("/"));
    let modules = match name.strip_prefix("vmlinuz-") {
        Some(kver) if root.join("lib/modules").join(kver).is_dir() => modules(root, kver)?,
        _ => {
            eprintln!("xtask: {spec}: no modules found; virtio-pci, 9p and overlay must be built in");
            Vec::new()
        }
    };
    Ok(Kernel { label: name.clone(), origin: image.display().to_string(), image, modules, disk_root: false })
}

/// From 6.19 on, Debian splits a kernel into `linux-binary-*` (the image)
/// and `linux-modules-*` packages, found in trixie-backports.
fn split_packages(spec: &str) -> bool {
    let Some((a, b)) = spec.split_once('.') else { return false };
    matches!((a.parse::<u32>(), b.parse::<u32>()), (Ok(major), Ok(minor)) if (major, minor) >= (6, 19))
}

/// `6.1` -> `6\.1`; anything not `<major>.<minor>` -> None.
fn alias(spec: &str) -> Option<String> {
    let (a, b) = spec.split_once('.')?;
    let num = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    (num(a) && num(b)).then(|| format!("{a}\\.{b}"))
}

/// The newest `linux-image-<series>...-amd64-unsigned` apt knows: 6.1 is
/// named `6.1.0-<abi>-amd64`, 6.12 in bookworm `6.12.<n>+deb12-amd64`.
fn newest_package(series: &str) -> anyhow::Result<(String, String)> {
    let regex = format!("^linux-image-{series}(\\.0-[0-9]+|\\.[0-9]+\\+deb[0-9]+)-amd64-unsigned$");
    let search = || -> anyhow::Result<Vec<String>> {
        let out = output(Command::new("apt-cache").args(["search", "--names-only", &regex]))?;
        Ok(out.lines().filter_map(|l| l.split_whitespace().next()).map(String::from).collect())
    };
    let mut names = search()?;
    if names.is_empty() {
        run(Command::new("apt-get").args(["update", "-q"]))?;
        names = search()?;
    }
    if names.is_empty() {
        bail!("apt knows no package matching {regex}");
    }
    let show = output(Command::new("apt-cache").args(["show", "--no-all-versions"]).args(&names))?;
    newest(&show)?.with_context(|| format!("apt-cache show printed no versions for {names:?}"))
}

/// The package with the highest version in an `apt-cache show` listing.
fn newest(show: &str) -> anyhow::Result<Option<(String, String)>> {
    let mut best: Option<(String, String)> = None;
    let mut pkg = String::new();
    for line in show.lines() {
        if let Some(p) = line.strip_prefix("Package: ") {
            pkg = p.trim().to_string();
        } else if let Some(v) = line.strip_prefix("Version: ") {
            let v = v.trim().to_string();
            let newer = match &best {
                None => true,
                Some((_, b)) => Command::new("dpkg").args(["--compare-versions", &v, "gt", b]).status()?.success(),
            };
            if newer {
                best = Some((pkg.clone(), v));
            }
        }
    }
    Ok(best)
}

fn download(pkg: &str, version: &str, dir: &Path) -> anyhow::Result<PathBuf> {
    download_with(Command::new("apt-get"), pkg, version, dir)
}

/// `pkg` at `version` as a .deb in `dir` (kept: later runs reuse it), by
/// `apt_get` (the system's apt, or one with a configuration of its own).
fn download_with(mut apt_get: Command, pkg: &str, version: &str, dir: &Path) -> anyhow::Result<PathBuf> {
    let deb = dir.join(format!("{pkg}_{}_amd64.deb", version.replace(':', "%3a")));
    if deb.is_file() {
        return Ok(deb);
    }
    fs::create_dir_all(dir)?;
    let want = format!("{pkg}={version}");
    run(apt_get.current_dir(dir).args(["download", "-q", "-o", "APT::Sandbox::User=root", &want]))?;
    if !deb.is_file() {
        bail!("apt-get download did not write {}", deb.display());
    }
    Ok(deb)
}

fn from_deb(deb: &Path, cache: &Path) -> anyhow::Result<Kernel> {
    from_debs(&[deb.to_path_buf()], cache)
}

/// Unpacks `debs` into one tree (cached by the first one's name) and finds
/// the kernel image and modules in it: `boot/vmlinuz-<kver>` and
/// `lib/modules`, or (merged /usr, 6.19+) `usr/lib/modules/<kver>/vmlinuz`.
fn from_debs(debs: &[PathBuf], cache: &Path) -> anyhow::Result<Kernel> {
    let deb = debs.first().context("no .deb to unpack")?;
    let stem = deb.file_stem().and_then(|s| s.to_str()).context("odd .deb name")?.to_string();
    let root = cache.join("kernels").join(&stem);
    if !root.join(".unpacked").is_file() {
        let tmp = cache.join("kernels").join(format!(".{stem}.tmp"));
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp)?;
        for d in debs {
            run(Command::new("dpkg-deb").arg("-x").arg(d).arg(&tmp))?;
        }
        let _ = fs::remove_dir_all(&root);
        fs::rename(&tmp, &root)?;
        fs::write(root.join(".unpacked"), "")?;
    }
    let base = if root.join("lib/modules").is_dir() { root.clone() } else { root.join("usr") };
    let kver = fs::read_dir(base.join("lib/modules"))
        .with_context(|| format!("{} has no lib/modules", deb.display()))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .next()
        .with_context(|| format!("{} has an empty lib/modules", deb.display()))?;
    let image =
        [root.join("boot").join(format!("vmlinuz-{kver}")), base.join("lib/modules").join(&kver).join("vmlinuz")]
            .into_iter()
            .find(|p| p.is_file())
            .with_context(|| format!("{} has no kernel image for {kver}", deb.display()))?;
    let modules = modules(&base, &kver)?;
    Ok(Kernel { label: kver, origin: deb.display().to_string(), image, modules, disk_root: false })
}

/// A kernel package without modules (`boot/vmlinuz-<kver>` only): booted
/// from a root image (see [`Kernel::disk_root`]).
fn image_only(deb: &Path, cache: &Path) -> anyhow::Result<Kernel> {
    let stem = deb.file_stem().and_then(|s| s.to_str()).context("odd .deb name")?.to_string();
    let root = cache.join("kernels").join(&stem);
    if !root.join(".unpacked").is_file() {
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root)?;
        run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&root))?;
        fs::write(root.join(".unpacked"), "")?;
    }
    let image = fs::read_dir(root.join("boot"))
        .with_context(|| format!("{} has no boot/", deb.display()))?
        .filter_map(|e| Some(e.ok()?.path()))
        .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("vmlinuz-")))
        .with_context(|| format!("{} has no boot/vmlinuz-*", deb.display()))?;
    Ok(Kernel { label: stem, origin: deb.display().to_string(), image, modules: Vec::new(), disk_root: true })
}

/// The uncompressed modules (and their dependencies) of [`MODULES`] that
/// are not built in, in load order.
fn modules(root: &Path, kver: &str) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let dir = root.join("lib/modules").join(kver);
    if !dir.join("modules.dep").is_file() {
        run(Command::new("depmod").arg("-b").arg(root).arg(kver))?;
    }
    let mut paths: Vec<PathBuf> = Vec::new();
    for m in MODULES {
        let deps =
            match output(Command::new("modprobe").arg("--show-depends").arg("-d").arg(root).args(["-S", kver, m])) {
                Ok(deps) => deps,
                // Debian's 6.19+ module packages ship no modules.builtin: a
                // module with no .ko anywhere in the tree is built in.
                Err(_) if !has_module_file(&dir, m)? => continue,
                Err(e) => return Err(e.context(format!("resolving module {m} of {kver}"))),
            };
        for line in deps.lines() {
            if let Some(p) = line.strip_prefix("insmod ") {
                let p = PathBuf::from(p.split_whitespace().next().unwrap_or_default());
                if !paths.contains(&p) {
                    paths.push(p);
                }
            }
        }
    }
    paths
        .iter()
        .map(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let (name, data) = match name.rsplit_once('.') {
                Some((base, "xz")) => (base, output_bytes(Command::new("xz").arg("-dc").arg(p))?),
                Some((base, "zst")) => (base, output_bytes(Command::new("zstd").arg("-dcq").arg(p))?),
                Some((base, "gz")) => (base, output_bytes(Command::new("gzip").arg("-dc").arg(p))?),
                _ => (name, fs::read(p).with_context(|| format!("reading {}", p.display()))?),
            };
            Ok((name.to_string(), data))
        })
        .collect()
}

/// Whether `dir` (a lib/modules/<kver> tree) has a `<name>.ko*` file
/// (modprobe treats `-` and `_` alike).
fn has_module_file(dir: &Path, name: &str) -> anyhow::Result<bool> {
    let wanted = name.replace('-', "_");
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d)?.flatten() {
            let path = e.path();
            if e.file_type()?.is_dir() {
                stack.push(path);
            } else if let Some(file) = path.file_name().and_then(|f| f.to_str())
                && file.split('.').next().is_some_and(|stem| stem.replace('-', "_") == wanted)
                && file.contains(".ko")
            {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

fn output_bytes(cmd: &mut Command) -> anyhow::Result<Vec<u8>> {
    let out = cmd.output().with_context(|| format!("spawning {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(out.stdout)
}

mod backports;

#[cfg(test)]
mod tests {
    #[test]
    fn kernels_from_6_19_on_come_in_split_packages() {
        for split in ["6.19", "7.0", "7.3", "8.1"] {
            assert!(super::split_packages(split), "{split}");
        }
        for not in ["6.1", "6.12", "6.18", "bzImage", "7"] {
            assert!(!super::split_packages(not), "{not}");
        }
    }

    #[test]
    fn aliases_are_major_dot_minor() {
        assert_eq!(super::alias("6.1").as_deref(), Some("6\\.1"));
        assert_eq!(super::alias("6.12").as_deref(), Some("6\\.12"));
        for not in ["6", "6.", "6.1.0", "bzImage", "linux.deb", "x.1"] {
            assert_eq!(super::alias(not), None, "{not}");
        }
    }
}
