//! Presentation: text and table rendering, explanations and release
//! advice, Prometheus metrics and their HTTP server, the live TUI. Reads
//! the store and events; never feeds them.

pub mod advice;
pub mod age;
pub mod columns;
pub mod escape;
pub mod explain;
pub mod http;
pub mod json;
pub mod lsns;
pub mod metrics;
pub mod provenance;
pub mod render;
pub mod table;
pub mod tui;
