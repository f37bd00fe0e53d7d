//! Injected API-server faults: the next N requests of a verb on a resource answer with an
//! error status instead of being served, or (for watches) are served and then have their
//! connection closed mid-stream, as a restarting API server or a load balancer would.
//!
//! Faulted requests are still recorded in the request log, with the code they got.

use std::sync::{Arc, Mutex};

use hyper::Response;
use hyper::header::HeaderValue;
use serde_json::json;

use super::http::{Body, error_response};
use super::status::ApiError;

/// What a matching request gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// `409 Conflict`.
    Conflict,
    /// `429 Too Many Requests` with `Retry-After: 1`.
    TooManyRequests,
    /// `500 Internal Server Error`.
    Internal,
    /// A watch is served, then its connection is closed without ending the stream.
    CutWatch,
}

struct Rule {
    verb: String,
    resource: String,
    fault: Fault,
    left: usize,
}

/// The pending faults, shared by the simulator and its handlers.
#[derive(Clone, Default)]
pub struct Faults(Arc<Mutex<Vec<Rule>>>);

impl Faults {
    /// The next `n` requests with RBAC verb `verb` (`get`, `list`, `watch`, `create`,
    /// `patch`, ...) on `resource` (a plural: `clusters`, `pods`) get `fault`. `usize::MAX`
    /// is "until cleared".
    pub fn add(&self, verb: &str, resource: &str, n: usize, fault: Fault) {
        self.0.lock().unwrap().push(Rule {
            verb: verb.into(),
            resource: resource.into(),
            fault,
            left: n,
        });
    }

    pub fn clear(&self) {
        self.0.lock().unwrap().clear();
    }

    /// The fault for this request, if one is pending (it is used up).
    pub fn take(&self, verb: &str, resource: &str) -> Option<Fault> {
        let mut rules = self.0.lock().unwrap();
        let rule = rules
            .iter_mut()
            .find(|r| r.left > 0 && r.verb == verb && r.resource == resource)?;
        rule.left -= 1;
        Some(rule.fault)
    }
}

/// The response of a status fault; None for [`Fault::CutWatch`].
pub fn response(fault: Fault, resource: &str) -> Option<Response<Body>> {
    let (code, reason, message) = match fault {
        Fault::Conflict => (
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {resource}: the object has been modified"),
        ),
        Fault::TooManyRequests => (
            429,
            "TooManyRequests",
            "the server has received too many requests and has asked us to try again later".into(),
        ),
        Fault::Internal => (
            500,
            "InternalError",
            "an error on the server (\"injected\") has prevented the request from succeeding"
                .into(),
        ),
        Fault::CutWatch => return None,
    };
    let mut r = error_response(&ApiError {
        code,
        reason,
        message,
        details: Some(json!({"retryAfterSeconds": 1})).filter(|_| code == 429),
    });
    if code == 429 {
        r.headers_mut()
            .insert("Retry-After", HeaderValue::from_static("1"));
    }
    Some(r)
}
