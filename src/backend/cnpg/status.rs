//! Reading a CNPG Cluster's status (pure): still bootstrapping, ready, unrecoverable, or stuck
//! on something that is not the backup's fault.

use serde_json::Value;

pub const PHASE_HEALTHY: &str = "Cluster in healthy state";
pub const PHASE_UNRECOVERABLE: &str = "Cluster is unrecoverable and needs manual intervention";

/// Phases that will not resolve by waiting and say nothing about the backup.
const BROKEN_PHASES: &[&str] = &[
    "Cluster cannot proceed to reconciliation due to an unknown plugin being required",
    "Cluster cannot proceed to reconciliation due to an error while interacting with plugins",
    "Cluster has incomplete or invalid image catalog",
    "Unable to create required cluster objects",
    "Invalid cluster definition",
];

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Still working: the phase and phaseReason so far (empty before the operator acts).
    Waiting {
        phase: String,
        reason: String,
    },
    Ready,
    /// CNPG gave up: the recovery job failed past its retries.
    Unrecoverable {
        reason: String,
    },
    /// Stuck for a reason outside the backup (plugin, image catalog, definition).
    Broken {
        phase: String,
        reason: String,
    },
}

fn ready_condition(status: &Value) -> bool {
    status["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"].as_str() == Some("Ready") && c["status"].as_str() == Some("True"))
    })
}

pub fn progress(status: &Value) -> Progress {
    let phase = status["phase"].as_str().unwrap_or_default().to_string();
    let reason = status["phaseReason"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if phase == PHASE_HEALTHY && ready_condition(status) {
        Progress::Ready
    } else if phase == PHASE_UNRECOVERABLE {
        Progress::Unrecoverable { reason }
    } else if BROKEN_PHASES.contains(&phase.as_str()) {
        Progress::Broken { phase, reason }
    } else {
        Progress::Waiting { phase, reason }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn waiting(phase: &str, reason: &str) -> Progress {
        Progress::Waiting {
            phase: phase.into(),
            reason: reason.into(),
        }
    }

    #[test]
    fn ready_needs_the_healthy_phase_and_the_ready_condition() {
        let gave_up = "Instance creation failed for the following jobs: c-1-full-recovery.";
        let cases = [
            (
                "healthy and Ready",
                json!({"phase": PHASE_HEALTHY, "conditions": [
                    {"type": "Ready", "status": "True", "reason": "ClusterIsReady"}]}),
                Progress::Ready,
            ),
            (
                "healthy, Ready not yet true",
                json!({"phase": PHASE_HEALTHY, "conditions": [
                    {"type": "Ready", "status": "False"}]}),
                waiting(PHASE_HEALTHY, ""),
            ),
            (
                "healthy without conditions",
                json!({"phase": PHASE_HEALTHY}),
                waiting(PHASE_HEALTHY, ""),
            ),
            ("no status yet", json!({}), waiting("", "")),
            (
                "setting up",
                json!({"phase": "Setting up primary", "phaseReason": "Creating primary instance c-1"}),
                waiting("Setting up primary", "Creating primary instance c-1"),
            ),
            (
                "unrecoverable",
                json!({"phase": PHASE_UNRECOVERABLE, "phaseReason": gave_up}),
                Progress::Unrecoverable {
                    reason: gave_up.into(),
                },
            ),
            (
                "an unknown plugin",
                json!({"phase": BROKEN_PHASES[0], "phaseReason": "Unknown plugin: 'x'"}),
                Progress::Broken {
                    phase: BROKEN_PHASES[0].into(),
                    reason: "Unknown plugin: 'x'".into(),
                },
            ),
            (
                "an invalid definition",
                json!({"phase": "Invalid cluster definition"}),
                Progress::Broken {
                    phase: "Invalid cluster definition".into(),
                    reason: String::new(),
                },
            ),
        ];
        for (name, status, expected) in cases {
            assert_eq!(progress(&status), expected, "{name}");
        }
    }
}
