use super::*;

/// Builds little-endian BTF blobs by hand for tests.
#[derive(Default)]
pub(crate) struct Builder {
    types: Vec<u8>,
    strs: Vec<u8>,
    next_id: u32,
}

impl Builder {
    pub(crate) fn new() -> Self {
        Builder { types: Vec::new(), strs: vec![0], next_id: 1 }
    }

    fn name(&mut self, s: &str) -> u32 {
        if s.is_empty() {
            return 0;
        }
        let off = self.strs.len() as u32;
        self.strs.extend_from_slice(s.as_bytes());
        self.strs.push(0);
        off
    }

    fn words(&mut self, w: &[u32]) {
        for x in w {
            self.types.extend_from_slice(&x.to_le_bytes());
        }
    }

    /// Appends a type record; returns its id.
    pub(crate) fn ty(
        &mut self,
        name: &str,
        kind: u32,
        vlen: u32,
        kflag: bool,
        size_or_type: u32,
        extra: &[u32],
    ) -> u32 {
        let n = self.name(name);
        let info = (u32::from(kflag) << 31) | (kind << 24) | vlen;
        self.words(&[n, info, size_or_type]);
        self.words(extra);
        self.next_id += 1;
        self.next_id - 1
    }

    pub(crate) fn int(&mut self, name: &str, size: u32) -> u32 {
        self.ty(name, kind::INT, 0, false, size, &[size * 8])
    }

    /// Members are (name, type, bit offset or kind_flag encoding).
    pub(crate) fn composite(
        &mut self,
        kind: u32,
        name: &str,
        size: u32,
        kflag: bool,
        members: &[(&str, u32, u32)],
    ) -> u32 {
        let mut extra = Vec::new();
        for &(m, t, off) in members {
            extra.extend_from_slice(&[self.name(m), t, off]);
        }
        self.ty(name, kind, members.len() as u32, kflag, size, &extra)
    }

    pub(crate) fn strukt(&mut self, name: &str, size: u32, members: &[(&str, u32, u32)]) -> u32 {
        self.composite(kind::STRUCT, name, size, false, members)
    }

    pub(crate) fn build(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let words =
            [0xeb9f_u32 | (1 << 16), 24, 0, self.types.len() as u32, self.types.len() as u32, self.strs.len() as u32];
        // magic (u16) + version (u8) + flags (u8) pack into the first word.
        for w in words {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.extend_from_slice(&self.types);
        out.extend_from_slice(&self.strs);
        out
    }
}

/// A blob resembling the kernel's `ns_common` inside `net`, preceded by
/// one record of every kind so that skipping is exercised.
fn sample() -> Vec<u8> {
    let mut b = Builder::new();
    let int = b.int("int", 4);
    let u64t = b.int("u64", 8);
    // One of each other kind, with trailing data where the kind has it.
    let ptr = b.ty("", kind::PTR, 0, false, int, &[]);
    b.ty("", kind::ARRAY, 0, false, 0, &[int, int, 4]);
    b.ty("e", kind::ENUM, 2, false, 4, &[0, 0, 0, 1]);
    b.ty("fwd", kind::FWD, 0, false, 0, &[]);
    let proto = b.ty("", kind::FUNC_PROTO, 3, false, int, &[0, int, 0, ptr, 0, u64t]);
    b.ty("create_new_namespaces", kind::FUNC, 1, false, proto, &[]);
    let var = b.ty("v", kind::VAR, 0, false, int, &[1]);
    b.ty(".data", kind::DATASEC, 2, false, 8, &[var, 0, 4, var, 4, 4]);
    b.ty("double", kind::FLOAT, 0, false, 8, &[]);
    b.ty("tag", kind::DECL_TAG, 0, false, int, &[u32::MAX]);
    b.ty("user", kind::TYPE_TAG, 0, false, ptr, &[]);
    b.ty("e64", kind::ENUM64, 2, true, 8, &[0, 1, 0, 0, 2, 0]);
    b.ty("vol", kind::VOLATILE, 0, false, int, &[]);
    b.ty("res", kind::RESTRICT, 0, false, ptr, &[]);
    // struct ns_common { u32 ns_type; ptr ops; int inum; int __ns_ref;
    //   union { struct { u64 ns_id; ptr node; ptr ns_list_node; }; u64 rcu[2]; }; }
    let inner = b.strukt("", 24, &[("ns_id", u64t, 0), ("node", ptr, 64), ("ns_list_node", ptr, 128)]);
    let rcu = b.ty("", kind::ARRAY, 0, false, 0, &[u64t, int, 2]);
    let anon = b.composite(kind::UNION, "", 24, false, &[("", inner, 0), ("ns_rcu", rcu, 0)]);
    let ns = b.strukt(
        "ns_common",
        48,
        &[("ns_type", int, 0), ("ops", ptr, 64), ("inum", int, 128), ("__ns_ref", int, 160), ("", anon, 192)],
    );
    // const typedef on the way to ns_common, as the kernel sometimes has.
    let tdef = b.ty("ns_common_t", kind::TYPEDEF, 0, false, ns, &[]);
    let cns = b.ty("", kind::CONST, 0, false, tdef, &[]);
    b.strukt("net", 120, &[("count", int, 0), ("list", ptr, 64), ("ns", cns, 512), ("user_ns", ptr, 896)]);
    // Bitfields, kind_flag encoding: size in the top 8 bits.
    b.composite(
        kind::STRUCT,
        "bits",
        8,
        true,
        &[("a", int, 3 << 24), ("b", int, (5 << 24) | 3), ("c", int, (8 << 24) | 8), ("d", int, 32)],
    );
    b.build()
}

#[test]
fn sizes_and_direct_members() {
    let btf = Btf::parse(sample()).unwrap();
    assert_eq!(btf.struct_size("net").unwrap(), 120);
    assert_eq!(btf.struct_size("ns_common").unwrap(), 48);
    assert_eq!(btf.member_offset("net", "user_ns").unwrap(), 112);
    assert_eq!(btf.member_offset("ns_common", "inum").unwrap(), 16);
}

#[test]
fn nested_path_through_const_typedef_and_anonymous_union() {
    let btf = Btf::parse(sample()).unwrap();
    assert_eq!(btf.member_offset("net", "ns").unwrap(), 64);
    assert_eq!(btf.member_offset("net", "ns.inum").unwrap(), 64 + 16);
    assert_eq!(btf.member_offset("ns_common", "ns_id").unwrap(), 24);
    assert_eq!(btf.member_offset("ns_common", "ns_list_node").unwrap(), 24 + 16);
    assert_eq!(btf.member_offset("ns_common", "ns_rcu").unwrap(), 24);
    assert_eq!(btf.member_offset("net", "ns.ns_list_node").unwrap(), 64 + 40);
}

#[test]
fn missing_things_are_named() {
    let btf = Btf::parse(sample()).unwrap();
    assert!(matches!(btf.struct_size("nope"), Err(BtfError::NoSuchType(n)) if n == "nope"));
    match btf.member_offset("net", "ns.count") {
        Err(BtfError::NoSuchMember { ty, member }) => {
            assert_eq!((ty.as_str(), member.as_str()), ("net.ns", "count"))
        }
        other => panic!("{other:?}"),
    }
    // `count` is an int: no descending into it.
    assert!(matches!(btf.member_offset("net", "count.x"), Err(BtfError::NoSuchMember { .. })));
    assert!(matches!(btf.member_offset("net", ""), Err(BtfError::NoSuchMember { .. })));
    assert!(matches!(btf.member_offset("net", "ns."), Err(BtfError::NoSuchMember { .. })));
}

#[test]
fn kind_flag_bitfields() {
    let btf = Btf::parse(sample()).unwrap();
    assert_eq!(btf.member_offset("bits", "a").unwrap(), 0);
    assert_eq!(btf.member_offset("bits", "c").unwrap(), 1);
    assert_eq!(btf.member_offset("bits", "d").unwrap(), 4);
    assert!(matches!(btf.member_offset("bits", "b"), Err(BtfError::Bitfield { bit_offset: 3, .. })));
}

#[test]
fn funcs() {
    let btf = Btf::parse(sample()).unwrap();
    assert!(btf.has_func("create_new_namespaces"));
    assert_eq!(btf.func_id("create_new_namespaces"), Some(8));
    assert!(!btf.has_func("net"));
    assert_eq!(btf.func_id("__ns_tree_add_raw"), None);
}

#[test]
fn truncated_blobs_are_errors() {
    let full = sample();
    for len in 0..full.len() {
        match Btf::parse(full[..len].to_vec()) {
            Err(BtfError::Malformed(_)) => {}
            other => panic!("prefix of {len} bytes: {other:?}"),
        }
    }
}

#[test]
fn corrupted_blobs_never_panic() {
    let full = sample();
    // Overwrite each byte with a few values and use every API.
    for i in 0..full.len() {
        for v in [0x00, 0x01, 0x7f, 0xff] {
            let mut bad = full.clone();
            bad[i] = v;
            if let Ok(btf) = Btf::parse(bad) {
                let _ = btf.struct_size("net");
                let _ = btf.member_offset("net", "ns.ns_list_node");
                let _ = btf.member_offset("bits", "b");
                let _ = btf.func_id("create_new_namespaces");
            }
        }
    }
}

#[test]
fn bad_magic_and_cycles() {
    let mut bad = sample();
    bad[0] = 0;
    assert!(matches!(Btf::parse(bad), Err(BtfError::Malformed(_))));
    // A typedef pointing at itself, used as an anonymous member.
    let mut b = Builder::new();
    let td = b.ty("loop", kind::TYPEDEF, 0, false, 1, &[]);
    b.strukt("s", 4, &[("", td, 0)]);
    let btf = Btf::parse(b.build()).unwrap();
    assert!(matches!(btf.member_offset("s", "x"), Err(BtfError::Malformed(_))));
}

#[test]
fn real_vmlinux() {
    let btf = match Btf::from_sys_fs() {
        Ok(b) => b,
        Err(BtfError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            crate::test_skip("real_vmlinux", &format!("{VMLINUX_PATH} absent"));
            return;
        }
        Err(e) => panic!("{e}"),
    };
    assert!(btf.type_count() > 1000);
    let size = btf.struct_size("task_struct").unwrap();
    let pid = btf.member_offset("task_struct", "pid").unwrap();
    assert!(pid < size);
    let inum = btf.member_offset("net", "ns.inum").unwrap();
    assert!(inum < btf.struct_size("net").unwrap());
    assert!(btf.has_func("create_new_namespaces") || btf.has_func("copy_namespaces"));
    if btf.has_func("__ns_tree_add_raw") {
        // 6.18+: ns_id sits inside an anonymous union/struct of ns_common.
        let id = btf.member_offset("ns_common", "ns_id").unwrap();
        assert!(id < btf.struct_size("ns_common").unwrap());
    }
}
