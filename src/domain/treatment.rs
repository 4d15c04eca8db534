//! Sessions (infusions) and their vital signs (domain.md §3).

use chrono::{DateTime, Utc};

use crate::domain::text::{self, Shape};
use crate::domain::time::recorded;
use crate::domain::RuleBroken;

vocabulary!(
    /// How the dose was given.
    Route { Iv = "iv", Im = "im", Intranasal = "intranasal", Oral = "oral", Sublingual = "sublingual" }
);

vocabulary!(
    /// What became of a planned administration.
    SessionStatus { Completed = "completed", StoppedEarly = "stopped_early", Held = "held", Cancelled = "cancelled" }
);

vocabulary!(
    /// The clinician's observation of sedation during monitoring.
    Sedation { None = "none", Mild = "mild", Moderate = "moderate", Deep = "deep" }
);

/// The smallest dose accepted, in mg/kg.
pub const MIN_DOSE_MG_PER_KG: f64 = 0.01;

/// One set of vital signs; each value optional, each checked when given.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VitalSigns {
    pub systolic: Option<i32>,
    pub diastolic: Option<i32>,
    pub heart_rate: Option<i32>,
    pub spo2: Option<i32>,
}

impl VitalSigns {
    /// Ranges of §3, and diastolic below systolic. `field` prefixes each error (`pre`, `post`,
    /// `readings.2`).
    pub fn check(self, field: &str) -> Result<Self, Vec<RuleBroken>> {
        let mut broken = Vec::new();
        let ranges = [
            ("systolic", self.systolic, 60, 260),
            ("diastolic", self.diastolic, 30, 160),
            ("heart_rate", self.heart_rate, 30, 220),
            ("spo2", self.spo2, 50, 100),
        ];
        for (name, value, min, max) in ranges {
            if value.is_some_and(|v| !(min..=max).contains(&v)) {
                broken.push(RuleBroken::new(
                    format!("{field}.{name}"),
                    format!("must be from {min} to {max}"),
                ));
            }
        }
        if let (Some(s), Some(d)) = (self.systolic, self.diastolic) {
            if d >= s {
                broken.push(RuleBroken::new(
                    format!("{field}.diastolic"),
                    "must be below systolic",
                ));
            }
        }
        if broken.is_empty() {
            Ok(self)
        } else {
            Err(broken)
        }
    }
}

/// A reading during monitoring, some minutes after the start. Stored as the flat object the
/// API sends: `{"minutes_after_start": 40, "systolic": 152, …}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Reading {
    pub minutes_after_start: i32,
    #[serde(flatten)]
    pub vitals: VitalSigns,
}

/// A session as recorded, every rule of §3 checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Administration {
    pub route: Route,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub dose_mg_per_kg: f64,
    pub weight_kg: f64,
    pub status: SessionStatus,
    pub hold_reason: Option<String>,
    pub charge_cents: Option<i64>,
    pub pre: VitalSigns,
    pub post: VitalSigns,
    pub readings: Vec<Reading>,
    pub monitoring_minutes: Option<i32>,
    pub sedation: Option<Sedation>,
    pub respiratory_concern: bool,
}

impl Administration {
    pub fn check(self, now: DateTime<Utc>) -> Result<Self, Vec<RuleBroken>> {
        let mut broken = Vec::new();
        // domain.md §3 says 0 < x ≤ 5; the floor of 0.01, far below any clinical dose, keeps
        // the total (to 0.1 mg, at 20 kg at least) from ever rounding to nothing.
        if !(MIN_DOSE_MG_PER_KG..=5.0).contains(&self.dose_mg_per_kg) {
            broken.push(RuleBroken::new("dose_mg_per_kg", "must be from 0.01 to 5"));
        }
        if !(20.0..=350.0).contains(&self.weight_kg) {
            broken.push(RuleBroken::new("weight_kg", "must be from 20 to 350"));
        }
        broken.extend(recorded("started_at", self.started_at, now).err());
        if let Some(ended) = self.ended_at {
            if ended < self.started_at {
                broken.push(RuleBroken::new("ended_at", "must not be before started_at"));
            }
            broken.extend(recorded("ended_at", ended, now).err());
        }
        let reason = match self.hold_reason.as_deref() {
            Some(r) => text::optional("hold_reason", r, Shape::Line, 500),
            None => Ok(None),
        };
        match (self.status, &reason) {
            (_, Err(rule)) => broken.push(rule.clone()),
            (SessionStatus::Held, Ok(None)) => broken.push(RuleBroken::new(
                "hold_reason",
                "is required when status is held",
            )),
            (status, Ok(Some(_))) if status != SessionStatus::Held => {
                broken.push(RuleBroken::new("hold_reason", "is only for a held session"))
            }
            _ => {}
        }
        if self
            .charge_cents
            .is_some_and(|c| !(0..=100_000_000).contains(&c))
        {
            broken.push(RuleBroken::new(
                "charge_cents",
                "must be from 0 to 100000000",
            ));
        }
        if self
            .monitoring_minutes
            .is_some_and(|m| !(0..=1440).contains(&m))
        {
            broken.push(RuleBroken::new(
                "monitoring_minutes",
                "must be from 0 to 1440",
            ));
        }
        broken.extend(self.pre.check("pre").err().unwrap_or_default());
        broken.extend(self.post.check("post").err().unwrap_or_default());
        for (i, reading) in self.readings.iter().enumerate() {
            if !(0..=1440).contains(&reading.minutes_after_start) {
                broken.push(RuleBroken::new(
                    format!("readings.{i}.minutes_after_start"),
                    "must be from 0 to 1440",
                ));
            }
            broken.extend(
                reading
                    .vitals
                    .check(&format!("readings.{i}"))
                    .err()
                    .unwrap_or_default(),
            );
        }
        if self.readings.len() > 100 {
            broken.push(RuleBroken::new(
                "readings",
                "must hold at most 100 readings",
            ));
        }
        if !broken.is_empty() {
            return Err(broken);
        }
        Ok(Self {
            hold_reason: reason.ok().flatten(),
            ..self
        })
    }

    /// The dose given, in mg, to 0.1 mg.
    pub fn total_dose_mg(&self) -> f64 {
        (self.dose_mg_per_kg * self.weight_kg * 10.0).round() / 10.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap() + chrono::Duration::minutes(minutes)
    }

    fn session() -> Administration {
        Administration {
            route: Route::Iv,
            started_at: at(0),
            ended_at: Some(at(40)),
            dose_mg_per_kg: 0.5,
            weight_kg: 70.0,
            status: SessionStatus::Completed,
            hold_reason: None,
            charge_cents: Some(40_000),
            pre: VitalSigns {
                systolic: Some(120),
                diastolic: Some(80),
                heart_rate: Some(70),
                spo2: Some(98),
            },
            post: VitalSigns::default(),
            readings: vec![],
            monitoring_minutes: Some(120),
            sedation: None,
            respiratory_concern: false,
        }
    }

    fn fields(s: Administration) -> Vec<String> {
        s.check(at(60))
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|b| b.field)
            .collect()
    }

    /// domain.md §3: each range, both ends, and the cross-field rules.
    #[test]
    fn administration_rules() {
        type Change = Box<dyn Fn(&mut Administration)>;
        let cases: Vec<(Change, &[&str])> = vec![
            (Box::new(|_| {}), &[]),
            (Box::new(|s| s.dose_mg_per_kg = 0.0), &["dose_mg_per_kg"]),
            (Box::new(|s| s.dose_mg_per_kg = 0.01), &[]),
            (Box::new(|s| s.dose_mg_per_kg = 0.009), &["dose_mg_per_kg"]),
            (
                Box::new(|s| {
                    s.dose_mg_per_kg = 0.001;
                    s.weight_kg = 20.0
                }),
                &["dose_mg_per_kg"],
            ),
            (Box::new(|s| s.dose_mg_per_kg = 5.0), &[]),
            (Box::new(|s| s.dose_mg_per_kg = 5.01), &["dose_mg_per_kg"]),
            (
                Box::new(|s| s.dose_mg_per_kg = f64::NAN),
                &["dose_mg_per_kg"],
            ),
            (Box::new(|s| s.weight_kg = 19.9), &["weight_kg"]),
            (Box::new(|s| s.weight_kg = 20.0), &[]),
            (Box::new(|s| s.weight_kg = 350.0), &[]),
            (Box::new(|s| s.weight_kg = 350.1), &["weight_kg"]),
            (Box::new(|s| s.ended_at = Some(at(-1))), &["ended_at"]),
            (
                Box::new(|s| s.started_at = at(66)),
                &["started_at", "ended_at"],
            ),
            (
                Box::new(|s| s.status = SessionStatus::Held),
                &["hold_reason"],
            ),
            (
                Box::new(|s| {
                    s.status = SessionStatus::Held;
                    s.hold_reason = Some("BP 170/105".into())
                }),
                &[],
            ),
            (
                Box::new(|s| s.hold_reason = Some("why".into())),
                &["hold_reason"],
            ),
            (Box::new(|s| s.charge_cents = Some(-1)), &["charge_cents"]),
            (
                Box::new(|s| {
                    s.pre.systolic = Some(59);
                    s.pre.diastolic = Some(40)
                }),
                &["pre.systolic"],
            ),
            (Box::new(|s| s.pre.systolic = Some(261)), &["pre.systolic"]),
            (
                Box::new(|s| {
                    s.pre.systolic = Some(260);
                    s.pre.diastolic = Some(160)
                }),
                &[],
            ),
            (Box::new(|s| s.pre.diastolic = Some(29)), &["pre.diastolic"]),
            (
                Box::new(|s| s.pre.diastolic = Some(120)),
                &["pre.diastolic"],
            ),
            (
                Box::new(|s| s.pre.heart_rate = Some(29)),
                &["pre.heart_rate"],
            ),
            (
                Box::new(|s| s.pre.heart_rate = Some(221)),
                &["pre.heart_rate"],
            ),
            (Box::new(|s| s.pre.spo2 = Some(49)), &["pre.spo2"]),
            (Box::new(|s| s.pre.spo2 = Some(101)), &["pre.spo2"]),
            (
                Box::new(|s| {
                    s.post = VitalSigns {
                        systolic: Some(140),
                        diastolic: Some(140),
                        ..Default::default()
                    }
                }),
                &["post.diastolic"],
            ),
            (
                Box::new(|s| {
                    s.readings = vec![Reading {
                        minutes_after_start: 40,
                        vitals: VitalSigns {
                            heart_rate: Some(300),
                            ..Default::default()
                        },
                    }]
                }),
                &["readings.0.heart_rate"],
            ),
            (
                Box::new(|s| s.monitoring_minutes = Some(-5)),
                &["monitoring_minutes"],
            ),
        ];
        for (i, (change, expected)) in cases.into_iter().enumerate() {
            let mut s = session();
            change(&mut s);
            assert_eq!(
                fields(s),
                expected.iter().map(|f| f.to_string()).collect::<Vec<_>>(),
                "case {i}"
            );
        }
    }

    /// domain.md §3: the derived total dose.
    #[test]
    fn total_dose_is_dose_per_kg_times_weight() {
        let mut s = session();
        assert_eq!(s.total_dose_mg(), 35.0);
        s.dose_mg_per_kg = 0.75;
        s.weight_kg = 81.3;
        assert_eq!(s.total_dose_mg(), 61.0);
    }

    /// issue 12 (4): the smallest valid dose at the lightest valid weight still totals more
    /// than 0 mg (the stored total's CHECK).
    #[test]
    fn no_valid_dose_totals_nothing() {
        let mut s = session();
        s.dose_mg_per_kg = MIN_DOSE_MG_PER_KG;
        s.weight_kg = 20.0;
        let checked = s.check(at(60)).expect("valid");
        assert!(checked.total_dose_mg() > 0.0, "{}", checked.total_dose_mg());
    }
}
