//! Scenarios: the YAML a user writes, its JSON Schema, and the drills it expands to.

pub mod cron;
pub mod deserialize;
pub mod load;
pub mod plan;
pub mod targets;
pub mod types;

pub use load::{Loaded, load};
pub use types::Scenario;

/// The JSON Schema of scenario files, generated from the types.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(Scenario);
    serde_json::to_string_pretty(&schema).expect("schema serializes") + "\n"
}
