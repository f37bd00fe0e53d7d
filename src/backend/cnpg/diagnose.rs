//! What the scratch cluster shows, as an outcome (pure): pod states, the full-recovery job's
//! logs, Warning events and the clock become a decisive failure of the backup, an error of the
//! infrastructure, or nothing yet.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Pod};

use super::joblog::JobLog;
use super::status;
use crate::backend::{Failure, Stage, error, fail};
use crate::outcome::Cause;

/// A full-recovery job pod: name, phase, and why a container cannot start (if it cannot).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct RecoveryPod {
    pub name: String,
    pub phase: String,
    pub stuck: Option<String>,
}

/// Reasons a container waits that waiting will not cure.
const STUCK_REASONS: &[&str] = &[
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
];

/// A listed full-recovery pod, read.
pub(super) fn recovery_pod(p: Pod) -> RecoveryPod {
    let status = p.status.unwrap_or_default();
    let stuck = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten())
        .find_map(|c| {
            let w = c.state.as_ref()?.waiting.as_ref()?;
            let reason = w.reason.as_deref()?;
            STUCK_REASONS.contains(&reason).then(|| {
                format!(
                    "container {}: {reason} {}",
                    c.name,
                    w.message.as_deref().unwrap_or("")
                )
            })
        });
    RecoveryPod {
        name: p.metadata.name.unwrap_or_default(),
        phase: status.phase.unwrap_or_default(),
        stuck,
    }
}

/// The last few Warning events about the cluster and its objects, as `; events: …` to append
/// to evidence (empty when there are none).
pub(super) fn warning_summary(events: &[Event], cluster: &str) -> String {
    let prefix = format!("{cluster}-");
    let lines: Vec<String> = events
        .iter()
        .filter(|e| e.type_.as_deref() == Some("Warning"))
        .filter(|e| {
            e.involved_object
                .name
                .as_deref()
                .is_some_and(|n| n == cluster || n.starts_with(&prefix))
        })
        .map(|e| {
            format!(
                "{} {}: {}",
                e.involved_object.name.as_deref().unwrap_or(""),
                e.reason.as_deref().unwrap_or(""),
                e.message.as_deref().unwrap_or("").trim()
            )
        })
        .collect();
    let tail = &lines[lines.len().saturating_sub(3)..];
    if tail.is_empty() {
        String::new()
    } else {
        format!("; events: {}", tail.join(" | "))
    }
}

/// A pod whose container cannot start: an error, whatever the backup holds.
pub(super) fn cannot_start(ns: &str, pod: &RecoveryPod) -> Option<Failure> {
    let stuck = pod.stuck.as_ref()?;
    Some(error(
        Stage::Restore,
        format!("pod {ns}/{} cannot start: {stuck}", pod.name),
    ))
}

/// A failure the job's log proves, which no retry of the same backup will cure.
pub(super) fn decisive(pod: &str, log: &JobLog) -> Option<Failure> {
    let (cause, evidence) = log.decisive_failure()?;
    Some(fail(
        Stage::Recover,
        cause,
        format!("{evidence} (pod {pod})"),
    ))
}

/// CNPG's attempts at the full recovery, read oldest first once it gave up.
#[derive(Debug, Default)]
pub(super) struct Attempts {
    /// The first attempt's complaint about reaching the object store.
    infrastructure: Option<String>,
}

impl Attempts {
    /// One attempt's log, or why it could not be read. `Some` is the answer and ends the
    /// reading: the first decisive failure, or a log that could not be read.
    pub fn read(&mut self, pod: &str, log: Result<JobLog, String>) -> Option<Failure> {
        match log {
            Ok(log) => {
                if let Some(failure) = decisive(pod, &log) {
                    return Some(failure);
                }
                if self.infrastructure.is_none() {
                    self.infrastructure = log.infrastructure_error().map(str::to_string);
                }
                None
            }
            Err(e) => Some(error(Stage::Recover, e)),
        }
    }

    /// After every attempt, none decisive: an error when one could not reach the store.
    pub fn unreachable_store(&self) -> Option<Failure> {
        let e = self.infrastructure.as_ref()?;
        Some(error(
            Stage::Restore,
            format!("the recovery job could not reach the object store: {e}"),
        ))
    }
}

/// CNPG gave up and no attempt says why: its own reason and the events are the evidence.
pub(super) fn gave_up(reason: &str, events: &str) -> Failure {
    fail(
        Stage::Recover,
        Cause::RecoveryFailed,
        format!("{}: {reason}{events}", status::PHASE_UNRECOVERABLE),
    )
}

/// A phase that waiting will not cure and that says nothing about the backup.
pub(super) fn broken(phase: &str, reason: &str) -> Failure {
    error(Stage::Restore, format!("{phase}: {reason}"))
}

/// The deadline passed before the Cluster was Ready; `last` is the last (phase, reason) seen.
pub(super) fn timed_out(deadline: Duration, last: &(String, String), events: &str) -> Failure {
    fail(
        Stage::Recover,
        Cause::RecoveryTimeout,
        format!(
            "not Ready within {deadline:?}; last phase {:?} ({}){events}",
            last.0, last.1
        ),
    )
}

/// The attempt that recovered, newest first, to read where recovery ended.
pub(super) fn succeeded<'p>(pods: &'p [RecoveryPod], ns: &str) -> Result<&'p RecoveryPod, Failure> {
    pods.iter()
        .rev()
        .find(|p| p.phase == "Succeeded")
        .ok_or_else(|| {
            error(
                Stage::Verify,
                format!("no succeeded full-recovery pod in {ns} to read where recovery ended"),
            )
        })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::backend::cnpg::joblog;

    const POD: &str = "c-1-full-recovery-x7k2p";

    /// A job log line of PostgreSQL's, as the instance manager writes it.
    fn postgres(severity: &str, message: &str) -> String {
        json!({"level": "info", "logger": "postgres", "msg": "record",
            "record": {"error_severity": severity, "message": message}})
        .to_string()
    }

    /// A job log line of the instance manager's reporting a restore error.
    fn restore_error(e: &str) -> String {
        json!({"level": "error", "msg": "Error while restoring a backup", "error": e}).to_string()
    }

    fn log(lines: &[String]) -> JobLog {
        joblog::read(&lines.join("\n"))
    }

    fn beyond_archive() -> JobLog {
        log(&[
            postgres("LOG", "redo done at 0/5000060"),
            postgres(
                "FATAL",
                "recovery ended before configured recovery target was reached",
            ),
            restore_error("while activating instance: exit status 1"),
        ])
    }

    fn network() -> JobLog {
        log(&[restore_error(
            "while restoring cluster: Network error (exit code 2)",
        )])
    }

    /// A failed attempt whose log proves nothing about the backup.
    fn undecided() -> JobLog {
        log(&[
            postgres("LOG", "starting PostgreSQL"),
            restore_error("while activating instance: exit status 1"),
        ])
    }

    #[test]
    fn a_failed_attempt_is_decisive_only_when_its_log_proves_it() {
        let cases: Vec<(&str, JobLog, Option<Failure>)> = vec![
            (
                "a FATAL decides the cause",
                beyond_archive(),
                Some(fail(
                    Stage::Recover,
                    Cause::TargetBeyondArchive,
                    format!(
                        "FATAL: recovery ended before configured recovery target was reached \
                         (pod {POD})"
                    ),
                )),
            ),
            (
                "a FATAL about a missing checkpoint is a WAL gap",
                log(&[postgres(
                    "FATAL",
                    "could not locate required checkpoint record",
                )]),
                Some(fail(
                    Stage::Recover,
                    Cause::WalGap,
                    format!("FATAL: could not locate required checkpoint record (pod {POD})"),
                )),
            ),
            (
                "a restore error about the backup decides the cause",
                log(&[restore_error("no target backup found")]),
                Some(fail(
                    Stage::Recover,
                    Cause::NoCompletedBackup,
                    format!("Error while restoring a backup: no target backup found (pod {POD})"),
                )),
            ),
            ("a network error is not decisive", network(), None),
            (
                "a general error while probing the first WAL is not a gap",
                log(&[restore_error(
                    "encountered an error while checking the presence of first needed WAL in \
                     the archive: General error (exit code 4)",
                )]),
                None,
            ),
            ("a failure the log does not explain", undecided(), None),
            ("an empty log", JobLog::default(), None),
        ];
        for (name, log, expected) in cases {
            assert_eq!(decisive(POD, &log), expected, "{name}");
        }
    }

    /// What the I/O side does once CNPG gave up: read the attempts oldest first, stop at the
    /// first answer, else the store, else CNPG's reason with the events.
    fn after_giving_up(
        attempts: Vec<Result<JobLog, String>>,
        reason: &str,
        events: &str,
    ) -> Failure {
        let mut read = Attempts::default();
        for (i, log) in attempts.into_iter().enumerate() {
            if let Some(f) = read.read(&format!("c-1-full-recovery-{i}"), log) {
                return f;
            }
        }
        read.unreachable_store()
            .unwrap_or_else(|| gave_up(reason, events))
    }

    /// A case: its name, the attempts' logs oldest first, and the outcome.
    type GaveUpCase = (&'static str, Vec<Result<JobLog, String>>, Failure);

    #[test]
    fn when_cnpg_gives_up_the_attempts_say_whose_fault_it_is() {
        let reason = "Instance creation failed for the following jobs: c-1-full-recovery.";
        let events = "; events: c-1-full-recovery BackoffLimitExceeded: Job has reached the \
                      specified backoff limit";
        let cnpg_reason = fail(
            Stage::Recover,
            Cause::RecoveryFailed,
            format!("{}: {reason}{events}", status::PHASE_UNRECOVERABLE),
        );
        let unreachable = error(
            Stage::Restore,
            "the recovery job could not reach the object store: Error while restoring a backup: \
             while restoring cluster: Network error (exit code 2)",
        );
        let cases: Vec<GaveUpCase> = vec![
            (
                "a decisive FATAL after network trouble is the backup's fault",
                vec![Ok(network()), Ok(beyond_archive())],
                fail(
                    Stage::Recover,
                    Cause::TargetBeyondArchive,
                    "FATAL: recovery ended before configured recovery target was reached \
                     (pod c-1-full-recovery-1)",
                ),
            ),
            (
                "the first decisive attempt wins",
                vec![
                    Ok(undecided()),
                    Ok(log(&[restore_error(
                        "no backup found with id 20260101T000000",
                    )])),
                    Ok(beyond_archive()),
                ],
                fail(
                    Stage::Recover,
                    Cause::UnknownBackupId,
                    "Error while restoring a backup: no backup found with id 20260101T000000 \
                     (pod c-1-full-recovery-1)",
                ),
            ),
            (
                "only network errors: an error, never a fail",
                vec![Ok(network()), Ok(network())],
                unreachable.clone(),
            ),
            (
                "a network error among undecided attempts is still an error",
                vec![Ok(undecided()), Ok(network())],
                unreachable.clone(),
            ),
            (
                "failed attempts without a decisive log: CNPG's reason and the events",
                vec![Ok(undecided()), Ok(undecided())],
                cnpg_reason.clone(),
            ),
            ("no attempt at all", vec![], cnpg_reason.clone()),
            (
                "a log that cannot be read stops the reading",
                vec![
                    Ok(network()),
                    Err("reading the log: gone".into()),
                    Ok(beyond_archive()),
                ],
                error(Stage::Recover, "reading the log: gone"),
            ),
        ];
        for (name, attempts, expected) in cases {
            assert_eq!(
                after_giving_up(attempts, reason, events),
                expected,
                "{name}"
            );
        }
    }

    #[test]
    fn the_deadline_and_broken_phases() {
        let last = ("Setting up primary".to_string(), "Creating c-1".to_string());
        let cases: Vec<(&str, Failure, Failure)> = vec![
            (
                "the deadline is a recovery timeout with the last phase",
                timed_out(Duration::from_secs(600), &last, ""),
                fail(
                    Stage::Recover,
                    Cause::RecoveryTimeout,
                    "not Ready within 600s; last phase \"Setting up primary\" (Creating c-1)",
                ),
            ),
            (
                "the deadline before any phase, with events",
                timed_out(
                    Duration::from_millis(1500),
                    &Default::default(),
                    "; events: c-1 Failed: x",
                ),
                fail(
                    Stage::Recover,
                    Cause::RecoveryTimeout,
                    "not Ready within 1.5s; last phase \"\" (); events: c-1 Failed: x",
                ),
            ),
            (
                "a broken phase is an error",
                broken("Invalid cluster definition", "bad"),
                error(Stage::Restore, "Invalid cluster definition: bad"),
            ),
        ];
        for (name, got, expected) in cases {
            assert_eq!(got, expected, "{name}");
        }
    }

    fn pod(name: &str, status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": name}, "status": status})).unwrap()
    }

    fn waiting(container: &str, reason: &str, message: &str) -> serde_json::Value {
        json!({"name": container, "image": "i", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": reason, "message": message}}})
    }

    #[test]
    fn a_pod_that_cannot_start_is_an_error() {
        let cases: Vec<(&str, Pod, Option<Failure>)> = vec![
            (
                "an image that cannot be pulled",
                pod(
                    POD,
                    json!({"phase": "Pending", "containerStatuses": [
                        waiting("full-recovery", "ImagePullBackOff", "no such image")]}),
                ),
                Some(error(
                    Stage::Restore,
                    format!(
                        "pod ns/{POD} cannot start: container full-recovery: ImagePullBackOff \
                         no such image"
                    ),
                )),
            ),
            (
                "an init container without its Secret",
                pod(
                    POD,
                    json!({"phase": "Pending", "initContainerStatuses": [
                        waiting("bootstrap-controller", "CreateContainerConfigError", "")]}),
                ),
                Some(error(
                    Stage::Restore,
                    format!(
                        "pod ns/{POD} cannot start: container bootstrap-controller: \
                         CreateContainerConfigError "
                    ),
                )),
            ),
            (
                "a container still creating will start",
                pod(
                    POD,
                    json!({"phase": "Pending", "containerStatuses": [
                        waiting("full-recovery", "ContainerCreating", "")]}),
                ),
                None,
            ),
            (
                "a failed pod is for its log to explain",
                pod(POD, json!({"phase": "Failed"})),
                None,
            ),
            (
                "a pod without status",
                pod(POD, serde_json::Value::Null),
                None,
            ),
        ];
        for (name, p, expected) in cases {
            assert_eq!(cannot_start("ns", &recovery_pod(p)), expected, "{name}");
        }
    }

    #[test]
    fn where_recovery_ended_is_read_from_the_newest_succeeded_pod() {
        let pods = |phases: &[&str]| -> Vec<RecoveryPod> {
            phases
                .iter()
                .enumerate()
                .map(|(i, phase)| RecoveryPod {
                    name: format!("p{i}"),
                    phase: phase.to_string(),
                    stuck: None,
                })
                .collect()
        };
        let none = Err(error(
            Stage::Verify,
            "no succeeded full-recovery pod in ns to read where recovery ended",
        ));
        let cases: Vec<(&str, Vec<RecoveryPod>, Result<&str, Failure>)> = vec![
            ("one success", pods(&["Succeeded"]), Ok("p0")),
            (
                "the success after failures",
                pods(&["Failed", "Failed", "Succeeded"]),
                Ok("p2"),
            ),
            (
                "the newest success",
                pods(&["Succeeded", "Succeeded"]),
                Ok("p1"),
            ),
            ("only failures", pods(&["Failed", "Running"]), none.clone()),
            ("no pod", pods(&[]), none),
        ];
        for (name, pods, expected) in cases {
            let got = succeeded(&pods, "ns").map(|p| p.name.as_str());
            assert_eq!(got, expected, "{name}");
        }
    }

    fn event(kind: &str, object: &str, reason: &str, message: &str) -> Event {
        serde_json::from_value(json!({"metadata": {"name": "e"}, "type": kind,
            "involvedObject": {"name": object}, "reason": reason, "message": message}))
        .unwrap()
    }

    #[test]
    fn warnings_about_the_cluster_become_evidence() {
        let cases: Vec<(&str, Vec<Event>, &str)> = vec![
            ("no events", vec![], ""),
            (
                "only normal events",
                vec![event("Normal", "c", "Created", "ok")],
                "",
            ),
            (
                "warnings about other objects",
                vec![
                    event("Warning", "other-1", "Failed", "x"),
                    event("Warning", "cx", "F", "y"),
                ],
                "",
            ),
            (
                "warnings about the cluster and its objects",
                vec![
                    event("Warning", "c", "Unrecoverable", " gave up \n"),
                    event("Normal", "c-1", "Pulled", "ok"),
                    event(
                        "Warning",
                        "c-1-full-recovery",
                        "BackoffLimitExceeded",
                        "limit",
                    ),
                ],
                "; events: c Unrecoverable: gave up | c-1-full-recovery BackoffLimitExceeded: limit",
            ),
            (
                "the last three",
                (1..=5)
                    .map(|i| event("Warning", &format!("c-{i}"), "R", "m"))
                    .collect(),
                "; events: c-3 R: m | c-4 R: m | c-5 R: m",
            ),
        ];
        for (name, events, expected) in cases {
            assert_eq!(warning_summary(&events, "c"), expected, "{name}");
        }
    }
}
