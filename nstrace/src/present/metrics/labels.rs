//! The label types of nstrace's metrics: each takes its values from a
//! small enum (namespace type, state, runtime, syscall result, connection
//! outcome, walk failure), so every family has a fixed set of series.

use std::fmt::Write as _;

use nstrace_common::ns::NsType;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};

use crate::{kernel::walker::WalkFailure, model::NsState};

/// A namespace type as a label value (`type="net"`, ...): its name, so the
/// label set is the eight types and nothing else.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct TypeLabel(pub NsType);

impl From<NsType> for TypeLabel {
    fn from(t: NsType) -> TypeLabel {
        TypeLabel(t)
    }
}

impl EncodeLabelValue for TypeLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.0.name())
    }
}

/// The container runtime a namespace belongs to, as a label value: one of
/// [`Runtime`](crate::containers::Runtime)'s names, or `none` (no container).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct RuntimeLabel(pub Option<crate::containers::Runtime>);

impl RuntimeLabel {
    /// Every value the label takes: the set stays bounded.
    pub(super) fn all() -> impl Iterator<Item = RuntimeLabel> {
        use strum::IntoEnumIterator;
        std::iter::once(RuntimeLabel(None)).chain(crate::containers::Runtime::iter().map(|r| RuntimeLabel(Some(r))))
    }
}

impl EncodeLabelValue for RuntimeLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.0.map_or("none", crate::containers::Runtime::name))
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeRuntimeLabels {
    pub r#type: TypeLabel,
    pub runtime: RuntimeLabel,
}

/// A syscall's outcome as a label value.
#[expect(non_camel_case_types, reason = "variant names are the label values Prometheus shows")]
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum ResultLabel {
    ok,
    error,
}

impl ResultLabel {
    pub(super) fn of(ret: i64) -> ResultLabel {
        if ret < 0 { ResultLabel::error } else { ResultLabel::ok }
    }
}

/// States are labelled with the names `nstrace ls` prints (`fd-only`, ...),
/// which the derive (variant identifiers verbatim) cannot spell.
impl EncodeLabelValue for NsState {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.name())
    }
}

pub(super) const STATES: [NsState; 6] = NsState::ALL;
pub(super) const RESULTS: [ResultLabel; 2] = [ResultLabel::ok, ResultLabel::error];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeLabels {
    pub r#type: TypeLabel,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeStateLabels {
    pub r#type: TypeLabel,
    pub state: NsState,
}

/// What became of a connection to the metrics endpoint.
#[expect(non_camel_case_types, reason = "variant names are the label values Prometheus shows")]
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum ConnectionLabel {
    /// Given a slot.
    accepted,
    /// Closed to give its slot to a new client: it had not sent a whole
    /// request for a while, or sat idle between requests.
    evicted,
    /// Answered 503 at once: every slot was busy serving.
    rejected,
    /// Closed unanswered: the 503 answers were at their bound too.
    dropped,
}

pub(super) const CONNECTION_OUTCOMES: [ConnectionLabel; 4] =
    [ConnectionLabel::accepted, ConnectionLabel::evicted, ConnectionLabel::rejected, ConnectionLabel::dropped];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnectionLabels {
    pub outcome: ConnectionLabel,
}

/// A failed walk's reason, by the name the rest of nstrace gives it.
impl EncodeLabelValue for WalkFailure {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.name())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WalkFailureLabels {
    pub reason: WalkFailure,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: ResultLabel,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeResultLabels {
    pub r#type: TypeLabel,
    pub result: ResultLabel,
}

/// Labels of the opt-in per-container gauge (`export --per-container`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ContainerLabels {
    pub runtime: String,
    pub container: String,
    pub r#type: TypeLabel,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct BuildLabels {
    pub(super) version: String,
    pub(super) kernel: String,
}

/// The level of a namespace-limit headroom gauge.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct LimitLevelLabel(pub crate::charges::LimitLevel);

impl EncodeLabelValue for LimitLevelLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(match self.0 {
            crate::charges::LimitLevel::Host => "host",
            crate::charges::LimitLevel::Nested => "nested",
        })
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeLimitLevelLabels {
    pub r#type: TypeLabel,
    pub level: LimitLevelLabel,
}

/// Why a namespace creation was refused, as a label value.
#[expect(non_camel_case_types, reason = "variant names are the label values Prometheus shows")]
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum RefusalLabel {
    limit,
    depth,
    mount_max,
    unknown,
}

impl RefusalLabel {
    pub fn of(r: &crate::refusal::RefusalReason) -> RefusalLabel {
        use crate::refusal::RefusalReason as R;
        match r {
            R::Limit { .. } => RefusalLabel::limit,
            R::Depth { .. } => RefusalLabel::depth,
            R::MountMax => RefusalLabel::mount_max,
            R::Unknown => RefusalLabel::unknown,
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeRefusalLabels {
    pub r#type: TypeLabel,
    pub reason: RefusalLabel,
}
