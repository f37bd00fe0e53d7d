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

    #[test]
    fn ready_needs_the_healthy_phase_and_the_ready_condition() {
        let healthy = json!({"phase": PHASE_HEALTHY, "conditions": [
            {"type": "Ready", "status": "True", "reason": "ClusterIsReady"}]});
        assert_eq!(progress(&healthy), Progress::Ready);
        let not_yet = json!({"phase": PHASE_HEALTHY, "conditions": [
            {"type": "Ready", "status": "False"}]});
        assert!(matches!(progress(&not_yet), Progress::Waiting { .. }));
        assert!(matches!(progress(&json!({})), Progress::Waiting { .. }));
        let setting_up =
            json!({"phase": "Setting up primary", "phaseReason": "Creating primary instance c-1"});
        assert_eq!(
            progress(&setting_up),
            Progress::Waiting {
                phase: "Setting up primary".into(),
                reason: "Creating primary instance c-1".into()
            }
        );
        let dead = json!({"phase": PHASE_UNRECOVERABLE, "phaseReason": "Instance creation failed for the following jobs: c-1-full-recovery."});
        assert!(matches!(progress(&dead), Progress::Unrecoverable { .. }));
        let plugin = json!({"phase": BROKEN_PHASES[0], "phaseReason": "Unknown plugin: 'x'"});
        assert!(matches!(progress(&plugin), Progress::Broken { .. }));
    }
}
