//! The initramfs of a `vm-test` guest: static busybox, the modules that
//! mount the host's root over 9p, and an /init that makes that root
//! writable with an overlay on tmpfs and switches to it.

use std::fs;

use anyhow::Context as _;

/// The 9p mount tag of the host's root (qemu `-virtfs ... mount_tag=`).
pub const ROOT_TAG: &str = "hostroot";
/// Printed by the guest before each report line; the host parses these.
pub const MARK: &str = "@@nstrace-vm";

/// /init: load modules, mount the host root read-only over 9p, put an
/// overlay with a tmpfs upper layer over it (or, if overlayfs refuses 9p,
/// keep it read-only with tmpfs on the writable places) and switch to it.
/// With `disk_root`, the root is instead the (throwaway, writable) ext4
/// image on the NVMe drive (see `rootdisk`).
fn init_script(modules: &[String], guest_script: &str, disk_root: bool) -> String {
    let mount_root = if disk_root {
        format!(
            r#"mkdir -p /newroot
for i in 1 2 3 4 5 6 7 8 9 10; do [ -b /dev/nvme0n1 ] && break; sleep 1; done
mount -t ext4 /dev/nvme0n1 /newroot || fatal "cannot mount the root image (NVMe, ext4)"
echo "{MARK} root disk"
"#
        )
    } else {
        let insmods: String = modules
            .iter()
            .map(|m| format!("insmod /modules/{m} || echo \"{MARK} warn insmod {m} failed\"\n"))
            .collect();
        format!(
            r#"{insmods}mkdir -p /lower /rw /newroot
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose {ROOT_TAG} /lower || fatal "cannot mount the host root over 9p"
mount -t tmpfs -o mode=0755 rw /rw
mkdir -p /rw/upper /rw/work
if mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work overlay /newroot; then
    echo "{MARK} root overlay"
else
    echo "{MARK} root read-only"
    mount --bind /lower /newroot
    for d in /tmp /run /var/tmp /root; do mount -t tmpfs tmpfs /newroot$d; done
fi
"#
        )
    };
    format!(
        r#"#!/bin/busybox sh
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
fatal() {{ echo "{MARK} fatal $*"; echo o > /proc/sysrq-trigger; sleep 10; }}
{mount_root}umount /proc /sys /dev
exec switch_root /newroot /bin/sh {guest_script}
"#
    )
}

/// newc cpio archive writer (what the kernel unpacks as an initramfs).
struct Cpio {
    buf: Vec<u8>,
    ino: u32,
}

impl Cpio {
    fn entry(&mut self, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]) {
        self.ino += 1;
        let fields = [self.ino, mode, 0, 0, 1, 0, data.len() as u32, 0, 0, rdev.0, rdev.1, name.len() as u32 + 1, 0];
        self.buf.extend_from_slice(b"070701");
        for f in fields {
            self.buf.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.push(0);
        self.pad();
        self.buf.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    fn dir(&mut self, name: &str) {
        self.entry(name, 0o040755, (0, 0), b"");
    }

    fn file(&mut self, name: &str, mode: u32, data: &[u8]) {
        self.entry(name, 0o100000 | mode, (0, 0), data);
    }

    fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, (0, 0), b"");
        self.buf
    }
}

/// The initramfs (uncompressed newc cpio) for `modules` (name, .ko) that
/// ends by running the host's `/bin/sh guest_script` as PID 1 (on the
/// NVMe root image with `disk_root`).
pub fn build(modules: &[(String, Vec<u8>)], guest_script: &str, disk_root: bool) -> anyhow::Result<Vec<u8>> {
    let busybox = fs::read("/bin/busybox").context("reading /bin/busybox (package busybox-static)")?;
    let mut c = Cpio { buf: Vec::new(), ino: 0 };
    for d in ["bin", "sbin", "usr", "usr/bin", "usr/sbin", "dev", "proc", "sys", "modules"] {
        c.dir(d);
    }
    // The kernel opens /dev/console for init's stdio before anything mounts /dev.
    c.entry("dev/console", 0o020600, (5, 1), b"");
    c.file("bin/busybox", 0o755, &busybox);
    for (name, ko) in modules {
        c.file(&format!("modules/{name}"), 0o644, ko);
    }
    let names: Vec<String> = modules.iter().map(|(n, _)| n.clone()).collect();
    c.file("init", 0o755, init_script(&names, guest_script, disk_root).as_bytes());
    Ok(c.finish())
}
