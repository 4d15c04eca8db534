//! Any bytes as each create request's body (a FHIR QuestionnaireResponse among them), then
//! through the domain rules the body meets in its handler. Whatever a client sends, parsing and
//! checking answer Ok or a rule broken — never a panic, which the server would turn into a 500.
#![no_main]

use chrono::{Datelike, Duration, Utc};
use ketamine_outcomes::api::{assessments, courses, fhir, patients, sessions, side_effects};
use ketamine_outcomes::domain::ids::PatientId;
use ketamine_outcomes::domain::instrument::Scored;
use ketamine_outcomes::domain::side_effect::{ReportContext, SideEffectReport};
use ketamine_outcomes::domain::{flags, patient, schedule};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let now = Utc::now();
    if let Ok(body) = serde_json::from_slice::<assessments::CreateAssessmentRequest>(data) {
        if let Ok(scored) = Scored::score(body.instrument, &body.items) {
            let definition = body.instrument.definition();
            assert_eq!(scored.items.len(), definition.items);
            assert!(scored.total >= 0);
            let _ = flags::assessment_flags(&scored);
        }
    }
    if let Ok(body) = serde_json::from_slice::<sessions::CreateSessionRequest>(data) {
        if let Ok(checked) = body.draft().administration.check(now) {
            assert!(checked.total_dose_mg() > 0.0);
        }
    }
    if let Ok(body) = serde_json::from_slice::<side_effects::CreateSideEffectRequest>(data) {
        let report = SideEffectReport {
            effect: body.effect,
            severity: body.severity,
            onset_at: body.onset_at,
            resolved_at: body.resolved_at,
            reported_by: ketamine_outcomes::domain::instrument::Rater::Patient,
            note: body.note,
        };
        let context = ReportContext {
            session_started_at: now - Duration::hours(2),
            now,
        };
        let _ = SideEffectReport::new(report, &context);
    }
    if let Ok(body) = serde_json::from_slice::<patients::CreatePatientRequest>(data) {
        if let Ok(year) = patient::BirthYear::parse(body.birth_year, now.year()) {
            assert!((1900..=now.year()).contains(&year.get()));
        }
        let _ = patient::indications(&body.indications);
        if let Some(reference) = &body.external_ref {
            let _ = patient::external_ref(reference);
        }
    }
    // A FHIR QuestionnaireResponse: its answers read as an instrument's items, or refused.
    if let Ok(body) = serde_json::from_slice::<fhir::QuestionnaireResponseIn>(data) {
        if let Ok((_, draft)) = body.draft(PatientId::random()) {
            let definition = draft.instrument.definition();
            assert_eq!(draft.items.len(), definition.items);
            assert!(Scored::score(draft.instrument, &draft.items).is_ok());
        }
    }
    if let Ok(body) = serde_json::from_slice::<courses::CreateCourseRequest>(data) {
        if let Some(dates) = &body.planned_dates {
            let _ = schedule::custom_dates(dates);
        }
        if let Some(plan) = body.measurement_plan {
            let _ = plan.check();
        }
    }
});
