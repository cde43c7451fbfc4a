//! Presentation: text and table rendering, lsns's columns, explanations
//! and release advice, Prometheus metrics and their HTTP server, the live
//! TUI. Reads data: the store, events, and what the commands read from
//! /proc before rendering ([`crate::procfs::facts`]); never feeds the
//! store, and reads no /proc or other file, socket or netlink itself.
//! Its I/O is its output: the writer it is given, the HTTP server's
//! connections ([`http`]) and the terminal ([`tui`]); besides, the
//! terminal flags ([`columns::TermArgs`]) read the environment and the
//! terminal's size, and [`metrics`] labels its build with uname(2).

pub mod advice;
pub mod age;
pub mod columns;
pub mod escape;
pub mod explain;
pub mod http;
pub mod json;
pub mod lsns;
pub mod metrics;
pub mod perf_data;
pub mod provenance_text;
pub mod render;
pub mod table;
pub mod tui;
