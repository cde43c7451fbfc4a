//! tracefs: mounting it when needed and reading tracepoint record layouts,
//! so no field offset of a tracepoint record is compiled in.

use std::{io, path::Path};

pub const TRACEFS_DIR: &str = "/sys/kernel/tracing";

#[derive(Debug, thiserror::Error)]
pub enum TracefsError {
    #[error("tracefs is not mounted at {TRACEFS_DIR} and mounting it failed")]
    Mount(#[source] io::Error),
    #[error("tracepoint {0} does not exist on this kernel")]
    NoTracepoint(String),
    #[error("tracepoint {event} has no field {field}")]
    NoField { event: String, field: String },
    #[error("reading {path}")]
    Io { path: String, source: io::Error },
}

/// Mounts tracefs at its usual place unless it is there already.
pub fn ensure_mounted() -> Result<(), TracefsError> {
    if Path::new(TRACEFS_DIR).join("events").is_dir() {
        return Ok(());
    }
    // SAFETY: valid NUL-terminated strings; data may be NULL.
    let r = unsafe {
        libc::mount(c"tracefs".as_ptr(), c"/sys/kernel/tracing".as_ptr(), c"tracefs".as_ptr(), 0, std::ptr::null())
    };
    if r != 0 {
        return Err(TracefsError::Mount(io::Error::last_os_error()));
    }
    Ok(())
}

/// Names of the kernel functions ftrace (and so fentry and kprobes) can
/// hook, and where the list came from: tracefs `available_filter_functions`
/// or, where that is unreadable, the text symbols of /proc/kallsyms (a
/// function inlined everywhere has no symbol).
pub fn traceable_functions() -> Result<(std::collections::HashSet<String>, &'static str), String> {
    let _ = ensure_mounted();
    let path = format!("{TRACEFS_DIR}/available_filter_functions");
    if let Ok(text) = std::fs::read_to_string(&path) {
        let names = text.lines().filter_map(|l| l.split_whitespace().next()).map(str::to_owned).collect();
        return Ok((names, "available_filter_functions"));
    }
    let text = std::fs::read_to_string("/proc/kallsyms").map_err(|e| format!("reading /proc/kallsyms: {e}"))?;
    Ok((parse_kallsyms_text(&text), "kallsyms"))
}

/// Text symbols (`t`/`T`) of a kallsyms listing, module suffixes dropped.
pub fn parse_kallsyms_text(text: &str) -> std::collections::HashSet<String> {
    kallsyms_text_symbols(text).map(|(_, name)| name.to_owned()).collect()
}

/// (address, name) of each text symbol of a kallsyms listing (text
/// symbols are listed even without CONFIG_KALLSYMS_ALL).
pub fn kallsyms_text_symbols(text: &str) -> impl Iterator<Item = (u64, &str)> {
    text.lines().filter_map(|l| {
        let mut parts = l.split_whitespace();
        let (addr, kind, name) = (parts.next()?, parts.next()?, parts.next()?);
        if !matches!(kind, "t" | "T") {
            return None;
        }
        Some((u64::from_str_radix(addr, 16).ok()?, name))
    })
}

/// Byte offset of `field` in the records of tracepoint `category/event`.
pub fn field_offset(category: &str, event: &str, field: &str) -> Result<u32, TracefsError> {
    ensure_mounted()?;
    let name = format!("{category}/{event}");
    let path = format!("{TRACEFS_DIR}/events/{name}/format");
    let text = std::fs::read_to_string(&path).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => TracefsError::NoTracepoint(name.clone()),
        _ => TracefsError::Io { path: path.clone(), source },
    })?;
    parse_field_offset(&text, field).ok_or(TracefsError::NoField { event: name, field: field.into() })
}

/// Finds `offset:N;` on the line declaring `field` in a tracefs format file.
pub fn parse_field_offset(format: &str, field: &str) -> Option<u32> {
    format.lines().find_map(|line| {
        let decl = line.trim().strip_prefix("field:")?;
        let (decl, rest) = decl.split_once(';')?;
        let name = decl.split_whitespace().last()?.split('[').next()?;
        if name != field {
            return None;
        }
        let off = rest.trim().strip_prefix("offset:")?.split(';').next()?;
        off.trim().parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETNS: &str = "name: sys_enter_setns
ID: 123
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;
\tfield:int fd;\toffset:16;\tsize:8;\tsigned:0;
\tfield:int flags;\toffset:24;\tsize:8;\tsigned:0;
";

    #[test]
    fn kallsyms_text_symbols() {
        let set = parse_kallsyms_text(
            "ffffffff817a4670 T proc_free_inum\nffffffff81ea1c90 t cleanup_net\nffffffff82000000 D init_net\nbad\nffffffffc0000000 t fn_in_mod\t[xfs]\n",
        );
        assert!(set.contains("proc_free_inum") && set.contains("cleanup_net") && set.contains("fn_in_mod"));
        assert!(!set.contains("init_net") && set.len() == 3);
    }

    #[test]
    fn finds_fields() {
        assert_eq!(parse_field_offset(SETNS, "fd"), Some(16));
        assert_eq!(parse_field_offset(SETNS, "flags"), Some(24));
        assert_eq!(parse_field_offset(SETNS, "__syscall_nr"), Some(8));
        assert_eq!(parse_field_offset(SETNS, "nope"), None);
        assert_eq!(parse_field_offset("garbage;;\nfield:;", "fd"), None);
    }
}
