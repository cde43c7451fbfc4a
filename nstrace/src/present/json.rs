//! `ls --json`'s layout: the list and each row's fields one per line, as a
//! pretty printer does, but a row's values on one line each: a list of
//! pids as `[1, 2, 3]`, each holder as one `{"kind": "task", ...}` line.
//! Still plain JSON with the same keys; half the bytes of serde_json's
//! pretty printer (8 MB at 10,000 namespaces with every holder of the host's
//! shared namespaces), and a holder per line reads and greps better.

use std::io::{self, Write};

use serde::Serialize;
use serde_json::ser::{CharEscape, CompactFormatter, Formatter};

/// Containers opened at this depth or deeper are a row's values.
const VALUE_DEPTH: usize = 3;
const INDENT: &[u8] = b"  ";

/// `value` in the layout above, and a newline.
pub fn to_vec_rows(value: &impl Serialize) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(1 << 16);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, RowsFormatter::default());
    value.serialize(&mut ser).map_err(io::Error::from)?;
    out.push(b'\n');
    Ok(out)
}

#[derive(Default)]
struct RowsFormatter {
    /// Open containers, innermost last.
    open: Vec<Frame>,
    /// An array element begins; the separator waits until its kind is
    /// known: `Some(first)`.
    pending: Option<bool>,
}

#[derive(Default)]
struct Frame {
    /// Something was written inside: a pretty container closes on its own line.
    nonempty: bool,
    /// An element of a value-depth array went on its own line (a
    /// container): the closing bracket does too.
    multiline: bool,
}

impl RowsFormatter {
    fn depth(&self) -> usize {
        self.open.len()
    }

    fn mark_nonempty(&mut self) {
        if let Some(f) = self.open.last_mut() {
            f.nonempty = true;
        }
    }

    /// Closes the innermost container: on its own line where it is pretty
    /// (or a multi-line value array) and not empty.
    fn close<W: ?Sized + Write>(&mut self, w: &mut W, bracket: &[u8]) -> io::Result<()> {
        self.pending = None;
        let frame = self.open.pop().unwrap_or_default();
        let depth = self.depth();
        if frame.nonempty && (depth + 1 < VALUE_DEPTH || (depth + 1 == VALUE_DEPTH && frame.multiline)) {
            self.newline(w, depth)?;
        }
        w.write_all(bracket)
    }

    fn newline<W: ?Sized + Write>(&self, w: &mut W, depth: usize) -> io::Result<()> {
        w.write_all(b"\n")?;
        for _ in 0..depth {
            w.write_all(INDENT)?;
        }
        Ok(())
    }

    /// Writes what precedes an array element now that its kind is known.
    fn element<W: ?Sized + Write>(&mut self, w: &mut W, container: bool) -> io::Result<()> {
        let Some(first) = self.pending.take() else { return Ok(()) };
        self.mark_nonempty();
        let depth = self.depth();
        if depth < VALUE_DEPTH || (container && depth == VALUE_DEPTH) {
            if let Some(f) = self.open.last_mut() {
                f.multiline = true;
            }
            w.write_all(if first { b"" } else { b"," })?;
            return self.newline(w, depth);
        }
        w.write_all(if first { b"" } else { b", " })
    }
}

macro_rules! scalar {
    ($($name:ident($t:ty)),* $(,)?) => {$(
        fn $name<W: ?Sized + Write>(&mut self, w: &mut W, value: $t) -> io::Result<()> {
            self.element(w, false)?;
            CompactFormatter.$name(w, value)
        }
    )*};
}

impl Formatter for RowsFormatter {
    scalar!(
        write_bool(bool),
        write_i8(i8),
        write_i16(i16),
        write_i32(i32),
        write_i64(i64),
        write_i128(i128),
        write_u8(u8),
        write_u16(u16),
        write_u32(u32),
        write_u64(u64),
        write_u128(u128),
        write_f32(f32),
        write_f64(f64),
        write_number_str(&str),
    );

    fn write_null<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.element(w, false)?;
        w.write_all(b"null")
    }

    fn begin_string<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.element(w, false)?;
        w.write_all(b"\"")
    }

    fn write_char_escape<W: ?Sized + Write>(&mut self, w: &mut W, escape: CharEscape) -> io::Result<()> {
        CompactFormatter.write_char_escape(w, escape)
    }

    fn begin_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.element(w, true)?;
        self.open.push(Frame::default());
        w.write_all(b"[")
    }

    fn end_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.close(w, b"]")
    }

    fn begin_array_value<W: ?Sized + Write>(&mut self, _w: &mut W, first: bool) -> io::Result<()> {
        self.pending = Some(first);
        Ok(())
    }

    fn end_array_value<W: ?Sized + Write>(&mut self, _w: &mut W) -> io::Result<()> {
        Ok(())
    }

    fn begin_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.element(w, true)?;
        self.open.push(Frame::default());
        w.write_all(b"{")
    }

    fn end_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.close(w, b"}")
    }

    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.mark_nonempty();
        let depth = self.depth();
        if depth < VALUE_DEPTH {
            w.write_all(if first { b"" } else { b"," })?;
            self.newline(w, depth)
        } else {
            w.write_all(if first { b"" } else { b", " })
        }
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn text(v: &serde_json::Value) -> String {
        String::from_utf8(to_vec_rows(v).unwrap()).unwrap()
    }

    #[test]
    fn rows_are_pretty_and_their_values_are_one_line_each() {
        let rows = json!([
            {"id": 1, "pids": [1, 2, 3], "holders": [{"kind": "task", "pid": 1}, {"kind": "fd", "pid": 2, "fd": 3}],
             "names": [], "creator": {"pid": 7, "args": ["a", "b \"c\""]}, "command": null},
            {"id": 2, "pids": [], "holders": []}
        ]);
        let got = text(&rows);
        let want = r#"[
  {
    "id": 1,
    "pids": [1, 2, 3],
    "holders": [
      {"kind": "task", "pid": 1},
      {"kind": "fd", "pid": 2, "fd": 3}
    ],
    "names": [],
    "creator": {"pid": 7, "args": ["a", "b \"c\""]},
    "command": null
  },
  {
    "id": 2,
    "pids": [],
    "holders": []
  }
]
"#;
        assert_eq!(got, want);
        let back: serde_json::Value = serde_json::from_str(&got).unwrap();
        assert_eq!(back, rows, "the same JSON, only laid out differently");
    }

    #[test]
    fn an_empty_list_and_odd_strings_stay_valid_json() {
        assert_eq!(text(&json!([])), "[]\n");
        let odd = json!([{"comm": "a\tb\u{1}\\", "x": [[1, 2], {"y": [3]}]}]);
        let back: serde_json::Value = serde_json::from_str(&text(&odd)).unwrap();
        assert_eq!(back, odd);
    }
}
