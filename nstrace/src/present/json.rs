//! `ls --json`'s layout: a JSON list with one row per line, each row
//! compact JSON (`{"id":1,"inode":4026531840,...}`) with every holder in
//! it. Rows per line grep well (`grep '"type":"net"'`) and `jq` reads the
//! list as usual. Compact because the listing is big: every holder of the
//! host's shared namespaces is in it, 4.3 MB at 10,000 extra namespaces
//! (6.4 MB indented), and the bytes through the reader's pipe were most
//! of the output's time.

use std::io::{self, Write};

use serde::Serialize;

pub mod fast;

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
        render(row, buf)?;
    }
    Ok(())
}

/// A row of the list through serde.
pub fn serde_row<T: Serialize>(row: &T, buf: &mut Vec<u8>) -> io::Result<()> {
    serde_json::to_writer(buf, row).map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn text(rows: &[serde_json::Value]) -> String {
        let mut out = Vec::new();
        let weight = |r: &serde_json::Value| 4 + r["holders"].as_array().map_or(0, Vec::len);
        write_rows(rows, weight, serde_row, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_row_per_line() {
        let rows = [
            json!({"id": 1, "pids": [1, 2], "holders": [{"kind": "task", "pid": 1}], "command": "a\tb"}),
            json!({"id": 2, "pids": [], "holders": []}),
        ];
        let want = "[\n{\"id\":1,\"pids\":[1,2],\"holders\":[{\"kind\":\"task\",\"pid\":1}],\"command\":\"a\\tb\"},\n\
                    {\"id\":2,\"pids\":[],\"holders\":[]}\n]\n";
        assert_eq!(text(&rows), want);
        assert_eq!(text(&[]), "[]\n");
    }

    /// The pieces, on two threads, make the same list as one pass.
    #[test]
    fn rows_written_in_pieces_are_the_list() {
        let rows: Vec<serde_json::Value> = (0..3_000)
            .map(|i| json!({"id": i, "pids": [i, i + 1], "holders": vec![json!({"kind": "task", "pid": i}); i % 7]}))
            .collect();
        for n in [1, 2, 100, 3_000] {
            let got = text(&rows[..n]);
            let lines: Vec<String> = rows[..n].iter().map(|r| r.to_string()).collect();
            assert_eq!(got, format!("[\n{}\n]\n", lines.join(",\n")), "{n} rows");
            let back: serde_json::Value = serde_json::from_str(&got).unwrap();
            assert_eq!(back, json!(rows[..n]));
        }
        let weights = |n: usize| split_by_weight(&rows[..n], |r| 4 + r["holders"].as_array().unwrap().len());
        assert_eq!(weights(100).len(), 1, "a short list is one piece");
        let many = weights(3_000);
        assert!(many.len() > 2 && many.len() <= MAX_PIECES, "{} pieces", many.len());
        assert_eq!((many[0].start, many.last().unwrap().end), (0, 3_000), "every row once");
        assert!(many.windows(2).all(|w| w[0].end == w[1].start));
        assert!(many.iter().all(|p| !p.is_empty()), "no empty piece: {many:?}");
        // Rows that fill a piece each: the last one ends the list exactly.
        let heavy = split_by_weight(&[(); 5], |_| PIECE_WEIGHT);
        assert_eq!(heavy, [0..1, 1..2, 2..3, 3..4, 4..5]);
    }
}
