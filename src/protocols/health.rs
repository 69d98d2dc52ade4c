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

/// A part of the node beside its shards that can report itself degraded (the object-store
/// tier: `Degraded { part: "tier", reason: "down: …" }`); `None` while it is healthy.
pub type DegradedSource = std::rc::Rc<dyn Fn() -> Option<Degraded>>;

/// What is degraded, from every shard's counters (or the error that prevented reading them)
/// and the node's other parts.
///
/// - a shard with no room (its filesystem is full and nothing is evictable: `ShardStats::degraded`)
///   is `Degraded { part: "shard/N", reason: "no room: …" }`;
/// - each of `others` that reports itself (an object-store tier that is down) follows.
pub fn degraded_parts(
    shards: Result<&[(u32, ShardStats)], &crate::store::StoreError>,
    others: &[DegradedSource],
) -> Vec<Degraded> {
    let mut parts = shard_parts(shards);
    parts.extend(others.iter().filter_map(|source| source()));
    parts
}

fn shard_parts(shards: Result<&[(u32, ShardStats)], &crate::store::StoreError>) -> Vec<Degraded> {
    match shards {
        Ok(shards) => shards
            .iter()
            .filter(|(_, stats)| stats.degraded)
            .map(|(index, _)| Degraded {
                part: format!("shard/{index}"),
                reason: "no room: the filesystem is full and nothing is evictable; writes are refused, reads go on".into(),
            })
            .collect(),
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
    fn a_shard_with_no_room_is_named() {
        let full = ShardStats {
            degraded: true,
            ..ShardStats::default()
        };
        let shards = [(0, ShardStats::default()), (1, full)];
        let parts = degraded_parts(Ok(&shards), &[]);
        assert_eq!(parts.len(), 1, "{parts:?}");
        assert_eq!(parts[0].part, "shard/1");
        assert!(parts[0].reason.starts_with("no room"), "{parts:?}");
    }

    #[test]
    fn unreadable_statistics_are_a_degraded_store() {
        let error = crate::store::StoreError::Unavailable {
            what: "mesh closed",
        };
        let parts = degraded_parts(Err(&error), &[]);
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].part, "store");
        assert!(parts[0].reason.contains("mesh closed"), "{parts:?}");
    }

    #[test]
    fn other_parts_follow_the_shards_when_they_report_themselves() {
        use std::cell::Cell;
        use std::rc::Rc;
        let down = Rc::new(Cell::new(true));
        let tier: DegradedSource = {
            let down = down.clone();
            Rc::new(move || {
                down.get().then(|| Degraded {
                    part: "tier".into(),
                    reason: "down".into(),
                })
            })
        };
        let full = ShardStats {
            degraded: true,
            ..ShardStats::default()
        };
        let shards = [(2, full)];
        let parts = degraded_parts(Ok(&shards), std::slice::from_ref(&tier));
        let names: Vec<&str> = parts.iter().map(|p| p.part.as_str()).collect();
        assert_eq!(names, ["shard/2", "tier"]);
        down.set(false);
        assert!(degraded_parts(Ok(&[]), &[tier]).is_empty());
    }
}
