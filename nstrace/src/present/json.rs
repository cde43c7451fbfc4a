//! `ls --json`'s layout: the list and each row's fields one per line, as a
//! pretty printer does, but a row's values on one line each: a list of
//! pids as `[1, 2, 3]`, each holder as one `{"kind": "task", ...}` line.
//! Still plain JSON with the same keys; half the bytes of serde_json's
//! pretty printer (8 MB at 10,000 namespaces with every holder of the host's
//! shared namespaces), and a holder per line reads and greps better.

use std::io::{self, Write};

use serde::Serialize;
use serde_json::ser::{CharEscape, CompactFormatter, Formatter};

pub mod fast;

/// Containers opened at this depth or deeper are a row's values.
const VALUE_DEPTH: usize = 3;
const INDENT: &[u8] = b"  ";

/// `value` in the layout above, and a newline: the reference the faster
/// [`write_rows`] is tested against.
#[cfg(test)]
pub fn to_vec_rows(value: &impl Serialize) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(1 << 16);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, RowsFormatter::default());
    value.serialize(&mut ser).map_err(io::Error::from)?;
    out.push(b'\n');
    Ok(out)
}

/// Rows per piece are chosen so pieces weigh about this much (a row
/// weighs 4 plus its holders): small lists stay on one thread.
const PIECE_WEIGHT: usize = 4_096;
/// Pieces at most: enough for the writer to stream while the other thread
/// serialises, few enough that each is a large write.
const MAX_PIECES: usize = 16;

/// `rows` as a list in the layout above, written to `out` piece by
/// piece: with more than one piece, every other piece is serialised on a
/// second thread, and each is written as soon as those before it are (the
/// reader gets the first rows while the rest are being serialised).
/// `weight` estimates a row's size (its holders, mostly); `render` writes
/// one row as it appears in the list ([`serde_row`], or a faster writer of
/// the same bytes).
pub fn write_rows<T: Sync>(
    rows: &[T],
    weight: impl Fn(&T) -> usize,
    render: impl Fn(&T, &mut Vec<u8>) -> io::Result<()> + Sync,
    out: &mut dyn Write,
) -> io::Result<()> {
    if rows.is_empty() {
        return out.write_all(b"[]\n");
    }
    let pieces = split_by_weight(rows, weight);
    let count = pieces.len();
    let pieces = &pieces;
    // Buffers are reused once written: fresh memory costs a page fault per
    // 4 KiB, a fifth of the output's time when every piece had its own.
    let piece = |at: usize, buf: &mut Vec<u8>| serialize_piece(&rows[pieces[at].clone()], at == 0, &render, buf);
    let mut mine = Vec::with_capacity(1 << 20);
    out.write_all(b"[")?;
    if count == 1 {
        piece(0, &mut mine)?;
        out.write_all(&mine)?;
        return out.write_all(b"\n]\n");
    }
    std::thread::scope(|scope| {
        let (done_tx, done_rx) = std::sync::mpsc::sync_channel::<io::Result<Vec<u8>>>(count);
        let (spare_tx, spare_rx) = std::sync::mpsc::channel::<Vec<u8>>();
        let piece = &piece;
        let helper = scope.spawn(move || {
            for at in (1..count).step_by(2) {
                let mut buf = spare_rx.try_recv().unwrap_or_else(|_| Vec::with_capacity(1 << 20));
                let done = piece(at, &mut buf).map(|()| buf);
                if done_tx.send(done).is_err() {
                    return;
                }
            }
        });
        for at in 0..count {
            if at % 2 == 0 {
                piece(at, &mut mine)?;
                out.write_all(&mine)?;
            } else {
                let theirs = done_rx.recv().map_err(io::Error::other)??;
                out.write_all(&theirs)?;
                let _ = spare_tx.send(theirs);
            }
        }
        drop(done_rx);
        let _ = helper.join();
        out.write_all(b"\n]\n")
    })
}

/// Contiguous ranges of `rows`, each about [`PIECE_WEIGHT`] heavy (at most
/// [`MAX_PIECES`]).
fn split_by_weight<T>(rows: &[T], weight: impl Fn(&T) -> usize) -> Vec<std::ops::Range<usize>> {
    let total: usize = rows.iter().map(&weight).sum();
    let per_piece = total.div_ceil(MAX_PIECES).max(PIECE_WEIGHT);
    let mut pieces = Vec::new();
    let (mut start, mut held) = (0, 0);
    for (i, row) in rows.iter().enumerate() {
        held += weight(row);
        if held >= per_piece {
            pieces.push(start..i + 1);
            (start, held) = (i + 1, 0);
        }
    }
    if start < rows.len() {
        pieces.push(start..rows.len());
    }
    pieces
}

/// Rows of the list, each after its separator, as they appear inside it,
/// into `buf` (emptied first).
fn serialize_piece<T>(
    rows: &[T],
    first: bool,
    render: &impl Fn(&T, &mut Vec<u8>) -> io::Result<()>,
    buf: &mut Vec<u8>,
) -> io::Result<()> {
    buf.clear();
    for (i, row) in rows.iter().enumerate() {
        buf.extend_from_slice(if first && i == 0 { b"\n" } else { b",\n" });
        buf.extend_from_slice(INDENT);
        render(row, buf)?;
    }
    Ok(())
}

/// A row of the list through serde, as it appears inside the list.
pub fn serde_row<T: Serialize>(row: &T, buf: &mut Vec<u8>) -> io::Result<()> {
    serialize_at(buf, row, 1)
}

/// `v` through serde as the formatter writes a value met at `depth`
/// (inside `depth` open containers, its separator already written).
fn serialize_at(buf: &mut Vec<u8>, v: &(impl Serialize + ?Sized), depth: usize) -> io::Result<()> {
    let mut open = Vec::with_capacity(depth + 2);
    open.resize_with(depth, || Frame { nonempty: true, multiline: true });
    let formatter = RowsFormatter { open, pending: None };
    v.serialize(&mut serde_json::Serializer::with_formatter(&mut *buf, formatter)).map_err(io::Error::from)
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

    /// The pieces, on two threads, make the same bytes as one pass.
    #[test]
    fn rows_written_in_pieces_are_the_rows_laid_out_at_once() {
        let rows: Vec<serde_json::Value> = (0..3_000)
            .map(|i| json!({"id": i, "pids": [i, i + 1], "holders": vec![json!({"kind": "task", "pid": i}); i % 7]}))
            .collect();
        for n in [0, 1, 2, 100, 3_000] {
            let mut out = Vec::new();
            let weight = |r: &serde_json::Value| 4 + r["holders"].as_array().map_or(0, Vec::len);
            write_rows(&rows[..n], weight, serde_row, &mut out).unwrap();
            assert_eq!(String::from_utf8(out).unwrap(), text(&json!(rows[..n])), "{n} rows");
        }
        let weights = |n: usize| split_by_weight(&rows[..n], |r| 4 + r["holders"].as_array().unwrap().len());
        assert_eq!(weights(100).len(), 1, "a short list is one piece");
        let many = weights(3_000);
        assert!(many.len() > 2 && many.len() <= MAX_PIECES, "{} pieces", many.len());
        assert_eq!((many[0].start, many.last().unwrap().end), (0, 3_000), "every row once");
        assert!(many.windows(2).all(|w| w[0].end == w[1].start));
    }

    #[test]
    fn an_empty_list_and_odd_strings_stay_valid_json() {
        assert_eq!(text(&json!([])), "[]\n");
        let odd = json!([{"comm": "a\tb\u{1}\\", "x": [[1, 2], {"y": [3]}]}]);
        let back: serde_json::Value = serde_json::from_str(&text(&odd)).unwrap();
        assert_eq!(back, odd);
    }
}
