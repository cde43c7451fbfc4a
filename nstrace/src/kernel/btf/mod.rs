//! A small reader of raw kernel BTF (`/sys/kernel/btf/vmlinux`).
//!
//! Rust eBPF has no CO-RE relocations, so user space looks struct offsets up
//! here and hands them to the programs. Only what nstrace needs is decoded:
//! struct/union sizes, member offsets (through anonymous members and
//! typedefs) and function ids. Every read is bounds-checked; malformed input
//! gives [`BtfError::Malformed`], never a panic.

use std::collections::HashMap;
use std::path::PathBuf;

pub const VMLINUX_PATH: &str = "/sys/kernel/btf/vmlinux";

const MAGIC: u16 = 0xeb9f;
const HEADER_MIN: usize = 24;
const TYPE_HDR: usize = 12;
/// Limits on modifier chains and anonymous-member nesting, so a cyclic
/// (malformed) blob cannot recurse forever.
const MAX_DEPTH: u32 = 32;

mod kind {
    pub const INT: u32 = 1;
    pub const PTR: u32 = 2;
    pub const ARRAY: u32 = 3;
    pub const STRUCT: u32 = 4;
    pub const UNION: u32 = 5;
    pub const ENUM: u32 = 6;
    pub const FWD: u32 = 7;
    pub const TYPEDEF: u32 = 8;
    pub const VOLATILE: u32 = 9;
    pub const CONST: u32 = 10;
    pub const RESTRICT: u32 = 11;
    pub const FUNC: u32 = 12;
    pub const FUNC_PROTO: u32 = 13;
    pub const VAR: u32 = 14;
    pub const DATASEC: u32 = 15;
    pub const FLOAT: u32 = 16;
    pub const DECL_TAG: u32 = 17;
    pub const TYPE_TAG: u32 = 18;
    pub const ENUM64: u32 = 19;
}

#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    #[error("cannot read {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("malformed BTF: {0}")]
    Malformed(String),
    #[error("no struct or union `{0}` in BTF")]
    NoSuchType(String),
    #[error("struct `{ty}` has no member `{member}`")]
    NoSuchMember { ty: String, member: String },
    #[error("`{ty}.{member}` is a bitfield at bit offset {bit_offset}, not on a byte boundary")]
    Bitfield { ty: String, member: String, bit_offset: u32 },
}

fn malformed(msg: impl Into<String>) -> BtfError {
    BtfError::Malformed(msg.into())
}

/// The fixed part of one type record.
#[derive(Clone, Copy, Debug)]
struct TypeHdr {
    name_off: u32,
    kind: u32,
    vlen: u32,
    kind_flag: bool,
    /// `size` or `type`, depending on the kind.
    size_or_type: u32,
    /// Byte offset of the record in the type section.
    at: usize,
}

/// Parsed BTF: the raw bytes plus an index of type records.
pub struct Btf {
    data: Vec<u8>,
    big_endian: bool,
    types_start: usize,
    types_end: usize,
    strs_start: usize,
    strs_end: usize,
    /// Offset (in `data`) of type id `i` at index `i - 1`; id 0 is void.
    type_at: Vec<usize>,
    /// Struct/union name -> first type id with that name.
    composites: HashMap<String, u32>,
    funcs: HashMap<String, u32>,
}

impl std::fmt::Debug for Btf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Btf").field("types", &self.type_at.len()).field("bytes", &self.data.len()).finish()
    }
}

impl Btf {
    /// Reads and parses the running kernel's BTF.
    pub fn from_sys_fs() -> Result<Btf, BtfError> {
        let bytes = std::fs::read(VMLINUX_PATH).map_err(|source| BtfError::Io { path: VMLINUX_PATH.into(), source })?;
        Btf::parse(bytes)
    }

    pub fn parse(data: Vec<u8>) -> Result<Btf, BtfError> {
        if data.len() < HEADER_MIN {
            return Err(malformed(format!("{} bytes is shorter than the header", data.len())));
        }
        let big_endian = match [data[0], data[1]] {
            b if u16::from_le_bytes(b) == MAGIC => false,
            b if u16::from_be_bytes(b) == MAGIC => true,
            b => return Err(malformed(format!("bad magic {:#06x}", u16::from_le_bytes(b)))),
        };
        let mut btf = Btf {
            data,
            big_endian,
            types_start: 0,
            types_end: 0,
            strs_start: 0,
            strs_end: 0,
            type_at: Vec::new(),
            composites: HashMap::new(),
            funcs: HashMap::new(),
        };
        let hdr_len = btf.u32_at(4)? as usize;
        if hdr_len < HEADER_MIN || hdr_len > btf.data.len() {
            return Err(malformed(format!("header length {hdr_len}")));
        }
        let section = |off: usize, len: usize| -> Result<(usize, usize), BtfError> {
            let start = btf.u32_at(off)? as usize;
            let len = btf.u32_at(len)? as usize;
            let start = hdr_len.checked_add(start).ok_or_else(|| malformed("section offset"))?;
            let end = start.checked_add(len).ok_or_else(|| malformed("section length"))?;
            if end > btf.data.len() {
                return Err(malformed(format!(
                    "section {start}..{end} past end of {} bytes (truncated?)",
                    btf.data.len()
                )));
            }
            Ok((start, end))
        };
        let types = section(8, 12)?;
        let strs = section(16, 20)?;
        (btf.types_start, btf.types_end) = types;
        (btf.strs_start, btf.strs_end) = strs;
        btf.index_types()?;
        Ok(btf)
    }

    /// Walks the type section once, recording where each record starts.
    fn index_types(&mut self) -> Result<(), BtfError> {
        let mut at = self.types_start;
        while at < self.types_end {
            let t = self.hdr_at(at)?;
            let len = TYPE_HDR + self.extra_len(&t)?;
            let next = at.checked_add(len).filter(|&n| n <= self.types_end);
            let Some(next) = next else {
                return Err(malformed(format!("type {} runs past the type section", self.type_at.len() + 1)));
            };
            let id = u32::try_from(self.type_at.len() + 1).map_err(|_| malformed("too many types"))?;
            self.type_at.push(at);
            let map = match t.kind {
                kind::STRUCT | kind::UNION => Some(&mut self.composites),
                kind::FUNC => Some(&mut self.funcs),
                _ => None,
            };
            if let Some(map) = map
                && t.name_off != 0
            {
                let name = str_at(&self.data, self.strs_start, self.strs_end, t.name_off)?;
                if !name.is_empty() {
                    map.entry(name.to_owned()).or_insert(id);
                }
            }
            at = next;
        }
        Ok(())
    }

    /// Bytes that follow the fixed record, per kind.
    fn extra_len(&self, t: &TypeHdr) -> Result<usize, BtfError> {
        let v = t.vlen as usize;
        Ok(match t.kind {
            kind::INT => 4,
            kind::ARRAY => 12,
            kind::STRUCT | kind::UNION => v * 12,
            kind::ENUM => v * 8,
            kind::FUNC_PROTO => v * 8,
            kind::VAR => 4,
            kind::DATASEC => v * 12,
            kind::DECL_TAG => 4,
            kind::ENUM64 => v * 12,
            kind::PTR
            | kind::FWD
            | kind::TYPEDEF
            | kind::VOLATILE
            | kind::CONST
            | kind::RESTRICT
            | kind::FUNC
            | kind::FLOAT
            | kind::TYPE_TAG => 0,
            k => return Err(malformed(format!("unknown kind {k} at byte {}", t.at))),
        })
    }

    /// Size in bytes of a struct or union.
    pub fn struct_size(&self, name: &str) -> Result<u32, BtfError> {
        let id = self.composite_id(name)?;
        Ok(self.type_hdr(id)?.size_or_type)
    }

    /// Byte offset of `path` (dot-separated, e.g. `"ns.inum"`) inside the
    /// struct or union `struct_name`. Members of anonymous structs/unions are
    /// found as if they were direct members, as in C.
    pub fn member_offset(&self, struct_name: &str, path: &str) -> Result<u32, BtfError> {
        let mut ty = self.composite_id(struct_name)?;
        let mut ty_name = struct_name.to_owned();
        let mut bits: u64 = 0;
        let mut parts = path.split('.').peekable();
        while let Some(part) = parts.next() {
            let no_member = || BtfError::NoSuchMember { ty: ty_name.clone(), member: part.to_owned() };
            if part.is_empty() {
                return Err(no_member());
            }
            let (off, member_ty) = self.find_member(ty, part, 0)?.ok_or_else(no_member)?;
            if off % 8 != 0 {
                return Err(BtfError::Bitfield { ty: ty_name, member: part.to_owned(), bit_offset: off });
            }
            bits += u64::from(off);
            if parts.peek().is_some() {
                // Descend: the member must itself be a struct or union.
                ty = self.skip_modifiers(member_ty)?;
                if !matches!(self.type_hdr(ty)?.kind, kind::STRUCT | kind::UNION) {
                    return Err(no_member());
                }
                ty_name = format!("{ty_name}.{part}");
            }
        }
        u32::try_from(bits / 8).map_err(|_| malformed("member offset overflows u32"))
    }

    /// True if the kernel has a function `name` (BTF_KIND_FUNC).
    pub fn has_func(&self, name: &str) -> bool {
        self.funcs.contains_key(name)
    }

    /// BTF type id of function `name`, as needed for `attach_btf_id`.
    pub fn func_id(&self, name: &str) -> Option<u32> {
        self.funcs.get(name).copied()
    }

    /// The value of the enumerator `name` (of any enum), e.g.
    /// `UCOUNT_UTS_NAMESPACES`; None when no enum has it.
    pub fn enumerator(&self, name: &str) -> Result<Option<i64>, BtfError> {
        for &at in &self.type_at {
            let t = self.hdr_at(at)?;
            let width = match t.kind {
                kind::ENUM => 8,
                kind::ENUM64 => 12,
                _ => continue,
            };
            for i in 0..t.vlen as usize {
                let m = at + TYPE_HDR + i * width;
                if self.str(self.u32_at(m)?)? != name {
                    continue;
                }
                let lo = self.u32_at(m + 4)?;
                return Ok(Some(if width == 8 {
                    i64::from(lo as i32)
                } else {
                    (i64::from(self.u32_at(m + 8)?) << 32) | i64::from(lo)
                }));
            }
        }
        Ok(None)
    }

    /// Number of types (not counting void).
    pub fn type_count(&self) -> usize {
        self.type_at.len()
    }

    fn composite_id(&self, name: &str) -> Result<u32, BtfError> {
        self.composites.get(name).copied().ok_or_else(|| BtfError::NoSuchType(name.to_owned()))
    }

    /// Searches the members of composite `id` for `name`, descending into
    /// anonymous members. Returns (bit offset, member type id).
    fn find_member(&self, id: u32, name: &str, depth: u32) -> Result<Option<(u32, u32)>, BtfError> {
        if depth > MAX_DEPTH {
            return Err(malformed("anonymous members nested too deep (cycle?)"));
        }
        let t = self.type_hdr(id)?;
        for i in 0..t.vlen as usize {
            let m = t.at + TYPE_HDR + i * 12;
            let (m_name, m_ty, raw_off) = (self.u32_at(m)?, self.u32_at(m + 4)?, self.u32_at(m + 8)?);
            // With kind_flag, the top 8 bits hold the bitfield size.
            let off = if t.kind_flag { raw_off & 0x00ff_ffff } else { raw_off };
            if m_name != 0 {
                if self.str(m_name)? == name {
                    return Ok(Some((off, m_ty)));
                }
                continue;
            }
            let inner = self.skip_modifiers(m_ty)?;
            if matches!(self.type_hdr(inner)?.kind, kind::STRUCT | kind::UNION)
                && let Some((o, ty)) = self.find_member(inner, name, depth + 1)?
            {
                let o = off.checked_add(o).ok_or_else(|| malformed("member offset overflow"))?;
                return Ok(Some((o, ty)));
            }
        }
        Ok(None)
    }

    /// Follows typedef/const/volatile/restrict/type_tag to the real type.
    fn skip_modifiers(&self, mut id: u32) -> Result<u32, BtfError> {
        for _ in 0..MAX_DEPTH {
            let t = self.type_hdr(id)?;
            match t.kind {
                kind::TYPEDEF | kind::VOLATILE | kind::CONST | kind::RESTRICT | kind::TYPE_TAG => id = t.size_or_type,
                _ => return Ok(id),
            }
        }
        Err(malformed("modifier chain too long (cycle?)"))
    }

    fn type_hdr(&self, id: u32) -> Result<TypeHdr, BtfError> {
        if id == 0 {
            return Err(malformed("reference to void where a type was expected"));
        }
        let at = *self.type_at.get(id as usize - 1).ok_or_else(|| malformed(format!("type id {id} out of range")))?;
        self.hdr_at(at)
    }

    fn hdr_at(&self, at: usize) -> Result<TypeHdr, BtfError> {
        let info = self.u32_at(at + 4)?;
        Ok(TypeHdr {
            name_off: self.u32_at(at)?,
            kind: (info >> 24) & 0x1f,
            vlen: info & 0xffff,
            kind_flag: info >> 31 == 1,
            size_or_type: self.u32_at(at + 8)?,
            at,
        })
    }

    fn str(&self, off: u32) -> Result<&str, BtfError> {
        str_at(&self.data, self.strs_start, self.strs_end, off)
    }

    fn u32_at(&self, at: usize) -> Result<u32, BtfError> {
        let b: [u8; 4] = at
            .checked_add(4)
            .and_then(|end| self.data.get(at..end))
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| malformed(format!("read past end at byte {at}")))?;
        Ok(if self.big_endian { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) })
    }
}

/// NUL-terminated string at `off` in the string section.
fn str_at(data: &[u8], start: usize, end: usize, off: u32) -> Result<&str, BtfError> {
    let s = start
        .checked_add(off as usize)
        .filter(|&s| s < end)
        .ok_or_else(|| malformed(format!("string offset {off} out of range")))?;
    let bytes = &data[s..end];
    let len = bytes.iter().position(|&b| b == 0).ok_or_else(|| malformed(format!("string at {off} not terminated")))?;
    std::str::from_utf8(&bytes[..len]).map_err(|_| malformed(format!("string at {off} not UTF-8")))
}

#[cfg(test)]
pub(crate) mod tests;
