//! Gauges and counters only `serve` has: its provenance database and the
//! requests its socket answers.

use prometheus_client::{
    encoding::{EncodeLabelSet, EncodeLabelValue},
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::{Registry, Unit},
};

use super::catch_up;
use crate::database::writer::Health;

/// What a client asked the service's socket (`invalid`: a request it could
/// not read or does not answer).
#[expect(non_camel_case_types, reason = "variant names are the label values Prometheus shows")]
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum RequestLabel {
    ls,
    why,
    leaks,
    limits,
    history,
    invalid,
}

impl RequestLabel {
    pub fn of(command: &str) -> RequestLabel {
        match command {
            "ls" => RequestLabel::ls,
            "why" => RequestLabel::why,
            "leaks" => RequestLabel::leaks,
            "limits" => RequestLabel::limits,
            "history" => RequestLabel::history,
            _ => RequestLabel::invalid,
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub command: RequestLabel,
}

#[derive(Debug, Default)]
pub struct DatabaseMetrics {
    requests: Family<RequestLabels, Counter>,
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
        for command in [
            RequestLabel::ls,
            RequestLabel::why,
            RequestLabel::leaks,
            RequestLabel::limits,
            RequestLabel::history,
            RequestLabel::invalid,
        ] {
            let _ = m.requests.get_or_create(&RequestLabels { command });
        }
        registry.register("service_requests", "Requests the service socket received, by command", m.requests.clone());
        m
    }

    /// One request on the service socket.
    pub fn request(&self, command: RequestLabel) {
        self.requests.get_or_create(&RequestLabels { command }).inc();
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
