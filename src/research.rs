//! Research results (domain.md §8) from the rows the store reads: each row is placed in its
//! group, each group summarised with the statistics of `domain::research`, and small cells
//! suppressed. Nothing here identifies a patient: groups carry only the dimension values.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{Datelike, NaiveDateTime};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::instrument::Instrument;
use crate::domain::research::{
    self, kaplan_meier_median, mean_sd, median, rate, Dimension, Observation, Rate,
};
use crate::domain::schedule::{self, Protocol};
use crate::store::research::{CourseFact, SessionFact, SideEffectFact};

/// A group: the value of each grouping dimension, by name.
pub type Group = BTreeMap<String, String>;

/// Filters on dimension values that the database does not apply (they are derived).
#[derive(Clone, Debug, Default)]
pub struct DerivedFilter {
    pub dose_band: Option<String>,
    pub age_band: Option<String>,
    pub phase: Option<String>,
}

/// A completed session with the values of every dimension.
pub struct Placed<'a> {
    pub fact: &'a SessionFact,
    pub dims: HashMap<Dimension, String>,
}

/// Derives every dimension of each session and keeps those the derived filters allow.
pub fn place<'a>(
    facts: &'a [SessionFact],
    first_sessions: &HashMap<String, NaiveDateTime>,
    filter: &DerivedFilter,
) -> Vec<Placed<'a>> {
    facts
        .iter()
        .filter_map(|f| {
            let first_year = first_sessions
                .get(&f.patient_id)
                .map_or(f.started_at.year(), |t| t.year());
            let protocol = f.protocol.parse().unwrap_or(Protocol::Custom);
            let dims = HashMap::from([
                (Dimension::Indication, f.indication.clone()),
                (Dimension::Route, f.route.clone()),
                (
                    Dimension::DoseBand,
                    research::dose_band(f.dose_mg_per_kg).to_owned(),
                ),
                (Dimension::Sex, f.sex.clone()),
                (
                    Dimension::AgeBand,
                    research::age_band(f.birth_year, first_year),
                ),
                (Dimension::Clinic, f.clinic_id.clone()),
                (
                    Dimension::Phase,
                    schedule::phase_of(protocol, f.start_date, f.started_at.date())
                        .as_str()
                        .to_owned(),
                ),
            ]);
            let allowed = [
                (Dimension::DoseBand, &filter.dose_band),
                (Dimension::AgeBand, &filter.age_band),
                (Dimension::Phase, &filter.phase),
            ]
            .iter()
            .all(|(d, wanted)| wanted.as_ref().is_none_or(|w| dims.get(d) == Some(w)));
            allowed.then_some(Placed { fact: f, dims })
        })
        .collect()
}

fn group_of(dims: &HashMap<Dimension, String>, group_by: &[Dimension]) -> Group {
    group_by
        .iter()
        .map(|d| {
            (
                d.as_str().to_owned(),
                dims.get(d).cloned().unwrap_or_default(),
            )
        })
        .collect()
}

/// A proportion with its numerator and denominator; all null in a suppressed row.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"numerator": 3, "denominator": 5, "rate": 0.6}))]
pub struct RateResponse {
    pub numerator: Option<usize>,
    pub denominator: Option<usize>,
    pub rate: Option<f64>,
}

impl From<Rate> for RateResponse {
    fn from(r: Rate) -> Self {
        Self {
            numerator: Some(r.numerator),
            denominator: Some(r.denominator),
            rate: r.rate,
        }
    }
}

impl RateResponse {
    fn hidden() -> Self {
        Self {
            numerator: None,
            denominator: None,
            rate: None,
        }
    }
}

/// One outcome row (domain.md §8, Outcomes). Every figure is null when `suppressed`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"group": {"indication": "treatment_resistant_depression", "route": "iv"}, "suppressed": false,
    "patients": 24, "courses": 25, "sessions": 213, "course_baseline_mean": 19.4, "course_baseline_sd": 3.2, "course_baseline_n": 25,
    "end_of_induction_response": {"numerator": 11, "denominator": 20, "rate": 0.55},
    "end_of_induction_remission": {"numerator": 5, "denominator": 20, "rate": 0.25},
    "median_time_to_response_days": 9.0,
    "session_benefit": {"numerator": 120, "denominator": 180, "rate": 0.6667},
    "km_median_durability_days": 11.5,
    "wears_off_within_days": {"numerator": 40, "denominator": 120, "rate": 0.3333},
    "mean_charge_per_course_cents": 325000.0, "charge_per_responder_cents": 739000.0}))]
pub struct OutcomeRow {
    /// The value of each grouping dimension.
    #[schema(value_type = Object)]
    pub group: Group,
    pub suppressed: bool,
    pub patients: Option<usize>,
    pub courses: Option<usize>,
    pub sessions: Option<usize>,
    /// Course baseline severity (only when an instrument is chosen: severities of different
    /// instruments do not average).
    pub course_baseline_mean: Option<f64>,
    pub course_baseline_sd: Option<f64>,
    pub course_baseline_n: Option<usize>,
    /// Among courses with an end-of-induction score and a baseline.
    pub end_of_induction_response: RateResponse,
    /// Among courses with an end-of-induction score.
    pub end_of_induction_remission: RateResponse,
    pub median_time_to_response_days: Option<f64>,
    /// Sessions with benefit among sessions that could be judged (a baseline and a follow-up).
    pub session_benefit: RateResponse,
    /// Kaplan–Meier median over sessions with benefit (wore_off = event, sustained =
    /// censored); null when the curve never falls to 0.5.
    pub km_median_durability_days: Option<f64>,
    /// Sessions whose benefit wore off within W days, among sessions with benefit.
    pub wears_off_within_days: RateResponse,
    pub mean_charge_per_course_cents: Option<f64>,
    /// All charges of the group over the courses that responded by the end of induction.
    pub charge_per_responder_cents: Option<f64>,
}

/// The outcome rows of a grouping, ordered by group, small cells suppressed.
pub fn outcome_rows(
    placed: &[Placed<'_>],
    courses: &[CourseFact],
    group_by: &[Dimension],
    wear_off_days: f64,
    with_baseline: bool,
    k: usize,
) -> Vec<OutcomeRow> {
    let course_facts: HashMap<&str, &CourseFact> =
        courses.iter().map(|c| (c.0.as_str(), c)).collect();
    let mut groups: BTreeMap<Group, Vec<&SessionFact>> = BTreeMap::new();
    for p in placed {
        groups
            .entry(group_of(&p.dims, group_by))
            .or_default()
            .push(p.fact);
    }
    let rows: Vec<OutcomeRow> = groups
        .into_iter()
        .map(|(group, sessions)| {
            let patients: HashSet<&str> = sessions.iter().map(|s| s.patient_id.as_str()).collect();
            let course_ids: HashSet<&str> = sessions.iter().map(|s| s.course_id.as_str()).collect();
            let course_rows: Vec<&CourseFact> = course_ids
                .iter()
                .filter_map(|c| course_facts.get(c).copied())
                .collect();
            let baselines: Vec<f64> = course_rows
                .iter()
                .filter_map(|c| c.1)
                .map(f64::from)
                .collect();
            let (mean, sd) = mean_sd(&baselines);
            let judged_response: Vec<bool> = course_rows.iter().filter_map(|c| c.2).collect();
            let judged_remission: Vec<bool> = course_rows.iter().filter_map(|c| c.3).collect();
            let responders = judged_response.iter().filter(|r| **r).count();
            let times: Vec<f64> = course_rows.iter().filter_map(|c| c.4).collect();
            let status = |s: &&SessionFact, list: &[&str]| {
                s.status.as_deref().is_some_and(|st| list.contains(&st))
            };
            let judged = sessions
                .iter()
                .filter(|s| status(s, &["no_benefit", "wore_off", "sustained"]))
                .count();
            let with_benefit: Vec<&&SessionFact> = sessions
                .iter()
                .filter(|s| status(s, &["wore_off", "sustained"]))
                .collect();
            let observations: Vec<Observation> = with_benefit
                .iter()
                .map(|s| Observation {
                    time: s.durability_days.unwrap_or(0.0),
                    event: s.status.as_deref() == Some("wore_off"),
                })
                .collect();
            let within = with_benefit
                .iter()
                .filter(|s| {
                    s.status.as_deref() == Some("wore_off")
                        && s.durability_days.is_some_and(|d| d <= wear_off_days)
                })
                .count();
            let charges: i64 = sessions.iter().filter_map(|s| s.charge_cents).sum();
            OutcomeRow {
                group,
                suppressed: false,
                patients: Some(patients.len()),
                courses: Some(course_ids.len()),
                sessions: Some(sessions.len()),
                course_baseline_mean: mean.filter(|_| with_baseline),
                course_baseline_sd: sd.filter(|_| with_baseline),
                course_baseline_n: with_baseline.then_some(baselines.len()),
                end_of_induction_response: rate(responders, judged_response.len()).into(),
                end_of_induction_remission: rate(
                    judged_remission.iter().filter(|r| **r).count(),
                    judged_remission.len(),
                )
                .into(),
                median_time_to_response_days: median(&times),
                session_benefit: rate(with_benefit.len(), judged).into(),
                km_median_durability_days: kaplan_meier_median(&observations),
                wears_off_within_days: rate(within, with_benefit.len()).into(),
                mean_charge_per_course_cents: (!course_ids.is_empty())
                    .then(|| charges as f64 / course_ids.len() as f64),
                charge_per_responder_cents: (responders > 0)
                    .then(|| charges as f64 / responders as f64),
            }
        })
        .collect();
    suppress(
        rows,
        k,
        |r| r.patients.unwrap_or(0),
        |r| {
            *r = OutcomeRow {
                group: std::mem::take(&mut r.group),
                suppressed: true,
                patients: None,
                courses: None,
                sessions: None,
                course_baseline_mean: None,
                course_baseline_sd: None,
                course_baseline_n: None,
                end_of_induction_response: RateResponse::hidden(),
                end_of_induction_remission: RateResponse::hidden(),
                median_time_to_response_days: None,
                session_benefit: RateResponse::hidden(),
                km_median_durability_days: None,
                wears_off_within_days: RateResponse::hidden(),
                mean_charge_per_course_cents: None,
                charge_per_responder_cents: None,
            }
        },
    )
}

/// Applies the small-cell rule to the rows of one grouping.
fn suppress<R>(
    mut rows: Vec<R>,
    k: usize,
    patients: impl Fn(&R) -> usize,
    hide: impl Fn(&mut R),
) -> Vec<R> {
    let counts: Vec<usize> = rows.iter().map(&patients).collect();
    for (row, hidden) in rows.iter_mut().zip(research::suppressed(&counts, k)) {
        if hidden {
            hide(row);
        }
    }
    rows
}

/// One side-effect row (domain.md §8, Side effects) for one effect in one group.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"group": {"route": "iv"}, "effect": "nausea", "suppressed": false, "patients": 18, "reports": 31,
    "sessions": 240, "sessions_with_effect_per_100": 12.5, "severity_counts": {"mild": 20, "moderate": 9, "severe": 2, "life_threatening": 0},
    "median_hours_to_resolution": 3.5, "share_unresolved": 0.0323}))]
pub struct SideEffectRow {
    #[schema(value_type = Object)]
    pub group: Group,
    pub effect: String,
    pub suppressed: bool,
    /// Distinct patients with the effect in the group.
    pub patients: Option<usize>,
    pub reports: Option<usize>,
    /// All completed sessions of the group: the denominator of the incidence.
    pub sessions: Option<usize>,
    pub sessions_with_effect_per_100: Option<f64>,
    #[schema(value_type = Option<Object>)]
    pub severity_counts: Option<BTreeMap<String, usize>>,
    pub median_hours_to_resolution: Option<f64>,
    pub share_unresolved: Option<f64>,
}

pub fn side_effect_rows(
    placed: &[Placed<'_>],
    effects: &[SideEffectFact],
    group_by: &[Dimension],
    k: usize,
) -> Vec<SideEffectRow> {
    let by_session: HashMap<&str, &Placed<'_>> = placed
        .iter()
        .map(|p| (p.fact.session_id.as_str(), p))
        .collect();
    let mut sessions_per_group: BTreeMap<Group, usize> = BTreeMap::new();
    for p in placed {
        *sessions_per_group
            .entry(group_of(&p.dims, group_by))
            .or_default() += 1;
    }
    let mut cells: BTreeMap<(String, Group), Vec<(&SideEffectFact, &Placed<'_>)>> = BTreeMap::new();
    for e in effects {
        if let Some(p) = by_session.get(e.session_id.as_str()) {
            cells
                .entry((e.effect.clone(), group_of(&p.dims, group_by)))
                .or_default()
                .push((e, p));
        }
    }
    let mut rows = Vec::new();
    let effects_in_order: Vec<String> = cells
        .keys()
        .map(|(e, _)| e.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    for effect in effects_in_order {
        let of_effect: Vec<SideEffectRow> = cells
            .iter()
            .filter(|((e, _), _)| *e == effect)
            .map(|((_, group), reports)| {
                let sessions = sessions_per_group.get(group).copied().unwrap_or(0);
                let affected: HashSet<&str> =
                    reports.iter().map(|(e, _)| e.session_id.as_str()).collect();
                let patients: HashSet<&str> = reports
                    .iter()
                    .map(|(_, p)| p.fact.patient_id.as_str())
                    .collect();
                let mut severity = BTreeMap::from([
                    ("mild".to_owned(), 0),
                    ("moderate".to_owned(), 0),
                    ("severe".to_owned(), 0),
                    ("life_threatening".to_owned(), 0),
                ]);
                for (e, _) in reports {
                    *severity.entry(e.severity.clone()).or_default() += 1;
                }
                let hours: Vec<f64> = reports
                    .iter()
                    .filter_map(|(e, _)| {
                        e.resolved_at
                            .map(|r| (r - e.onset_at).num_seconds() as f64 / 3600.0)
                    })
                    .collect();
                let unresolved = reports
                    .iter()
                    .filter(|(e, _)| e.resolved_at.is_none())
                    .count();
                SideEffectRow {
                    group: group.clone(),
                    effect: effect.clone(),
                    suppressed: false,
                    patients: Some(patients.len()),
                    reports: Some(reports.len()),
                    sessions: Some(sessions),
                    sessions_with_effect_per_100: (sessions > 0).then(|| {
                        (affected.len() as f64 * 100.0 / sessions as f64 * 100.0).round() / 100.0
                    }),
                    severity_counts: Some(severity),
                    median_hours_to_resolution: median(&hours).map(|h| (h * 100.0).round() / 100.0),
                    share_unresolved: rate(unresolved, reports.len()).rate,
                }
            })
            .collect();
        rows.extend(suppress(
            of_effect,
            k,
            |r| r.patients.unwrap_or(0),
            |r| {
                r.suppressed = true;
                r.patients = None;
                r.reports = None;
                r.sessions = None;
                r.sessions_with_effect_per_100 = None;
                r.severity_counts = None;
                r.median_hours_to_resolution = None;
                r.share_unresolved = None;
            },
        ));
    }
    rows
}

/// One trajectory row: the severities of one instrument in one week since the first
/// session, in one group.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"group": {"indication": "ptsd"}, "week": 2, "suppressed": false, "patients": 14, "count": 30, "mean": 38.2, "sd": 9.4}))]
pub struct TrajectoryRow {
    #[schema(value_type = Object)]
    pub group: Group,
    /// Whole weeks since the patient's first session, 0–52.
    pub week: i64,
    pub suppressed: bool,
    pub patients: Option<usize>,
    /// Scores in the cell.
    pub count: Option<usize>,
    pub mean: Option<f64>,
    pub sd: Option<f64>,
}

/// Weekly mean severities. `patient_dims` gives each patient's group values; `scores` are
/// (patient, time, total).
pub fn trajectory_rows(
    scores: &[(String, NaiveDateTime, i32)],
    first_sessions: &HashMap<String, NaiveDateTime>,
    patient_dims: &HashMap<String, HashMap<Dimension, String>>,
    instrument: Instrument,
    group_by: &[Dimension],
    k: usize,
) -> Vec<TrajectoryRow> {
    let def = instrument.definition();
    let mut cells: BTreeMap<(i64, Group), Vec<(&str, f64)>> = BTreeMap::new();
    for (patient, at, total) in scores {
        let (Some(first), Some(dims)) = (first_sessions.get(patient), patient_dims.get(patient))
        else {
            continue;
        };
        let days = (*at - *first).num_seconds();
        if days < 0 {
            continue;
        }
        let week = days / (7 * 86_400);
        if week > 52 {
            continue;
        }
        cells
            .entry((week, group_of(dims, group_by)))
            .or_default()
            .push((patient.as_str(), f64::from(def.severity(*total))));
    }
    let mut rows = Vec::new();
    let weeks: std::collections::BTreeSet<i64> = cells.keys().map(|(w, _)| *w).collect();
    for week in weeks {
        let of_week: Vec<TrajectoryRow> = cells
            .iter()
            .filter(|((w, _), _)| *w == week)
            .map(|((_, group), values)| {
                let severities: Vec<f64> = values.iter().map(|(_, v)| *v).collect();
                let (mean, sd) = mean_sd(&severities);
                TrajectoryRow {
                    group: group.clone(),
                    week,
                    suppressed: false,
                    patients: Some(values.iter().map(|(p, _)| *p).collect::<HashSet<_>>().len()),
                    count: Some(values.len()),
                    mean,
                    sd,
                }
            })
            .collect();
        rows.extend(suppress(
            of_week,
            k,
            |r| r.patients.unwrap_or(0),
            |r| {
                r.suppressed = true;
                r.patients = None;
                r.count = None;
                r.mean = None;
                r.sd = None;
            },
        ));
    }
    rows
}

/// One row of the de-identified export: no ids but a per-export pseudonym, no calendar dates
/// but days since the patient's first session, an age band instead of a birth year, and never
/// notes, external references, emails, accounts or clinics.
#[derive(Debug, Default, Serialize, ToSchema)]
#[schema(example = json!({"kind": "assessment", "patient": "5f1c0a9e7b3d2e41", "day": 3.958, "sex": "female", "age_band": "40-49",
    "indication": "treatment_resistant_depression", "route": null, "dose_band": null, "dose_mg_per_kg": null, "total_dose_mg": null,
    "session_status": null, "phase": null, "charge_cents": null, "benefit_status": null, "durability_days": null,
    "instrument": "phq9", "total": 9, "severity": 9, "band": "mild", "effect": null, "effect_severity": null, "resolved_day": null}))]
pub struct ExportRow {
    /// `session`, `assessment` or `side_effect`.
    pub kind: &'static str,
    /// A pseudonym of the patient, different in every export.
    pub patient: String,
    /// Days since the patient's first completed session (negative before it).
    pub day: f64,
    pub sex: String,
    pub age_band: String,
    /// The course's indication (sessions), or the patient's first course's.
    pub indication: Option<String>,
    pub route: Option<String>,
    pub dose_band: Option<String>,
    pub dose_mg_per_kg: Option<f64>,
    pub total_dose_mg: Option<f64>,
    pub session_status: Option<String>,
    pub phase: Option<String>,
    pub charge_cents: Option<i64>,
    pub benefit_status: Option<String>,
    pub durability_days: Option<f64>,
    pub instrument: Option<String>,
    pub total: Option<i32>,
    pub severity: Option<i32>,
    pub band: Option<String>,
    pub effect: Option<String>,
    pub effect_severity: Option<String>,
    pub resolved_day: Option<f64>,
}

fn offset(from: NaiveDateTime, at: NaiveDateTime) -> f64 {
    ((at - from).num_seconds() as f64 / 86_400.0 * 1000.0).round() / 1000.0
}

/// The export rows of one patient, in time order. Patients without a completed session have
/// no day 0 and are left out.
pub fn export_rows(
    pseudonym: &str,
    sex: &str,
    birth_year: i32,
    batch: &crate::store::research::ExportBatch,
    patient_id: &str,
    filter: &DerivedFilter,
) -> Vec<ExportRow> {
    let sessions: Vec<_> = batch
        .sessions
        .iter()
        .filter(|s| s.patient_id == patient_id)
        .collect();
    let Some(first) = sessions
        .iter()
        .filter(|s| s.status == "completed")
        .map(|s| s.started_at)
        .min()
    else {
        return vec![];
    };
    let age_band = research::age_band(birth_year, first.year());
    if filter.age_band.as_ref().is_some_and(|a| *a != age_band) {
        return vec![];
    }
    let courses: HashMap<&str, &crate::store::courses::CourseRow> = batch
        .courses
        .iter()
        .filter(|c| c.patient_id == patient_id)
        .map(|c| (c.id.as_str(), c))
        .collect();
    let first_indication = sessions
        .iter()
        .find(|s| s.started_at == first)
        .and_then(|s| courses.get(s.course_id.as_str()))
        .map(|c| c.indication.clone());
    let base = |kind, at| ExportRow {
        kind,
        patient: pseudonym.to_owned(),
        day: offset(first, at),
        sex: sex.to_owned(),
        age_band: age_band.clone(),
        indication: first_indication.clone(),
        ..ExportRow::default()
    };
    let mut rows = Vec::new();
    let mut session_phase = HashMap::new();
    for s in &sessions {
        let course = courses.get(s.course_id.as_str());
        let phase = course.map(|c| {
            schedule::phase_of(
                c.protocol.parse().unwrap_or(Protocol::Custom),
                c.start_date,
                s.started_at.date(),
            )
            .as_str()
            .to_owned()
        });
        let dose_band = research::dose_band(s.dose_mg_per_kg).to_owned();
        session_phase.insert(
            s.id.as_str(),
            (s.route.clone(), dose_band.clone(), phase.clone()),
        );
        if !session_allowed(filter, &dose_band, phase.as_deref()) {
            continue;
        }
        let outcome = batch.outcomes.iter().find(|o| o.session_id == s.id);
        rows.push(ExportRow {
            indication: course.map(|c| c.indication.clone()),
            route: Some(s.route.clone()),
            dose_band: Some(dose_band),
            dose_mg_per_kg: Some(s.dose_mg_per_kg),
            total_dose_mg: Some(s.total_dose_mg),
            session_status: Some(s.status.clone()),
            phase,
            charge_cents: s.charge_cents,
            benefit_status: outcome.map(|o| o.status.clone()),
            durability_days: outcome.and_then(|o| o.durability_days),
            ..base("session", s.started_at)
        });
    }
    for a in batch
        .assessments
        .iter()
        .filter(|a| a.patient_id == patient_id)
    {
        let instrument: Option<Instrument> = a.instrument.parse().ok();
        rows.push(ExportRow {
            instrument: Some(a.instrument.clone()),
            total: Some(a.total),
            severity: instrument.map(|i| i.definition().severity(a.total)),
            band: a.band.clone(),
            ..base("assessment", a.taken_at)
        });
    }
    for e in batch
        .side_effects
        .iter()
        .filter(|e| e.patient_id == patient_id)
    {
        let Some((route, dose_band, phase)) = session_phase.get(e.session_id.as_str()) else {
            continue;
        };
        if !session_allowed(filter, dose_band, phase.as_deref()) {
            continue;
        }
        rows.push(ExportRow {
            route: Some(route.clone()),
            dose_band: Some(dose_band.clone()),
            phase: phase.clone(),
            effect: Some(e.effect.clone()),
            effect_severity: Some(e.severity.clone()),
            resolved_day: e.resolved_at.map(|r| offset(first, r)),
            ..base("side_effect", e.onset_at)
        });
    }
    rows.sort_by(|a, b| a.day.total_cmp(&b.day));
    rows
}

fn session_allowed(filter: &DerivedFilter, dose_band: &str, phase: Option<&str>) -> bool {
    filter.dose_band.as_deref().is_none_or(|d| d == dose_band)
        && filter.phase.as_deref().is_none_or(|p| Some(p) == phase)
}
