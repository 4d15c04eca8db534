//! Side effects (domain.md §4): the catalogue, severity grades and the persistence rule.

use chrono::{DateTime, Duration, Utc};

use crate::domain::instrument::Rater;
use crate::domain::text::{self, Shape};
use crate::domain::time::recorded;
use crate::domain::RuleBroken;

vocabulary!(
    /// The side-effect catalogue.
    Effect {
        IncreasedHeartRate = "increased_heart_rate",
        HighBloodPressure = "high_blood_pressure",
        Nausea = "nausea",
        Vomiting = "vomiting",
        Dissociation = "dissociation",
        AlteredTimePerception = "altered_time_perception",
        AlteredVisualPerception = "altered_visual_perception",
        AlteredTactilePerception = "altered_tactile_perception",
        AlteredAuditoryPerception = "altered_auditory_perception",
        OutOfBodyExperience = "out_of_body_experience",
        BlurryVision = "blurry_vision",
        Headache = "headache",
        Dizziness = "dizziness",
        Sedation = "sedation",
        AnxietyOrAgitation = "anxiety_or_agitation",
        BladderSymptoms = "bladder_symptoms",
        Craving = "craving",
        ManiaSymptoms = "mania_symptoms",
        Other = "other",
    }
);

vocabulary!(
    /// CTCAE grades 1–4.
    Severity { Mild = "mild", Moderate = "moderate", Severe = "severe", LifeThreatening = "life_threatening" }
);

/// How long side effects are expected to last before a report counts as persistent
/// (deployment settings; defaults from domain.md §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Persistence {
    /// For the effects of the infusion itself: heart rate, blood pressure, perception.
    pub short: Duration,
    /// For nausea, headache and the like.
    pub long: Duration,
}

impl Default for Persistence {
    fn default() -> Self {
        Self {
            short: Duration::hours(4),
            long: Duration::hours(24),
        }
    }
}

impl Effect {
    /// How long the effect is expected to last after onset; `None` when it is never expected
    /// and is always flagged (domain.md §4).
    pub fn expected_resolution(self, persistence: Persistence) -> Option<Duration> {
        use Effect::*;
        match self {
            IncreasedHeartRate
            | HighBloodPressure
            | Dissociation
            | AlteredTimePerception
            | AlteredVisualPerception
            | AlteredTactilePerception
            | AlteredAuditoryPerception
            | OutOfBodyExperience => Some(persistence.short),
            Nausea | Vomiting | BlurryVision | Headache | Dizziness | Sedation
            | AnxietyOrAgitation | Other => Some(persistence.long),
            BladderSymptoms | Craving | ManiaSymptoms => None,
        }
    }

    /// The wording of the clinical source list, where the catalogue took the effect from it.
    pub fn source_wording(self) -> Option<&'static str> {
        use Effect::*;
        Some(match self {
            IncreasedHeartRate => "rapid heart rate",
            HighBloodPressure => "high blood pressure",
            Nausea => "nausea",
            Vomiting => "vomiting",
            Dissociation => "feeling disconnected",
            AlteredTimePerception => "altered sense of time",
            AlteredVisualPerception => "altered colours",
            AlteredTactilePerception => "altered textures",
            AlteredAuditoryPerception => "altered noises",
            OutOfBodyExperience => "out-of-body experience",
            BlurryVision => "blurry vision",
            BladderSymptoms => "bladder problems (frequency, urgency, pain, blood in urine)",
            Craving => "dependence and addiction",
            ManiaSymptoms => "mania",
            Headache | Dizziness | Sedation | AnxietyOrAgitation | Other => return None,
        })
    }
}

/// A side-effect report whose times and fields obey §4.
#[derive(Clone, Debug, PartialEq)]
pub struct SideEffectReport {
    pub effect: Effect,
    pub severity: Severity,
    pub onset_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub reported_by: Rater,
    pub note: Option<String>,
}

/// What a report is checked against: the session it belongs to and the clock.
pub struct ReportContext {
    pub session_started_at: DateTime<Utc>,
    pub now: DateTime<Utc>,
}

impl SideEffectReport {
    pub fn new(report: SideEffectReport, ctx: &ReportContext) -> Result<Self, Vec<RuleBroken>> {
        let mut broken = Vec::new();
        if report.reported_by == Rater::Patient && report.severity == Severity::LifeThreatening {
            broken.push(RuleBroken::new(
                "severity",
                "a patient may report at most severe",
            ));
        }
        if report.onset_at < ctx.session_started_at {
            broken.push(RuleBroken::new(
                "onset_at",
                "must not be before the session's start",
            ));
        }
        broken.extend(recorded("onset_at", report.onset_at, ctx.now).err());
        if let Some(resolved) = report.resolved_at {
            if resolved < report.onset_at {
                broken.push(RuleBroken::new(
                    "resolved_at",
                    "must not be before onset_at",
                ));
            }
            broken.extend(recorded("resolved_at", resolved, ctx.now).err());
        }
        let note = match report.note.as_deref() {
            Some(n) => text::optional("note", n, Shape::Note, 2000),
            None => Ok(None),
        };
        match &note {
            Err(rule) => broken.push(rule.clone()),
            Ok(None) if report.effect == Effect::Other => {
                broken.push(RuleBroken::new("note", "is required when effect is other"))
            }
            Ok(_) => {}
        }
        if !broken.is_empty() {
            return Err(broken);
        }
        Ok(Self {
            note: note.ok().flatten(),
            ..report
        })
    }

    /// The first instant the report is persistent — unresolved longer than the effect's
    /// expected time after onset, so a microsecond (the stored precision) past it; from the
    /// start of time for effects never expected to resolve — or `None` once it is resolved.
    /// The sweep raises the flag, and wakes for the patient, at this instant.
    pub fn persistent_from(&self, persistence: Persistence) -> Option<DateTime<Utc>> {
        if self.resolved_at.is_some() {
            return None;
        }
        Some(match self.effect.expected_resolution(persistence) {
            Some(expected) => self
                .onset_at
                .checked_add_signed(expected + Duration::microseconds(1))
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
            None => DateTime::<Utc>::MIN_UTC,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn persistent(report: &SideEffectReport, now: DateTime<Utc>, p: Persistence) -> bool {
        report.persistent_from(p).is_some_and(|from| now >= from)
    }

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap() + Duration::minutes(minutes)
    }

    fn report(
        effect: Effect,
        severity: Severity,
        by: Rater,
        onset: i64,
        resolved: Option<i64>,
        note: Option<&str>,
    ) -> SideEffectReport {
        SideEffectReport {
            effect,
            severity,
            onset_at: at(onset),
            resolved_at: resolved.map(at),
            reported_by: by,
            note: note.map(str::to_owned),
        }
    }

    fn check(r: SideEffectReport) -> Result<SideEffectReport, Vec<String>> {
        SideEffectReport::new(
            r,
            &ReportContext {
                session_started_at: at(0),
                now: at(600),
            },
        )
        .map_err(|e| e.into_iter().map(|b| b.field).collect())
    }

    /// domain.md §4: every rule of a report, each named by its field.
    #[test]
    fn report_rules() {
        use Effect::*;
        use Rater::*;
        use Severity::*;
        let cases: Vec<(SideEffectReport, Result<(), Vec<&str>>)> = vec![
            (report(Nausea, Mild, Patient, 30, Some(90), None), Ok(())),
            (
                report(Nausea, Mild, Patient, -1, None, None),
                Err(vec!["onset_at"]),
            ),
            (report(Nausea, Mild, Patient, 0, None, None), Ok(())),
            (
                report(Nausea, Mild, Patient, 30, Some(29), None),
                Err(vec!["resolved_at"]),
            ),
            (report(Nausea, Mild, Patient, 30, Some(30), None), Ok(())),
            (
                report(Nausea, Mild, Patient, 606, None, None),
                Err(vec!["onset_at"]),
            ),
            (report(Nausea, Mild, Patient, 605, None, None), Ok(())),
            (
                report(Nausea, Mild, Patient, 30, Some(606), None),
                Err(vec!["resolved_at"]),
            ),
            (
                report(Nausea, LifeThreatening, Patient, 30, None, None),
                Err(vec!["severity"]),
            ),
            (
                report(Nausea, LifeThreatening, Clinician, 30, None, None),
                Ok(()),
            ),
            (report(Nausea, Severe, Patient, 30, None, None), Ok(())),
            (
                report(Other, Mild, Patient, 30, None, None),
                Err(vec!["note"]),
            ),
            (
                report(Other, Mild, Patient, 30, None, Some("   ")),
                Err(vec!["note"]),
            ),
            (
                report(Other, Mild, Patient, 30, None, Some("tingling lips")),
                Ok(()),
            ),
        ];
        for (r, expected) in cases {
            let got = check(r.clone()).map(drop);
            assert_eq!(
                got,
                expected.map_err(|v| v.into_iter().map(str::to_owned).collect()),
                "{r:?}"
            );
        }
    }

    /// domain.md §4: expected resolution times and persistence.
    #[test]
    fn persistence_after_the_expected_time() {
        let table = [
            (Effect::Dissociation, Some(4)),
            (Effect::IncreasedHeartRate, Some(4)),
            (Effect::Nausea, Some(24)),
            (Effect::Other, Some(24)),
            (Effect::BladderSymptoms, None),
            (Effect::Craving, None),
            (Effect::ManiaSymptoms, None),
        ];
        for (effect, hours) in table {
            assert_eq!(
                effect.expected_resolution(Persistence::default()),
                hours.map(Duration::hours),
                "{effect}"
            );
        }
        let dissociation = report(
            Effect::Dissociation,
            Severity::Mild,
            Rater::Patient,
            0,
            None,
            None,
        );
        assert!(
            !persistent(&dissociation, at(240), Persistence::default()),
            "exactly 4 h is not yet past it"
        );
        assert!(persistent(&dissociation, at(241), Persistence::default()));
        assert_eq!(
            dissociation.persistent_from(Persistence::default()),
            Some(at(240) + Duration::microseconds(1)),
            "the sweep wakes the microsecond after 4 h"
        );
        assert!(persistent(
            &dissociation,
            at(240) + Duration::microseconds(1),
            Persistence::default()
        ));
        let resolved = report(
            Effect::Dissociation,
            Severity::Mild,
            Rater::Patient,
            0,
            Some(500),
            None,
        );
        assert!(!persistent(&resolved, at(1000), Persistence::default()));
        assert_eq!(resolved.persistent_from(Persistence::default()), None);
        let bladder = report(
            Effect::BladderSymptoms,
            Severity::Mild,
            Rater::Patient,
            0,
            None,
            None,
        );
        assert!(persistent(&bladder, at(0), Persistence::default()));
        assert!(
            persistent(&bladder, at(-60), Persistence::default()),
            "never expected to resolve: persistent whatever the clock says"
        );
        assert_eq!(Effect::ALL.len(), 19);
        let strict = Persistence {
            short: Duration::hours(2),
            ..Persistence::default()
        };
        assert!(
            persistent(&dissociation, at(121), strict),
            "a clinic may expect less"
        );
    }
}
