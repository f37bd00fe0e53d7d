//! Cron schedules as Kubernetes (5 fields) and CNPG (6, seconds first) write them.

use serde::Deserialize;

/// A cron expression, checked when the scenario is read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CronText(pub String);

impl<'de> Deserialize<'de> for CronText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        cron_schedule(&s)
            .map(|_| CronText(s))
            .map_err(serde::de::Error::custom)
    }
}

/// Parses 5-field (Kubernetes) and 6-field (CNPG, seconds first) cron expressions. Both count
/// weekdays 0-6 from Sunday (7 is Sunday too); the cron crate counts 1-7, so numbers shift.
pub fn cron_schedule(expr: &str) -> Result<cron::Schedule, String> {
    let mut fields: Vec<String> = expr.split_whitespace().map(str::to_string).collect();
    if fields.len() == 5 {
        fields.insert(0, "0".into());
    }
    if fields.len() != 6 {
        return Err(format!(
            "invalid cron expression {expr:?}: expected 5 fields (minute hour day month weekday) or 6 (with seconds first)"
        ));
    }
    fields[5] = shift_weekdays(&fields[5]);
    fields.join(" ").parse::<cron::Schedule>().map_err(|e| {
        let why = e.to_string().replace("\\n", "\n");
        let why = why.lines().last().unwrap_or_default().trim().to_string();
        format!("invalid cron expression {expr:?}: {why}")
    })
}

fn shift_weekdays(field: &str) -> String {
    let shift = |d: &str| match d.parse::<u32>() {
        Ok(7) => "1".to_string(),
        Ok(n) => (n + 1).to_string(),
        Err(_) => d.to_string(),
    };
    field
        .split(',')
        .map(|part| {
            let (range, step) = match part.split_once('/') {
                Some((r, s)) => (r, Some(s)),
                None => (part, None),
            };
            let step = step.map(|s| format!("/{s}")).unwrap_or_default();
            match range.split_once('-') {
                // A range that ends on Sunday as 7 becomes "start..Saturday" plus Sunday (1).
                Some((from, "7")) if from.parse::<u32>().is_ok() => {
                    format!("{}-7{step},1", shift(from))
                }
                Some((from, to)) => format!("{}-{}{step}", shift(from), shift(to)),
                None => format!("{}{step}", shift(range)),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_and_cnpg_cron_forms() {
        let sunday_3am = cron_schedule("0 3 * * 0").unwrap();
        let next = sunday_3am.upcoming(chrono::Utc).next().unwrap();
        assert_eq!(chrono::Datelike::weekday(&next), chrono::Weekday::Sun);
        assert!(cron_schedule("0 0 3 * * 1-5").is_ok());
        assert!(cron_schedule("0 3 * * 7").is_ok());
        // Friday to Sunday, with Sunday written as 7.
        let weekend = cron_schedule("0 3 * * 5-7").unwrap();
        let days: Vec<_> = weekend
            .upcoming(chrono::Utc)
            .take(3)
            .map(|t| chrono::Datelike::weekday(&t))
            .collect();
        assert!(
            days.contains(&chrono::Weekday::Fri)
                && days.contains(&chrono::Weekday::Sat)
                && days.contains(&chrono::Weekday::Sun),
            "{days:?}"
        );
        let err = cron_schedule("0 25 * * *").unwrap_err();
        assert!(!err.contains('\n'), "{err}");
        assert!(cron_schedule("every sunday").is_err());
    }
}
