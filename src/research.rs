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
    pub adherence_band: Option<String>,
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
    adherence: &HashMap<String, (usize, usize)>,
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
                (Dimension::AdherenceBand, {
                    let (completed, due) = adherence.get(&f.course_id).copied().unwrap_or((0, 0));
                    research::adherence_band(completed, due).to_owned()
                }),
            ]);
            let allowed = [
                (Dimension::DoseBand, &filter.dose_band),
                (Dimension::AgeBand, &filter.age_band),
                (Dimension::Phase, &filter.phase),
                (Dimension::AdherenceBand, &filter.adherence_band),
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
    "mean_charge_per_course_cents": 325000.0, "charge_per_responder_cents": 739000.0,
    "sessions_with_follow_up": 180, "adherence": {"numerator": 610, "denominator": 820, "rate": 0.7439}}))]
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
    /// Sessions with a baseline and a follow-up: enough to judge benefit and wear-off.
    pub sessions_with_follow_up: Option<usize>,
    /// Of the items the group's courses' measurement plans made due, those completed on time.
    pub adherence: RateResponse,
}

/// What one group of sessions adds up to, gathered a page of rows at a time.
#[derive(Default)]
struct OutcomeCell {
    patients: HashSet<String>,
    courses: HashSet<String>,
    sessions: usize,
    /// Sessions with a baseline and a follow-up.
    judged: usize,
    /// Sessions with benefit, as Kaplan–Meier observations.
    benefit: Vec<Observation>,
    within: usize,
    charges: i64,
}

/// The outcome rows of a grouping, built a page of sessions at a time.
pub struct OutcomeAggregate {
    group_by: Vec<Dimension>,
    wear_off_days: f64,
    cells: BTreeMap<Group, OutcomeCell>,
}

impl OutcomeAggregate {
    pub fn new(group_by: &[Dimension], wear_off_days: f64) -> Self {
        Self {
            group_by: group_by.to_vec(),
            wear_off_days,
            cells: BTreeMap::new(),
        }
    }

    pub fn add(&mut self, p: &Placed<'_>) {
        let cell = self
            .cells
            .entry(group_of(&p.dims, &self.group_by))
            .or_default();
        let s = p.fact;
        cell.patients.insert(s.patient_id.clone());
        cell.courses.insert(s.course_id.clone());
        cell.sessions += 1;
        cell.charges += s.charge_cents.unwrap_or(0);
        let status = s.status.as_deref();
        if matches!(status, Some("no_benefit" | "wore_off" | "sustained")) {
            cell.judged += 1;
        }
        if matches!(status, Some("wore_off" | "sustained")) {
            let event = status == Some("wore_off");
            let time = s.durability_days.unwrap_or(0.0);
            cell.benefit.push(Observation { time, event });
            if event && time <= self.wear_off_days {
                cell.within += 1;
            }
        }
    }

    /// Every course the groups hold, for fetching their outcomes.
    pub fn course_ids(&self) -> Vec<String> {
        let all: HashSet<&String> = self.cells.values().flat_map(|c| c.courses.iter()).collect();
        all.into_iter().cloned().collect()
    }

    /// The rows, ordered by group, small cells suppressed.
    pub fn rows(
        self,
        courses: &HashMap<String, CourseFact>,
        adherence: &HashMap<String, (usize, usize)>,
        with_baseline: bool,
        k: usize,
    ) -> Vec<OutcomeRow> {
        let rows: Vec<OutcomeRow> = self
            .cells
            .into_iter()
            .map(|(group, cell)| cell.row(group, courses, adherence, with_baseline))
            .collect();
        suppress(rows, k, |r| r.patients.unwrap_or(0), OutcomeRow::hide)
    }
}

impl OutcomeCell {
    fn row(
        self,
        group: Group,
        courses: &HashMap<String, CourseFact>,
        adherence: &HashMap<String, (usize, usize)>,
        with_baseline: bool,
    ) -> OutcomeRow {
        let (completed, due) = self
            .courses
            .iter()
            .filter_map(|c| adherence.get(c))
            .fold((0, 0), |(c, d), (cc, dd)| (c + cc, d + dd));
        let course_rows: Vec<&CourseFact> =
            self.courses.iter().filter_map(|c| courses.get(c)).collect();
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
        let courses = self.courses.len();
        OutcomeRow {
            group,
            suppressed: false,
            patients: Some(self.patients.len()),
            courses: Some(courses),
            sessions: Some(self.sessions),
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
            session_benefit: rate(self.benefit.len(), self.judged).into(),
            km_median_durability_days: kaplan_meier_median(&self.benefit),
            wears_off_within_days: rate(self.within, self.benefit.len()).into(),
            mean_charge_per_course_cents: (courses > 0)
                .then(|| self.charges as f64 / courses as f64),
            charge_per_responder_cents: (responders > 0)
                .then(|| self.charges as f64 / responders as f64),
            sessions_with_follow_up: Some(self.judged),
            adherence: rate(completed, due).into(),
        }
    }
}

impl OutcomeRow {
    fn hide(&mut self) {
        *self = OutcomeRow {
            group: std::mem::take(&mut self.group),
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
            sessions_with_follow_up: None,
            adherence: RateResponse::hidden(),
        }
    }
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

#[derive(Default)]
struct EffectCell {
    patients: HashSet<String>,
    sessions: HashSet<String>,
    reports: usize,
    severity: BTreeMap<String, usize>,
    hours: Vec<f64>,
    unresolved: usize,
}

/// The side-effect rows of a grouping, built a page at a time: every session of a group
/// counts in its denominator; every report in its effect's cell.
pub struct SideEffectAggregate {
    group_by: Vec<Dimension>,
    sessions: BTreeMap<Group, usize>,
    cells: BTreeMap<(String, Group), EffectCell>,
}

impl SideEffectAggregate {
    pub fn new(group_by: &[Dimension]) -> Self {
        Self {
            group_by: group_by.to_vec(),
            sessions: BTreeMap::new(),
            cells: BTreeMap::new(),
        }
    }

    pub fn add_session(&mut self, p: &Placed<'_>) {
        *self
            .sessions
            .entry(group_of(&p.dims, &self.group_by))
            .or_default() += 1;
    }

    pub fn add_report(&mut self, p: &Placed<'_>, e: &SideEffectFact) {
        let cell = self
            .cells
            .entry((e.effect.clone(), group_of(&p.dims, &self.group_by)))
            .or_default();
        cell.patients.insert(p.fact.patient_id.clone());
        cell.sessions.insert(p.fact.session_id.clone());
        cell.reports += 1;
        *cell.severity.entry(e.severity.clone()).or_default() += 1;
        match e.resolved_at {
            Some(r) => cell
                .hours
                .push((r - e.onset_at).num_seconds() as f64 / 3600.0),
            None => cell.unresolved += 1,
        }
    }

    /// The rows, by effect and group; suppression applies among the groups of one effect.
    pub fn rows(self, k: usize) -> Vec<SideEffectRow> {
        let mut by_effect: BTreeMap<String, Vec<SideEffectRow>> = BTreeMap::new();
        for ((effect, group), cell) in self.cells {
            let sessions = self.sessions.get(&group).copied().unwrap_or(0);
            let mut severity: BTreeMap<String, usize> =
                ["mild", "moderate", "severe", "life_threatening"]
                    .iter()
                    .map(|s| (s.to_string(), 0))
                    .collect();
            severity.extend(cell.severity);
            by_effect
                .entry(effect.clone())
                .or_default()
                .push(SideEffectRow {
                    group,
                    effect,
                    suppressed: false,
                    patients: Some(cell.patients.len()),
                    reports: Some(cell.reports),
                    sessions: Some(sessions),
                    sessions_with_effect_per_100: (sessions > 0).then(|| {
                        (cell.sessions.len() as f64 * 10_000.0 / sessions as f64).round() / 100.0
                    }),
                    severity_counts: Some(severity),
                    median_hours_to_resolution: median(&cell.hours)
                        .map(|h| (h * 100.0).round() / 100.0),
                    share_unresolved: rate(cell.unresolved, cell.reports).rate,
                });
        }
        by_effect
            .into_values()
            .flat_map(|rows| {
                suppress(
                    rows,
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
                )
            })
            .collect()
    }
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
