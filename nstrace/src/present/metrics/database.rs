//! Gauges and counters of `serve`'s provenance database (registered only by `serve`).

use prometheus_client::{
    metrics::{counter::Counter, gauge::Gauge},
    registry::{Registry, Unit},
};

use super::catch_up;
use crate::provenance::writer::Health;

#[derive(Debug, Default)]
pub struct DatabaseMetrics {
    up: Gauge,
    written: Counter,
    failures: Counter,
    queued: Gauge,
    dropped: Counter,
    pruned: Counter,
    bytes: Gauge,
}

impl DatabaseMetrics {
    pub fn register(registry: &mut Registry) -> DatabaseMetrics {
        let m = DatabaseMetrics::default();
        registry.register(
            "database_up",
            "1 while the provenance database takes writes, 0 while writes fail (they are kept and retried)",
            m.up.clone(),
        );
        registry.register(
            "database_changes_written",
            "Namespace changes committed to the provenance database",
            m.written.clone(),
        );
        registry.register(
            "database_write_failures",
            "Provenance database commits (or opens) that failed",
            m.failures.clone(),
        );
        registry.register(
            "database_changes_queued",
            "Changes waiting to be written to the provenance database",
            m.queued.clone(),
        );
        registry.register(
            "database_changes_dropped",
            "Changes dropped because the provenance database could not be written for too long",
            m.dropped.clone(),
        );
        registry.register("database_rows_pruned", "Rows pruned by --retain and --db-max-rows", m.pruned.clone());
        registry.register_with_unit("database_size", "Size of the provenance database", Unit::Bytes, m.bytes.clone());
        m
    }

    pub fn set(&self, h: &Health) {
        self.up.set(if h.failing { 0 } else { 1 });
        catch_up(&self.written, h.written);
        catch_up(&self.failures, h.failures);
        catch_up(&self.dropped, h.dropped);
        catch_up(&self.pruned, h.pruned);
        self.queued.set(h.queued as i64);
        self.bytes.set(h.bytes as i64);
    }
}
