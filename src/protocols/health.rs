//! `GET /ready`: whether a load balancer should send this node traffic, and what is degraded.
//!
//! | phase      | status | when                                                          |
//! |------------|--------|---------------------------------------------------------------|
//! | `starting` | 503    | some shard is still opening (another executor's, possibly)    |
//! | `ready`    | 200    | every shard is open and no stop was asked for                 |
//! | `stopping` | 503    | SIGTERM arrived: answered at once, for `drain_delay`, then on |
//!
//! The body is one JSON object: `{"status":"ready","degraded":[]}`. A degraded node still
//! serves, so it stays `ready` (200) and names what is degraded:
//! `{"part":"shard/3","reason":"no room"}`. [`degraded_parts`] is the one place that decides.

use crate::store::ShardStats;

/// Where the node is in its life, as `/ready` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Starting,
    Ready,
    Stopping,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Ready => "ready",
            Phase::Stopping => "stopping",
        }
    }

    /// 200 only when ready: a load balancer takes a node out of rotation on anything else.
    pub fn status(self) -> u16 {
        match self {
            Phase::Ready => 200,
            Phase::Starting | Phase::Stopping => 503,
        }
    }
}

/// One degraded part of a node that still serves.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Degraded {
    /// `shard/N`, `tier`, `store`.
    pub part: String,
    pub reason: String,
}

/// The `/ready` body.
#[derive(Debug, serde::Serialize)]
pub struct Readiness {
    pub status: &'static str,
    pub degraded: Vec<Degraded>,
}

/// What is degraded, from every shard's counters (or the error that prevented reading them).
///
/// Hooks still to fill, each one entry here:
/// - a shard with no room: the per-shard "no room" flag in `ShardStats` (branch `disk-full`)
///   becomes `Degraded { part: "shard/N", reason: "no room" }`;
/// - the object-store tier: when a tier exists and reports itself down,
///   `Degraded { part: "tier", reason: "down: …" }`.
pub fn degraded_parts(
    shards: Result<&[(u32, ShardStats)], &crate::store::StoreError>,
) -> Vec<Degraded> {
    match shards {
        // No per-shard condition is reported yet (see the hooks above).
        Ok(_shards) => Vec::new(),
        Err(error) => vec![Degraded {
            part: "store".into(),
            reason: format!("shard statistics unavailable: {error}"),
        }],
    }
}

/// The status and JSON body of `/ready`.
pub fn render(phase: Phase, degraded: Vec<Degraded>) -> (u16, String) {
    let body = Readiness {
        status: phase.as_str(),
        degraded,
    };
    let json = serde_json::to_string(&body).expect("a readiness body always serializes");
    (phase.status(), json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ready_answers_200() {
        assert_eq!(render(Phase::Ready, vec![]).0, 200);
        assert_eq!(render(Phase::Starting, vec![]).0, 503);
        assert_eq!(render(Phase::Stopping, vec![]).0, 503);
    }

    #[test]
    fn body_names_the_phase_and_degraded_parts() {
        let (_, body) = render(
            Phase::Ready,
            vec![Degraded {
                part: "shard/3".into(),
                reason: "no room".into(),
            }],
        );
        let value: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(value["status"], "ready");
        assert_eq!(value["degraded"][0]["part"], "shard/3");
        assert_eq!(value["degraded"][0]["reason"], "no room");
    }

    #[test]
    fn unreadable_statistics_are_a_degraded_store() {
        let error = crate::store::StoreError::Unavailable {
            what: "mesh closed",
        };
        let parts = degraded_parts(Err(&error));
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].part, "store");
        assert!(parts[0].reason.contains("mesh closed"), "{parts:?}");
    }
}
