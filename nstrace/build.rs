//! Builds the eBPF programs (nstrace-ebpf) with aya-build and embeds them.
//!
//! `AYA_BUILD_SKIP=1`, or a machine without bpf-linker, gets an empty
//! placeholder object instead, so `cargo check`, clippy and the user-space
//! unit tests work anywhere; such a binary says at run time that it has no
//! programs and how to get them (`cargo xtask setup`).

use std::{env, fs, path::PathBuf};

use anyhow::{Context as _, anyhow};
use aya_build::{Package, Toolchain};

fn bpf_linker_available() -> bool {
    let on_path =
        env::var_os("PATH").map(|p| env::split_paths(&p).any(|d| d.join("bpf-linker").is_file())).unwrap_or(false);
    let in_cargo_home = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .map(|h| h.join("bin/bpf-linker").is_file())
        .unwrap_or(false);
    on_path || in_cargo_home
}

fn main() -> anyhow::Result<()> {
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").ok_or_else(|| anyhow!("OUT_DIR not set"))?);
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let ebpf_dir = manifest_dir.join("../nstrace-ebpf");
    let common_dir = manifest_dir.join("../nstrace-common");
    println!("cargo:rerun-if-env-changed=AYA_BUILD_SKIP");
    println!("cargo:rerun-if-env-changed=PATH");
    println!("cargo:rerun-if-changed={}", common_dir.join("src").display());

    let skip = env::var("AYA_BUILD_SKIP").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    if skip || !bpf_linker_available() {
        if !skip {
            // Build again once `cargo xtask setup` has installed the linker.
            if let Some(home) = env::var_os("HOME") {
                println!("cargo:rerun-if-changed={}/.cargo/bin/bpf-linker", home.display());
            }
            println!(
                "cargo:warning=bpf-linker not found: building nstrace without eBPF programs (run `cargo xtask setup`)"
            );
        }
        fs::write(out_dir.join("nstrace"), b"").context("writing placeholder eBPF object")?;
        return write_object_key(&out_dir);
    }
    let root_dir = ebpf_dir.to_str().ok_or_else(|| anyhow!("non-UTF-8 path {}", ebpf_dir.display()))?;
    // Only the eBPF build needs `-Z build-std=core` on the stable
    // toolchain: the cargo aya-build starts inherits this, nothing else does.
    // SAFETY: a build script is one thread; nothing reads the environment
    // while it is set.
    unsafe { env::set_var("RUSTC_BOOTSTRAP", "1") };
    aya_build::build_ebpf(
        [Package { name: "nstrace-ebpf", root_dir, ..Default::default() }],
        Toolchain::Custom("stable"),
    )?;
    write_object_key(&out_dir)
}

/// A hash of the object, for the names of its pins (computed here, not at
/// every run).
fn write_object_key(out_dir: &std::path::Path) -> anyhow::Result<()> {
    use std::hash::{Hash, Hasher};
    let object = fs::read(out_dir.join("nstrace")).context("reading the eBPF object")?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    object.hash(&mut h);
    fs::write(out_dir.join("nstrace.key"), format!("{:016x}", h.finish())).context("writing the object's key")
}
