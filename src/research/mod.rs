//! Research results (domain.md §8) from the rows the store reads: each row is placed in its
//! group, and each group summarised — exactly, with small cells withheld, for the `controlled`
//! tier (here), or with differential privacy for the `aggregate` tier (`private`). Nothing
//! here identifies a patient: groups carry only the dimension values, and a withheld group
//! leaves no trace but the count of withheld groups.

pub mod access;
pub mod export;
pub mod grants;
pub mod noise;
pub mod private;
pub mod query;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{Datelike, NaiveDateTime};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::ids::{CourseId, PatientId, SessionId};
use crate::domain::instrument::Instrument;
use crate::domain::outcomes::BenefitStatus;
use crate::domain::research::{
    self, kaplan_meier_median, mean_sd, median, rate, AdherenceBand, AgeBand, Dimension, DoseBand,
    InfusionNumberBand, Observation, Rate,
};
use crate::domain::schedule;
use crate::domain::side_effect::Effect;
use crate::store::research::{CourseFact, Reads, ScoreFact, SessionFact, SideEffectFact};

/// A group: the value of each grouping dimension, by name.
pub type Group = BTreeMap<String, String>;

/// A group's key: the value of each dimension the query grouped by, and only those (so none
/// is required). It describes `Group` in the contract.
#[derive(ToSchema)]
#[schema(example = json!({"indication": "treatment_resistant_depression", "route": "iv"}))]
pub struct GroupKey {
    #[schema(required = false)]
    pub indication: crate::domain::patient::Indication,
    #[schema(required = false)]
    pub route: crate::domain::treatment::Route,
    #[schema(required = false)]
    pub dose_band: crate::domain::research::DoseBand,
    #[schema(required = false)]
    pub sex: crate::domain::patient::Sex,
    /// A 10-year band such as `40-49`, or `90+`.
    #[schema(
        required = false,
        pattern = r"^(0-9|10-19|20-29|30-39|40-49|50-59|60-69|70-79|80-89|90\+)$"
    )]
    pub age_band: String,
    /// A clinic's id.
    #[schema(required = false)]
    pub clinic: uuid::Uuid,
    #[schema(required = false)]
    pub phase: crate::domain::schedule::Phase,
    #[schema(required = false)]
    pub adherence_band: crate::domain::research::AdherenceBand,
    #[schema(required = false)]
    pub infusion_number: crate::domain::research::InfusionNumberBand,
}

/// How the contract describes a side effect's severity counts: every severity, always.
#[derive(ToSchema)]
#[schema(example = json!({"mild": 20, "moderate": 9, "severe": 2, "life_threatening": 0}))]
pub struct SeverityCounts {
    pub mild: usize,
    pub moderate: usize,
    pub severe: usize,
    pub life_threatening: usize,
}

/// Filters on dimension values that the database does not apply (they are derived).
#[derive(Clone, Debug, Default)]
pub struct DerivedFilter {
    pub dose_band: Option<String>,
    pub age_band: Option<String>,
    pub phase: Option<String>,
    pub adherence_band: Option<String>,
}

impl DerivedFilter {
    /// Each derived dimension with the value it must have, if the question sets one.
    fn wanted(&self) -> [(Dimension, Option<&str>); 4] {
        [
            (Dimension::DoseBand, self.dose_band.as_deref()),
            (Dimension::AgeBand, self.age_band.as_deref()),
            (Dimension::Phase, self.phase.as_deref()),
            (Dimension::AdherenceBand, self.adherence_band.as_deref()),
        ]
    }
}

/// What a question grouping by `group_by` and filtered by `derived` reads of each session:
/// the columns [`Placed::value`] derives those dimensions from, and no other.
pub fn dimension_reads(group_by: &[Dimension], derived: &DerivedFilter) -> Reads {
    let filtered = derived.wanted().into_iter().filter(|(_, v)| v.is_some());
    let asked: Vec<Dimension> = group_by
        .iter()
        .copied()
        .chain(filtered.map(|(d, _)| d))
        .collect();
    let asks = |d: Dimension| asked.contains(&d);
    Reads {
        dose: asks(Dimension::DoseBand),
        clinic: asks(Dimension::Clinic),
        sex: asks(Dimension::Sex),
        birth_year: asks(Dimension::AgeBand),
        schedule: asks(Dimension::Phase),
    }
}

/// A completed session with what its derived dimensions are read from. A dimension's value
/// is computed when asked for: a question reads, of every session, only the dimensions it
/// groups and filters by.
pub struct Placed<'a> {
    pub fact: &'a SessionFact,
    /// The year of the patient's first session (the age band is the age then), or of this
    /// one where the first sessions were not read (the question reads no age band).
    first_year: i32,
    /// The course's measurement-plan adherence: (completed on time, due).
    adherence: (usize, usize),
    /// The session's number in its course, when the question groups by it.
    infusion_number: Option<u32>,
}

impl Placed<'_> {
    /// The session's value of `dimension`; `None` where what it is derived from was not
    /// read (the question does not ask for it: [`dimension_reads`]). Borrowed where the value
    /// is a word of the vocabulary: most are, and a question asks this of every session.
    pub fn value(&self, dimension: Dimension) -> Option<Cow<'static, str>> {
        let f = self.fact;
        Some(match dimension {
            Dimension::Indication => f.indication.as_str().into(),
            Dimension::Route => f.route.as_str().into(),
            Dimension::DoseBand => DoseBand::of(f.dose_mg_per_kg?).as_str().into(),
            Dimension::Sex => f.sex?.as_str().into(),
            Dimension::AgeBand => AgeBand::at(f.birth_year?, self.first_year)
                .to_string()
                .into(),
            Dimension::Clinic => f.clinic_id?.to_string().into(),
            Dimension::Phase => schedule::phase_of(f.protocol?, f.start_date?, f.started_at.date())
                .as_str()
                .into(),
            Dimension::AdherenceBand => AdherenceBand::of(self.adherence.0, self.adherence.1)
                .as_str()
                .into(),
            Dimension::InfusionNumber => InfusionNumberBand::of(self.infusion_number?)
                .as_str()
                .into(),
        })
    }

    /// The session's group under a grouping.
    pub fn group(&self, group_by: &[Dimension]) -> Group {
        group_by
            .iter()
            .map(|d| {
                let value = self.value(*d).unwrap_or_default();
                (d.as_str().to_owned(), value.into_owned())
            })
            .collect()
    }
}

/// One session placed, if the derived filters allow it.
pub fn place<'a>(
    fact: &'a SessionFact,
    first_sessions: Option<&HashMap<PatientId, NaiveDateTime>>,
    adherence: &HashMap<CourseId, (usize, usize)>,
    infusion_numbers: &HashMap<SessionId, u32>,
    filter: &DerivedFilter,
) -> Option<Placed<'a>> {
    let placed = Placed {
        fact,
        first_year: first_sessions
            .and_then(|f| f.get(&fact.patient_id))
            .map_or(fact.started_at.year(), |t| t.year()),
        adherence: adherence.get(&fact.course_id).copied().unwrap_or((0, 0)),
        infusion_number: infusion_numbers.get(&fact.session_id).copied(),
    };
    let allowed = filter
        .wanted()
        .into_iter()
        .all(|(d, wanted)| wanted.is_none() || placed.value(d).as_deref() == wanted);
    allowed.then_some(placed)
}

/// A proportion with its numerator and denominator.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"numerator": 3, "denominator": 5, "rate": 0.6}))]
pub struct RateResponse {
    pub numerator: usize,
    pub denominator: usize,
    /// Null when the denominator is 0.
    #[schema(required = true)]
    pub rate: Option<f64>,
}

impl From<Rate> for RateResponse {
    fn from(r: Rate) -> Self {
        Self {
            numerator: r.numerator,
            denominator: r.denominator,
            rate: r.rate,
        }
    }
}

/// Half-widths of the 95 % interval of each noisy figure of a row, by field (dotted for the
/// parts of a rate: `session_benefit.rate`); null in the `controlled` tier, whose figures are
/// exact.
pub type ErrorBounds = Option<BTreeMap<String, f64>>;

/// One outcome row (domain.md §8, Outcomes).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"group": {"indication": "treatment_resistant_depression", "route": "iv"},
    "patients": 24, "courses": 25, "sessions": 213, "course_baseline_mean": 19.4, "course_baseline_sd": 3.2, "course_baseline_n": 25,
    "end_of_induction_response": {"numerator": 11, "denominator": 20, "rate": 0.55},
    "end_of_induction_remission": {"numerator": 5, "denominator": 20, "rate": 0.25},
    "median_time_to_response_days": 9.0,
    "session_benefit": {"numerator": 120, "denominator": 180, "rate": 0.6667},
    "km_median_durability_days": 11.5,
    "wears_off_within_days": {"numerator": 40, "denominator": 120, "rate": 0.3333},
    "mean_charge_per_course_cents": 325000.0, "charge_per_responder_cents": 739000.0,
    "sessions_with_follow_up": 180, "adherence": {"numerator": 610, "denominator": 820, "rate": 0.7439},
    "error_95": null}))]
pub struct OutcomeRow {
    /// The value of each grouping dimension.
    #[schema(value_type = GroupKey)]
    pub group: Group,
    pub patients: usize,
    pub courses: usize,
    pub sessions: usize,
    /// Course baseline severity (only when an instrument is chosen: severities of different
    /// instruments do not average).
    #[schema(required = true)]
    pub course_baseline_mean: Option<f64>,
    #[schema(required = true)]
    pub course_baseline_sd: Option<f64>,
    #[schema(required = true)]
    pub course_baseline_n: Option<usize>,
    /// Among courses with an end-of-induction score and a baseline.
    pub end_of_induction_response: RateResponse,
    /// Among courses with an end-of-induction score.
    pub end_of_induction_remission: RateResponse,
    #[schema(required = true)]
    pub median_time_to_response_days: Option<f64>,
    /// Sessions with benefit among sessions that could be judged (a baseline and a follow-up).
    pub session_benefit: RateResponse,
    /// Kaplan–Meier median over sessions with benefit (wore_off = event, sustained =
    /// censored); null when the curve never falls to 0.5.
    #[schema(required = true)]
    pub km_median_durability_days: Option<f64>,
    /// Sessions whose benefit wore off within W days, among sessions with benefit.
    pub wears_off_within_days: RateResponse,
    #[schema(required = true)]
    pub mean_charge_per_course_cents: Option<f64>,
    /// All charges of the group over the courses that responded by the end of induction.
    #[schema(required = true)]
    pub charge_per_responder_cents: Option<f64>,
    /// Sessions with a baseline and a follow-up: enough to judge benefit and wear-off.
    pub sessions_with_follow_up: usize,
    /// Of the items the group's courses' measurement plans made due, those completed on time.
    pub adherence: RateResponse,
    #[schema(required = true, value_type = Option<HashMap<String, f64>>)]
    pub error_95: ErrorBounds,
}

/// The groups of a question's sessions, each numbered when first seen: a session finds its
/// group by its values, most of them borrowed words, where building the group's map of names
/// and values cost several allocations per session.
pub struct Groups {
    group_by: Vec<Dimension>,
    values: Vec<Cow<'static, str>>,
    numbers: HashMap<Vec<Cow<'static, str>>, usize>,
    groups: Vec<Group>,
}

impl Groups {
    pub fn new(group_by: &[Dimension]) -> Self {
        Self {
            group_by: group_by.to_vec(),
            values: Vec::with_capacity(group_by.len()),
            numbers: HashMap::new(),
            groups: Vec::new(),
        }
    }

    /// The number of `p`'s group: 0 for the first group seen, then 1, and so on.
    pub fn of(&mut self, p: &Placed<'_>) -> usize {
        self.values.clear();
        let values = self
            .group_by
            .iter()
            .map(|d| p.value(*d).unwrap_or_default());
        self.values.extend(values);
        if let Some(&n) = self.numbers.get(self.values.as_slice()) {
            return n;
        }
        let n = self.groups.len();
        self.groups.push(p.group(&self.group_by));
        self.numbers.insert(self.values.clone(), n);
        n
    }

    /// The groups, by number.
    pub fn into_groups(self) -> Vec<Group> {
        self.groups
    }
}

/// What one group of sessions adds up to, gathered a row at a time.
#[derive(Default)]
struct OutcomeCell {
    patients: HashSet<PatientId>,
    courses: HashSet<CourseId>,
    sessions: usize,
    /// Sessions with a baseline and a follow-up.
    judged: usize,
    /// Sessions with benefit, as Kaplan–Meier observations.
    benefit: Vec<Observation>,
    within: usize,
    charges: i64,
}

/// The outcome rows of a grouping, built a session at a time.
pub struct OutcomeAggregate {
    groups: Groups,
    wear_off_days: f64,
    /// By group number.
    cells: Vec<OutcomeCell>,
}

impl OutcomeAggregate {
    pub fn new(group_by: &[Dimension], wear_off_days: f64) -> Self {
        Self {
            groups: Groups::new(group_by),
            wear_off_days,
            cells: Vec::new(),
        }
    }

    pub fn add(&mut self, p: &Placed<'_>) {
        let n = self.groups.of(p);
        if n == self.cells.len() {
            self.cells.push(OutcomeCell::default());
        }
        let cell = &mut self.cells[n];
        let s = p.fact;
        cell.patients.insert(s.patient_id);
        cell.courses.insert(s.course_id);
        cell.sessions += 1;
        cell.charges += s.charge_cents.unwrap_or(0);
        use BenefitStatus::*;
        let status = s.status;
        if matches!(status, NoBenefit | WoreOff | Sustained) {
            cell.judged += 1;
        }
        // Read with its status (`store::research::measured`): present for wore_off and sustained.
        if let Some(time) = s.durability_days {
            let event = status == WoreOff;
            cell.benefit.push(Observation { time, event });
            if event && time <= self.wear_off_days {
                cell.within += 1;
            }
        }
    }

    /// Every course the groups hold, for fetching their outcomes.
    pub fn course_ids(&self) -> Vec<CourseId> {
        let all: HashSet<CourseId> = self
            .cells
            .iter()
            .flat_map(|c| c.courses.iter().copied())
            .collect();
        all.into_iter().collect()
    }

    /// The rows, ordered by group, small cells withheld; and how many were.
    pub fn rows(
        self,
        courses: &HashMap<CourseId, CourseFact>,
        adherence: &HashMap<CourseId, (usize, usize)>,
        with_baseline: bool,
        k: usize,
    ) -> (Vec<OutcomeRow>, usize) {
        let cells: BTreeMap<Group, OutcomeCell> = self
            .groups
            .into_groups()
            .into_iter()
            .zip(self.cells)
            .collect();
        let rows: Vec<OutcomeRow> = cells
            .into_iter()
            .map(|(group, cell)| cell.row(group, courses, adherence, with_baseline))
            .collect();
        withhold(rows, k, |r| r.patients)
    }
}

impl OutcomeCell {
    fn row(
        self,
        group: Group,
        courses: &HashMap<CourseId, CourseFact>,
        adherence: &HashMap<CourseId, (usize, usize)>,
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
            patients: self.patients.len(),
            courses,
            sessions: self.sessions,
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
            sessions_with_follow_up: self.judged,
            adherence: rate(completed, due).into(),
            error_95: None,
        }
    }
}

/// Applies the small-cell rule to the rows of one grouping: the rows it keeps, and how many
/// it withheld (their keys are not shown).
fn withhold<R>(rows: Vec<R>, k: usize, patients: impl Fn(&R) -> usize) -> (Vec<R>, usize) {
    let counts: Vec<usize> = rows.iter().map(&patients).collect();
    let hidden = research::suppressed(&counts, k);
    let withheld = hidden.iter().filter(|h| **h).count();
    let kept = rows
        .into_iter()
        .zip(hidden)
        .filter(|(_, hidden)| !hidden)
        .map(|(row, _)| row)
        .collect();
    (kept, withheld)
}

/// One side-effect row (domain.md §8, Side effects) for one effect in one group.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"group": {"route": "iv"}, "effect": "nausea", "patients": 18, "reports": 31,
    "sessions": 240, "sessions_with_effect_per_100": 12.5, "severity_counts": {"mild": 20, "moderate": 9, "severe": 2, "life_threatening": 0},
    "median_hours_to_resolution": 3.5, "share_unresolved": 0.0323, "error_95": null}))]
pub struct SideEffectRow {
    #[schema(value_type = GroupKey)]
    pub group: Group,
    pub effect: String,
    /// Distinct patients with the effect in the group.
    pub patients: usize,
    pub reports: usize,
    /// All completed sessions of the group: the denominator of the incidence.
    pub sessions: usize,
    #[schema(required = true)]
    pub sessions_with_effect_per_100: Option<f64>,
    #[schema(value_type = SeverityCounts)]
    pub severity_counts: BTreeMap<String, usize>,
    #[schema(required = true)]
    pub median_hours_to_resolution: Option<f64>,
    #[schema(required = true)]
    pub share_unresolved: Option<f64>,
    #[schema(required = true, value_type = Option<HashMap<String, f64>>)]
    pub error_95: ErrorBounds,
}

#[derive(Default)]
struct EffectCell {
    patients: HashSet<PatientId>,
    sessions: HashSet<SessionId>,
    reports: usize,
    severity: BTreeMap<String, usize>,
    hours: Vec<f64>,
    unresolved: usize,
}

/// The side-effect rows of a grouping, built a row at a time: every session of a group
/// counts in its denominator; every report in its effect's cell.
pub struct SideEffectAggregate {
    groups: Groups,
    /// Sessions by group number.
    sessions: Vec<usize>,
    /// By effect and group number.
    cells: HashMap<(Effect, usize), EffectCell>,
}

impl SideEffectAggregate {
    pub fn new(group_by: &[Dimension]) -> Self {
        Self {
            groups: Groups::new(group_by),
            sessions: Vec::new(),
            cells: HashMap::new(),
        }
    }

    /// `p`'s group number, its session count grown as groups are first seen.
    fn group(&mut self, p: &Placed<'_>) -> usize {
        let n = self.groups.of(p);
        if n == self.sessions.len() {
            self.sessions.push(0);
        }
        n
    }

    pub fn add_session(&mut self, p: &Placed<'_>) {
        let n = self.group(p);
        self.sessions[n] += 1;
    }

    pub fn add_report(&mut self, p: &Placed<'_>, e: &SideEffectFact) {
        let n = self.group(p);
        let cell = self.cells.entry((e.effect, n)).or_default();
        cell.patients.insert(p.fact.patient_id);
        cell.sessions.insert(p.fact.session_id);
        cell.reports += 1;
        *cell.severity.entry(e.severity.to_string()).or_default() += 1;
        match e.resolved_at {
            Some(r) => cell
                .hours
                .push((r - e.onset_at).num_seconds() as f64 / 3600.0),
            None => cell.unresolved += 1,
        }
    }

    /// The rows, by effect and group; suppression applies among the groups of one effect.
    /// Also how many rows were withheld.
    pub fn rows(self, k: usize) -> (Vec<SideEffectRow>, usize) {
        let groups = self.groups.into_groups();
        let cells: BTreeMap<(String, &Group), (usize, EffectCell)> = self
            .cells
            .into_iter()
            .map(|((effect, n), cell)| ((effect.to_string(), &groups[n]), (n, cell)))
            .collect();
        let mut by_effect: BTreeMap<String, Vec<SideEffectRow>> = BTreeMap::new();
        for ((effect, group), (n, cell)) in cells {
            let group = group.clone();
            let sessions = self.sessions[n];
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
                    patients: cell.patients.len(),
                    reports: cell.reports,
                    sessions,
                    sessions_with_effect_per_100: (sessions > 0).then(|| {
                        (cell.sessions.len() as f64 * 10_000.0 / sessions as f64).round() / 100.0
                    }),
                    severity_counts: severity,
                    median_hours_to_resolution: median(&cell.hours)
                        .map(|h| (h * 100.0).round() / 100.0),
                    share_unresolved: rate(cell.unresolved, cell.reports).rate,
                    error_95: None,
                });
        }
        let mut withheld = 0;
        let mut rows = Vec::new();
        for effect_rows in by_effect.into_values() {
            let (kept, hidden) = withhold(effect_rows, k, |r| r.patients);
            rows.extend(kept);
            withheld += hidden;
        }
        (rows, withheld)
    }
}

/// One trajectory row: the severities of one instrument in one week since the first
/// session, in one group.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"group": {"indication": "ptsd"}, "week": 2, "patients": 14, "count": 30, "mean": 38.2, "sd": 9.4, "error_95": null}))]
pub struct TrajectoryRow {
    #[schema(value_type = GroupKey)]
    pub group: Group,
    /// Whole weeks since the patient's first session, 0–52.
    pub week: i64,
    pub patients: usize,
    /// Scores in the cell.
    pub count: usize,
    #[schema(required = true)]
    pub mean: Option<f64>,
    #[schema(required = true)]
    pub sd: Option<f64>,
    #[schema(required = true, value_type = Option<HashMap<String, f64>>)]
    pub error_95: ErrorBounds,
}

/// The week since the patient's first session a score falls in (0–52), if any.
pub fn week_of(first: NaiveDateTime, at: NaiveDateTime) -> Option<i64> {
    let seconds = (at - first).num_seconds();
    let week = seconds.div_euclid(7 * 86_400);
    (seconds >= 0 && week <= 52).then_some(week)
}

/// Weekly mean severities, small cells withheld (and how many). `patient_groups` gives each
/// patient's group.
pub fn trajectory_rows(
    scores: &[ScoreFact],
    first_sessions: &HashMap<PatientId, NaiveDateTime>,
    patient_groups: &HashMap<PatientId, Group>,
    instrument: Instrument,
    k: usize,
) -> (Vec<TrajectoryRow>, usize) {
    let def = instrument.definition();
    let mut cells: BTreeMap<(i64, Group), Vec<(PatientId, f64)>> = BTreeMap::new();
    for score in scores {
        let patient = &score.patient_id;
        let (Some(first), Some(group)) = (first_sessions.get(patient), patient_groups.get(patient))
        else {
            continue;
        };
        let Some(week) = week_of(*first, score.taken_at) else {
            continue;
        };
        cells
            .entry((week, group.clone()))
            .or_default()
            .push((*patient, f64::from(def.severity(score.total))));
    }
    let mut rows = Vec::new();
    let mut withheld = 0;
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
                    patients: values.iter().map(|(p, _)| *p).collect::<HashSet<_>>().len(),
                    count: values.len(),
                    mean,
                    sd,
                    error_95: None,
                }
            })
            .collect();
        let (kept, hidden) = withhold(of_week, k, |r| r.patients);
        rows.extend(kept);
        withheld += hidden;
    }
    (rows, withheld)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reads(group_by: &[Dimension], derived: DerivedFilter) -> Reads {
        dimension_reads(group_by, &derived)
    }

    /// Each dimension reads the columns `Placed::value` derives it from, and no other.
    #[test]
    fn a_question_reads_the_columns_of_its_dimensions_only() {
        use Dimension::*;
        let none = Reads::default();
        let cases = [
            (Indication, none),
            (Route, none),
            (AdherenceBand, none),
            (InfusionNumber, none),
            (DoseBand, Reads { dose: true, ..none }),
            (Sex, Reads { sex: true, ..none }),
            (
                AgeBand,
                Reads {
                    birth_year: true,
                    ..none
                },
            ),
            (
                Clinic,
                Reads {
                    clinic: true,
                    ..none
                },
            ),
            (
                Phase,
                Reads {
                    schedule: true,
                    ..none
                },
            ),
        ];
        for (dimension, expected) in cases {
            assert_eq!(
                reads(&[dimension], DerivedFilter::default()),
                expected,
                "{dimension:?}"
            );
        }
        assert_eq!(reads(&[], DerivedFilter::default()), none);
        let every: Vec<Dimension> = cases.iter().map(|(d, _)| *d).collect();
        let all = Reads {
            dose: true,
            clinic: true,
            sex: true,
            birth_year: true,
            schedule: true,
        };
        assert_eq!(reads(&every, DerivedFilter::default()), all);
    }

    /// A filter on a derived dimension reads what that dimension is derived from.
    #[test]
    fn a_derived_filter_reads_its_dimension() {
        let none = Reads::default();
        let set = |s: &str| Some(s.to_owned());
        let cases = [
            (
                DerivedFilter {
                    dose_band: set("lt_0_5"),
                    ..Default::default()
                },
                Reads { dose: true, ..none },
            ),
            (
                DerivedFilter {
                    age_band: set("18_to_24"),
                    ..Default::default()
                },
                Reads {
                    birth_year: true,
                    ..none
                },
            ),
            (
                DerivedFilter {
                    phase: set("induction"),
                    ..Default::default()
                },
                Reads {
                    schedule: true,
                    ..none
                },
            ),
            (
                DerivedFilter {
                    adherence_band: set("full"),
                    ..Default::default()
                },
                none,
            ),
        ];
        for (filter, expected) in cases {
            assert_eq!(
                reads(&[Dimension::Route], filter.clone()),
                expected,
                "{filter:?}"
            );
        }
    }
}
