//! Differentially private research answers for the `aggregate` tier (domain.md §8a).
//!
//! The unit of privacy is the patient. Before any noise, each patient's contribution is
//! bounded: they count in one group only (that of their first session the query selects), with
//! at most `Bounds::sessions` sessions of that group and `Bounds::courses` courses, charges
//! clamped to a ceiling and day counts to 0–90. Every statistic of a group is then an integer
//! sum whose change, when one patient is added or removed, is known: its sensitivity. The group
//! keys themselves are released by OpenDP's noisy threshold on the patient counts; every other
//! statistic gets discrete Laplace noise scaled to its sensitivity. Groups are disjoint in
//! patients, so they compose in parallel; the statistics of one group compose sequentially,
//! each spending an equal share of the query's ε (the key selection two shares). Rates, means,
//! SDs and medians are computed from the noisy parts (post-processing, free of privacy cost),
//! and so is each figure's 95 % error bound: re-noising the released parts and reading off
//! where the derived figure lands.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDateTime;

use crate::domain::outcomes::BenefitStatus;
use crate::domain::privacy::{self, Bounds, MAX_DAYS, MAX_HOURS};
use crate::domain::side_effect::{Effect, Severity};
use crate::research::noise::{self, NoiseError, Noisy};
use crate::research::{Group, OutcomeRow, RateResponse, SideEffectRow, TrajectoryRow};

/// The privacy settings one answer is computed with.
#[derive(Clone, Copy, Debug)]
pub struct Privacy {
    pub epsilon: f64,
    pub delta: f64,
    pub k: usize,
    pub bounds: Bounds,
}

/// What a private answer cost and how its keys were chosen.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spent {
    pub epsilon: f64,
    pub delta: f64,
    /// Noisy patient counts below this were not released.
    pub release_threshold: i64,
}

/// The released rows of a private answer.
pub struct Released<R> {
    pub rows: Vec<R>,
    pub spent: Spent,
}

/// Redraws behind each derived figure's error bound.
const REDRAWS: usize = 200;

/// One completed session as the aggregate tier sees it.
#[derive(Clone, Debug)]
pub struct SessionPoint {
    pub patient: String,
    pub course: String,
    pub session: String,
    pub started_at: NaiveDateTime,
    pub group: Group,
    pub status: BenefitStatus,
    pub durability_days: Option<f64>,
    pub charge_cents: Option<i64>,
}

/// One patient's bounded contribution: one group, its first sessions there, their first
/// courses.
#[derive(Clone, Debug)]
pub struct Contribution {
    pub patient: String,
    pub group: Group,
    pub sessions: Vec<SessionPoint>,
    pub courses: Vec<String>,
}

/// Bounds each patient's sessions (deterministically: time order, then id).
pub fn bound(mut points: Vec<SessionPoint>, bounds: &Bounds) -> Vec<Contribution> {
    points.sort_by(|a, b| {
        (&a.patient, a.started_at, &a.session).cmp(&(&b.patient, b.started_at, &b.session))
    });
    let mut out: Vec<Contribution> = Vec::new();
    for point in points {
        let same = out.last().is_some_and(|c| c.patient == point.patient);
        if !same {
            out.push(Contribution {
                patient: point.patient.clone(),
                group: point.group.clone(),
                sessions: vec![],
                courses: vec![],
            });
        }
        let c = out.last_mut().expect("pushed above");
        if point.group != c.group || c.sessions.len() >= bounds.sessions as usize {
            continue;
        }
        if !c.courses.contains(&point.course) {
            if c.courses.len() >= bounds.courses as usize {
                continue;
            }
            c.courses.push(point.course.clone());
        }
        c.sessions.push(point);
    }
    out
}

/// The exact, bounded statistics of the released groups, by name, ready for noise: scalars
/// and histograms, each with its sensitivity.
struct Table {
    scalars: Vec<(&'static str, i64, Vec<i64>)>,
    histograms: Vec<(&'static str, i64, usize, Vec<i64>)>,
}

/// The same statistics after noise, with the noise that was added to each.
#[derive(Clone)]
struct Noised {
    scalars: HashMap<&'static str, Noisy>,
    histograms: HashMap<&'static str, (usize, Noisy)>,
}

impl Noised {
    fn scalar(&self, name: &str, group: usize) -> i64 {
        self.scalars[name].values[group]
    }
    fn histogram(&self, name: &str, group: usize) -> &[i64] {
        let (bins, noisy) = &self.histograms[name];
        &noisy.values[group * bins..(group + 1) * bins]
    }
    fn bound(&self, name: &str) -> f64 {
        round2(self.scalars[name].error_95())
    }
}

impl Table {
    fn statistics(&self) -> usize {
        self.scalars.len() + self.histograms.len()
    }

    fn noise(&self, epsilon_each: f64) -> Result<Noised, NoiseError> {
        let mut noised = Noised {
            scalars: HashMap::new(),
            histograms: HashMap::new(),
        };
        for (name, sensitivity, values) in &self.scalars {
            noised
                .scalars
                .insert(name, noise::laplace(values, *sensitivity, epsilon_each)?);
        }
        for (name, sensitivity, bins, values) in &self.histograms {
            let noisy = noise::laplace(values, *sensitivity, epsilon_each)?;
            noised.histograms.insert(name, (*bins, noisy));
        }
        Ok(noised)
    }

    /// The released values with fresh noise of the same scale: what the answer could as well
    /// have been, for error bounds.
    fn redraw(released: &Noised, rng: &mut rand::rngs::StdRng) -> Noised {
        let mut noised = released.clone();
        for n in noised.scalars.values_mut() {
            n.values = noise::redraw(&n.values, n.scale, rng);
        }
        for (_, n) in noised.histograms.values_mut() {
            n.values = noise::redraw(&n.values, n.scale, rng);
        }
        noised
    }

    fn spent(&self, noised: &Noised) -> f64 {
        noised.scalars.values().map(|n| n.epsilon).sum::<f64>()
            + noised
                .histograms
                .values()
                .map(|(_, n)| n.epsilon)
                .sum::<f64>()
    }
}

/// The 95 % error bound of each derived figure (by field name), from redraws of the released
/// parts around the released answer.
fn derived_bounds(
    released: &Noised,
    groups: usize,
    derive: impl Fn(&Noised, usize) -> BTreeMap<&'static str, Option<f64>>,
) -> Vec<BTreeMap<String, f64>> {
    use rand::SeedableRng;
    let answers: Vec<_> = (0..groups).map(|g| derive(released, g)).collect();
    let mut deviations: Vec<BTreeMap<&'static str, Vec<f64>>> = vec![BTreeMap::new(); groups];
    // Seeded by the released values: the same release always has the same bounds.
    let mut parts: Vec<(&str, &Noisy)> = released.scalars.iter().map(|(k, n)| (*k, n)).collect();
    parts.extend(released.histograms.iter().map(|(k, (_, n))| (*k, n)));
    parts.sort_by_key(|(k, _)| *k);
    let seed = parts
        .iter()
        .flat_map(|(_, n)| n.values.iter())
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, v| {
            (h ^ *v as u64).wrapping_mul(0x100_0000_01b3)
        });
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    for _ in 0..REDRAWS {
        let draw = Table::redraw(released, &mut rng);
        for (g, answer) in answers.iter().enumerate() {
            for (field, value) in derive(&draw, g) {
                if let (Some(drawn), Some(Some(released))) = (value, answer.get(field)) {
                    deviations[g]
                        .entry(field)
                        .or_default()
                        .push((drawn - released).abs());
                }
            }
        }
    }
    deviations
        .into_iter()
        .map(|by_field| {
            by_field
                .into_iter()
                .map(|(field, mut d)| {
                    d.sort_by(|a, b| a.total_cmp(b));
                    let at = ((d.len() as f64 * 0.95).ceil() as usize).clamp(1, d.len()) - 1;
                    (field.to_owned(), round4(d[at]))
                })
                .collect()
        })
        .collect()
}

/// The released keys of an answer: the groups whose noisy patient count reached the
/// threshold, in group order, with those counts, and what choosing them cost.
struct KeyRelease {
    keys: Vec<(Group, i64)>,
    epsilon: f64,
    delta: f64,
    threshold: i64,
    /// The 95 % error bound of the released patient counts.
    patients_bound: f64,
}

fn release_keys(
    patients: HashMap<Group, i64>,
    keys_per_patient: u32,
    epsilon: f64,
    privacy: &Privacy,
) -> Result<KeyRelease, NoiseError> {
    // OpenDP's keys are text: each group by its index.
    let groups: Vec<Group> = patients.keys().cloned().collect();
    let counts = groups
        .iter()
        .enumerate()
        .map(|(i, g)| (i.to_string(), patients[g]))
        .collect();
    let selected = noise::select_keys(
        counts,
        keys_per_patient,
        epsilon,
        privacy.delta,
        privacy.k as i64,
    )?;
    let mut keys: Vec<(Group, i64)> = selected
        .counts
        .into_iter()
        .filter_map(|(i, n)| Some((groups.get(i.parse::<usize>().ok()?)?.clone(), n)))
        .collect();
    keys.sort();
    Ok(KeyRelease {
        keys,
        epsilon: selected.epsilon,
        delta: selected.delta,
        threshold: selected.threshold,
        patients_bound: round2(noise::error_95(selected.scale)),
    })
}

/// What the outcome statistics need of a course.
#[derive(Clone, Copy, Debug, Default)]
pub struct CourseInputs {
    pub baseline: Option<i32>,
    pub end_of_induction_response: Option<bool>,
    pub end_of_induction_remission: Option<bool>,
    pub time_to_response_days: Option<f64>,
    /// Measurement-plan items (completed on time, due).
    pub adherence: (usize, usize),
}

/// What an outcome query asks beyond its filters.
#[derive(Clone, Copy, Debug)]
pub struct OutcomeQuery {
    pub wear_off_days: f64,
    /// The largest severity of the chosen instrument, when one is chosen (baselines average
    /// only within one instrument).
    pub baseline_max: Option<i32>,
}

/// The private outcome rows (domain.md §8, Outcomes).
pub fn outcomes(
    contributions: &[Contribution],
    courses: &HashMap<String, CourseInputs>,
    query: OutcomeQuery,
    privacy: &Privacy,
) -> Result<Released<OutcomeRow>, NoiseError> {
    let b = privacy.bounds;
    let patients: HashMap<Group, i64> = contributions.iter().fold(HashMap::new(), |mut m, c| {
        *m.entry(c.group.clone()).or_default() += 1;
        m
    });
    let statistics = 15 + if query.baseline_max.is_some() { 3 } else { 0 };
    let (keys_epsilon, each) = privacy::share(privacy.epsilon, statistics, 2);
    let KeyRelease {
        keys,
        epsilon: key_epsilon,
        delta,
        threshold,
        patients_bound,
    } = release_keys(patients, 1, keys_epsilon, privacy)?;
    let index: HashMap<&Group, usize> = keys.iter().enumerate().map(|(i, (g, _))| (g, i)).collect();
    let n = keys.len();
    let (s, c) = (i64::from(b.sessions), i64::from(b.courses));
    let mut t = OutcomeTotals::new(n);
    for contribution in contributions {
        let Some(&g) = index.get(&contribution.group) else {
            continue;
        };
        t.add(g, contribution, courses, &query, &b);
    }
    let mut table = Table {
        scalars: vec![
            ("courses", c, t.courses),
            ("sessions", s, t.sessions),
            ("judged", s, t.judged),
            ("benefit", s, t.benefit),
            ("within", s, t.within),
            ("charges", s * b.charge_cents, t.charges),
            ("response_judged", c, t.response_judged),
            ("responders", c, t.responders),
            ("remission_judged", c, t.remission_judged),
            ("remitters", c, t.remitters),
            ("adherence_completed", i64::from(b.due_items), t.completed),
            ("adherence_due", i64::from(b.due_items), t.due),
        ],
        histograms: vec![
            ("worn_off_on_day", s, MAX_DAYS + 1, t.events),
            ("benefit_until_day", s, MAX_DAYS + 1, t.censored),
            ("responded_on_day", c, MAX_DAYS + 1, t.responded),
        ],
    };
    if let Some(max) = query.baseline_max {
        let max = i64::from(max);
        table.scalars.extend([
            ("baseline_n", c, t.baseline_n),
            ("baseline_sum", c * max, t.baseline_sum),
            ("baseline_squares", c * max * max, t.baseline_squares),
        ]);
    }
    debug_assert_eq!(table.statistics(), statistics);
    let noised = table.noise(each)?;
    let derive = |v: &Noised, g: usize| outcome_figures(v, g, &query);
    let bounds = derived_bounds(&noised, n, derive);
    let rows = keys
        .iter()
        .zip(bounds)
        .enumerate()
        .map(|(g, ((group, patients), derived_bounds))| {
            let mut row = outcome_row(&noised, g, group.clone(), *patients, &query);
            let mut errors = derived_bounds;
            errors.insert("patients".into(), patients_bound);
            for (field, name) in [
                ("courses", "courses"),
                ("sessions", "sessions"),
                ("sessions_with_follow_up", "judged"),
                ("session_benefit.numerator", "benefit"),
                ("session_benefit.denominator", "judged"),
                ("wears_off_within_days.numerator", "within"),
                ("wears_off_within_days.denominator", "benefit"),
                ("end_of_induction_response.numerator", "responders"),
                ("end_of_induction_response.denominator", "response_judged"),
                ("end_of_induction_remission.numerator", "remitters"),
                ("end_of_induction_remission.denominator", "remission_judged"),
                ("adherence.numerator", "adherence_completed"),
                ("adherence.denominator", "adherence_due"),
            ] {
                errors.insert(field.into(), noised.bound(name));
            }
            if query.baseline_max.is_some() {
                errors.insert("course_baseline_n".into(), noised.bound("baseline_n"));
            }
            row.error_95 = Some(errors);
            row
        })
        .collect();
    Ok(Released {
        rows,
        spent: Spent {
            epsilon: key_epsilon + table.spent(&noised),
            delta,
            release_threshold: threshold,
        },
    })
}

/// The bounded exact sums of each released group.
struct OutcomeTotals {
    courses: Vec<i64>,
    sessions: Vec<i64>,
    judged: Vec<i64>,
    benefit: Vec<i64>,
    within: Vec<i64>,
    charges: Vec<i64>,
    response_judged: Vec<i64>,
    responders: Vec<i64>,
    remission_judged: Vec<i64>,
    remitters: Vec<i64>,
    completed: Vec<i64>,
    due: Vec<i64>,
    baseline_n: Vec<i64>,
    baseline_sum: Vec<i64>,
    baseline_squares: Vec<i64>,
    events: Vec<i64>,
    censored: Vec<i64>,
    responded: Vec<i64>,
}

impl OutcomeTotals {
    fn new(n: usize) -> Self {
        let zero = || vec![0; n];
        let bins = || vec![0; n * (MAX_DAYS + 1)];
        Self {
            courses: zero(),
            sessions: zero(),
            judged: zero(),
            benefit: zero(),
            within: zero(),
            charges: zero(),
            response_judged: zero(),
            responders: zero(),
            remission_judged: zero(),
            remitters: zero(),
            completed: zero(),
            due: zero(),
            baseline_n: zero(),
            baseline_sum: zero(),
            baseline_squares: zero(),
            events: bins(),
            censored: bins(),
            responded: bins(),
        }
    }

    fn add(
        &mut self,
        g: usize,
        c: &Contribution,
        courses: &HashMap<String, CourseInputs>,
        query: &OutcomeQuery,
        b: &Bounds,
    ) {
        let bin = |day: usize| g * (MAX_DAYS + 1) + day;
        self.courses[g] += c.courses.len() as i64;
        for s in &c.sessions {
            self.sessions[g] += 1;
            self.charges[g] += s.charge_cents.unwrap_or(0).clamp(0, b.charge_cents);
            use BenefitStatus::*;
            let status = s.status;
            if matches!(status, NoBenefit | WoreOff | Sustained) {
                self.judged[g] += 1;
            }
            // Read with its status (`store::research::measured`): present for wore_off and
            // sustained.
            if let Some(days) = s.durability_days {
                self.benefit[g] += 1;
                let day = privacy::day_bin(days);
                if status == WoreOff {
                    self.events[bin(day)] += 1;
                    if days <= query.wear_off_days {
                        self.within[g] += 1;
                    }
                } else {
                    self.censored[bin(day)] += 1;
                }
            }
        }
        let (mut completed, mut due) = (0usize, 0usize);
        for course in c.courses.iter().filter_map(|id| courses.get(id)) {
            if let Some(responded) = course.end_of_induction_response {
                self.response_judged[g] += 1;
                self.responders[g] += i64::from(responded);
            }
            if let Some(remitted) = course.end_of_induction_remission {
                self.remission_judged[g] += 1;
                self.remitters[g] += i64::from(remitted);
            }
            if let Some(days) = course.time_to_response_days {
                self.responded[bin(privacy::day_bin(days))] += 1;
            }
            if let (Some(max), Some(baseline)) = (query.baseline_max, course.baseline) {
                let x = i64::from(baseline.clamp(0, max));
                self.baseline_n[g] += 1;
                self.baseline_sum[g] += x;
                self.baseline_squares[g] += x * x;
            }
            completed += course.adherence.0;
            due += course.adherence.1;
        }
        // Due items are clamped per patient; the completed ones scale down with them.
        let cap = b.due_items as usize;
        let clamped_due = due.min(cap);
        let clamped_completed = (completed.min(due) * clamped_due)
            .checked_div(due)
            .unwrap_or(0);
        self.due[g] += clamped_due as i64;
        self.completed[g] += clamped_completed as i64;
    }
}

/// The derived figures of one group (for error bounds), by field name.
fn outcome_figures(
    v: &Noised,
    g: usize,
    query: &OutcomeQuery,
) -> BTreeMap<&'static str, Option<f64>> {
    let rate = |n: &str, d: &str| privacy::rate(v.scalar(n, g), v.scalar(d, g));
    let per = |sum: &str, count: &str| {
        let count = v.scalar(count, g);
        (count > 0).then(|| round2(v.scalar(sum, g).max(0) as f64 / count as f64))
    };
    let mut figures = BTreeMap::from([
        ("session_benefit.rate", rate("benefit", "judged")),
        ("wears_off_within_days.rate", rate("within", "benefit")),
        (
            "end_of_induction_response.rate",
            rate("responders", "response_judged"),
        ),
        (
            "end_of_induction_remission.rate",
            rate("remitters", "remission_judged"),
        ),
        (
            "adherence.rate",
            rate("adherence_completed", "adherence_due"),
        ),
        ("mean_charge_per_course_cents", per("charges", "courses")),
        ("charge_per_responder_cents", per("charges", "responders")),
        (
            "km_median_durability_days",
            privacy::kaplan_meier_median_binned(
                v.histogram("worn_off_on_day", g),
                v.histogram("benefit_until_day", g),
            ),
        ),
        (
            "median_time_to_response_days",
            privacy::histogram_median(v.histogram("responded_on_day", g)),
        ),
    ]);
    if let Some(max) = query.baseline_max {
        let (mean, sd) = privacy::mean_sd(
            v.scalar("baseline_n", g),
            v.scalar("baseline_sum", g),
            v.scalar("baseline_squares", g),
            f64::from(max),
        );
        figures.insert("course_baseline_mean", mean);
        figures.insert("course_baseline_sd", sd);
    }
    figures
}

fn noisy_rate(v: &Noised, g: usize, numerator: &str, denominator: &str) -> RateResponse {
    let (n, d) = (v.scalar(numerator, g), v.scalar(denominator, g));
    RateResponse {
        numerator: privacy::count(n),
        denominator: privacy::count(d),
        rate: privacy::rate(n, d),
    }
}

fn outcome_row(
    v: &Noised,
    g: usize,
    group: Group,
    patients: i64,
    query: &OutcomeQuery,
) -> OutcomeRow {
    let figures = outcome_figures(v, g, query);
    let figure = |name: &str| figures.get(name).copied().flatten();
    OutcomeRow {
        group,
        patients: privacy::count(patients),
        courses: privacy::count(v.scalar("courses", g)),
        sessions: privacy::count(v.scalar("sessions", g)),
        course_baseline_mean: figure("course_baseline_mean"),
        course_baseline_sd: figure("course_baseline_sd"),
        course_baseline_n: query
            .baseline_max
            .map(|_| privacy::count(v.scalar("baseline_n", g))),
        end_of_induction_response: noisy_rate(v, g, "responders", "response_judged"),
        end_of_induction_remission: noisy_rate(v, g, "remitters", "remission_judged"),
        median_time_to_response_days: figure("median_time_to_response_days"),
        session_benefit: noisy_rate(v, g, "benefit", "judged"),
        km_median_durability_days: figure("km_median_durability_days"),
        wears_off_within_days: noisy_rate(v, g, "within", "benefit"),
        mean_charge_per_course_cents: figure("mean_charge_per_course_cents"),
        charge_per_responder_cents: figure("charge_per_responder_cents"),
        sessions_with_follow_up: privacy::count(v.scalar("judged", g)),
        adherence: noisy_rate(v, g, "adherence_completed", "adherence_due"),
        error_95: None,
    }
}

/// One side-effect report as the aggregate tier sees it.
#[derive(Clone, Debug)]
pub struct ReportPoint {
    pub patient: String,
    /// The report's own id, opaque: it orders reports made at one instant.
    pub report: String,
    pub session: String,
    pub effect: Effect,
    pub severity: Severity,
    pub onset_at: NaiveDateTime,
    pub hours_to_resolution: Option<f64>,
}

const SEVERITIES: &[Severity] = Severity::ALL;

/// The private side-effect rows (domain.md §8, Side effects): each patient in their one group,
/// with at most `Bounds::effects` kinds and `Bounds::reports` reports of each, of the sessions
/// their contribution keeps.
pub fn side_effects(
    contributions: &[Contribution],
    reports: &[ReportPoint],
    privacy: &Privacy,
) -> Result<Released<SideEffectRow>, NoiseError> {
    let b = privacy.bounds;
    let (e, r, s) = (
        i64::from(b.effects),
        i64::from(b.reports),
        i64::from(b.sessions),
    );
    let kept: HashMap<&str, (&Group, &str)> = contributions
        .iter()
        .flat_map(|c| {
            c.sessions
                .iter()
                .map(move |p| (p.session.as_str(), (&c.group, c.patient.as_str())))
        })
        .collect();
    // Each patient's reports, bounded: their first kinds, their first reports of each.
    let mut by_patient: BTreeMap<&str, BTreeMap<&str, Vec<&ReportPoint>>> = BTreeMap::new();
    let mut ordered: Vec<&ReportPoint> = reports
        .iter()
        .filter(|p| kept.contains_key(p.session.as_str()))
        .collect();
    // The reports arrive in no order: one instant's are kept in the order of their ids.
    ordered.sort_by(|a, b| {
        (&a.patient, a.onset_at, &a.report).cmp(&(&b.patient, b.onset_at, &b.report))
    });
    for report in ordered {
        let kinds = by_patient.entry(&report.patient).or_default();
        if !kinds.contains_key(report.effect.as_str()) && kinds.len() >= b.effects as usize {
            continue;
        }
        let list = kinds.entry(report.effect.as_str()).or_default();
        if list.len() < b.reports as usize {
            list.push(report);
        }
    }
    let group_of_patient: HashMap<&str, &Group> = contributions
        .iter()
        .map(|c| (c.patient.as_str(), &c.group))
        .collect();
    let mut patients: HashMap<Group, i64> = HashMap::new();
    for (patient, kinds) in &by_patient {
        let group = group_of_patient[patient];
        for effect in kinds.keys() {
            *patients.entry(cell_key(group, effect)).or_default() += 1;
        }
    }
    // Per cell: reports, sessions with the effect, unresolved, 4 severities, hours histogram;
    // per group: its sessions.
    let statistics = 6;
    let (keys_epsilon, each) = privacy::share(privacy.epsilon, statistics, 2);
    let KeyRelease {
        keys,
        epsilon: key_epsilon,
        delta,
        threshold,
        patients_bound,
    } = release_keys(patients, b.effects, keys_epsilon, privacy)?;
    let index: HashMap<&Group, usize> = keys.iter().enumerate().map(|(i, (g, _))| (g, i)).collect();
    let n = keys.len();
    let (mut count, mut with_effect, mut unresolved) = (vec![0; n], vec![0; n], vec![0; n]);
    let mut severity = vec![0; n * SEVERITIES.len()];
    let mut hours = vec![0; n * (MAX_HOURS + 1)];
    for (patient, kinds) in &by_patient {
        let group = group_of_patient[patient];
        for (effect, list) in kinds {
            let Some(&cell) = index.get(&cell_key(group, effect)) else {
                continue;
            };
            count[cell] += list.len() as i64;
            let mut sessions: Vec<&str> = list.iter().map(|p| p.session.as_str()).collect();
            sessions.sort_unstable();
            sessions.dedup();
            with_effect[cell] += sessions.len() as i64;
            for report in list {
                let level = SEVERITIES
                    .iter()
                    .position(|s| *s == report.severity)
                    .expect("every severity is in the vocabulary");
                severity[cell * SEVERITIES.len() + level] += 1;
                match report.hours_to_resolution {
                    Some(h) => hours[cell * (MAX_HOURS + 1) + privacy::hour_bin(h)] += 1,
                    None => unresolved[cell] += 1,
                }
            }
        }
    }
    // A group's sessions are one figure, shown with each of its effects: released once per
    // group, each patient in one group.
    let mut groups: Vec<Group> = keys.iter().map(|(k, _)| group_part(k)).collect();
    groups.sort();
    groups.dedup();
    let group_index: HashMap<&Group, usize> =
        groups.iter().enumerate().map(|(i, g)| (g, i)).collect();
    let mut group_sessions = vec![0; groups.len()];
    for c in contributions {
        if let Some(&i) = group_index.get(&c.group) {
            group_sessions[i] += c.sessions.len() as i64;
        }
    }
    let table = Table {
        scalars: vec![
            ("reports", e * r, count),
            ("sessions_with_effect", e * r.min(s), with_effect),
            ("unresolved", e * r, unresolved),
            ("group_sessions", s, group_sessions),
        ],
        histograms: vec![
            ("severity", e * r, SEVERITIES.len(), severity),
            ("hours_to_resolution", e * r, MAX_HOURS + 1, hours),
        ],
    };
    debug_assert_eq!(table.statistics(), statistics);
    let noised = table.noise(each)?;
    let group_of_cell: Vec<usize> = keys
        .iter()
        .map(|(k, _)| group_index[&group_part(k)])
        .collect();
    let derive = |v: &Noised, cell: usize| effect_figures(v, cell, group_of_cell[cell]);
    let bounds = derived_bounds(&noised, n, derive);
    let rows = keys
        .iter()
        .zip(bounds)
        .enumerate()
        .map(|(cell, ((key, patients), mut errors))| {
            let figures = effect_figures(&noised, cell, group_of_cell[cell]);
            let figure = |name: &str| figures.get(name).copied().flatten();
            errors.insert("patients".into(), patients_bound);
            errors.insert("reports".into(), noised.bound("reports"));
            errors.insert("sessions".into(), noised.bound("group_sessions"));
            errors.insert(
                "severity_counts".into(),
                round2(noised.histograms["severity"].1.error_95()),
            );
            let severities = noised.histogram("severity", cell);
            SideEffectRow {
                group: group_part(key),
                effect: key.get(EFFECT_KEY).cloned().unwrap_or_default(),
                patients: privacy::count(*patients),
                reports: privacy::count(noised.scalar("reports", cell)),
                sessions: privacy::count(noised.scalar("group_sessions", group_of_cell[cell])),
                sessions_with_effect_per_100: figure("sessions_with_effect_per_100"),
                severity_counts: SEVERITIES
                    .iter()
                    .zip(severities)
                    .map(|(s, n)| (s.to_string(), privacy::count(*n)))
                    .collect(),
                median_hours_to_resolution: figure("median_hours_to_resolution"),
                share_unresolved: figure("share_unresolved"),
                error_95: Some(errors),
            }
        })
        .collect();
    Ok(Released {
        rows,
        spent: Spent {
            epsilon: key_epsilon + table.spent(&noised),
            delta,
            release_threshold: threshold,
        },
    })
}

/// The effect travels in the cell's key under a name no dimension has.
const EFFECT_KEY: &str = " effect";

fn cell_key(group: &Group, effect: &str) -> Group {
    let mut key = group.clone();
    key.insert(EFFECT_KEY.into(), effect.to_owned());
    key
}

fn group_part(key: &Group) -> Group {
    let mut group = key.clone();
    group.remove(EFFECT_KEY);
    group
}

fn effect_figures(v: &Noised, cell: usize, group: usize) -> BTreeMap<&'static str, Option<f64>> {
    let sessions = v.scalar("group_sessions", group);
    let with_effect = v.scalar("sessions_with_effect", cell);
    BTreeMap::from([
        (
            "sessions_with_effect_per_100",
            (sessions > 0)
                .then(|| round2((with_effect.max(0) as f64 * 100.0 / sessions as f64).min(100.0))),
        ),
        (
            "share_unresolved",
            privacy::rate(v.scalar("unresolved", cell), v.scalar("reports", cell)),
        ),
        (
            "median_hours_to_resolution",
            privacy::histogram_median(v.histogram("hours_to_resolution", cell)),
        ),
    ])
}

/// One score as the aggregate tier sees it: whose, in which week since their first session,
/// and its severity.
#[derive(Clone, Debug)]
pub struct ScorePoint {
    pub patient: String,
    /// The assessment's id, opaque: it orders scores taken at one instant.
    pub assessment: String,
    pub week: i64,
    pub taken_at: NaiveDateTime,
    pub severity: i32,
}

const WEEK_KEY: &str = " week";

/// The private trajectory rows: each patient in their one group, one score per week (the
/// first), in at most `Bounds::weeks` weeks (the first ones with a score).
pub fn trajectories(
    groups: &HashMap<String, Group>,
    scores: &[ScorePoint],
    max_severity: i32,
    privacy: &Privacy,
) -> Result<Released<TrajectoryRow>, NoiseError> {
    let weeks = privacy.bounds.weeks;
    let mut ordered: Vec<&ScorePoint> = scores
        .iter()
        .filter(|s| groups.contains_key(&s.patient))
        .collect();
    // The scores arrive in no order: one instant's are kept in the order of their ids.
    ordered.sort_by(|a, b| {
        (&a.patient, a.week, a.taken_at, &a.assessment).cmp(&(
            &b.patient,
            b.week,
            b.taken_at,
            &b.assessment,
        ))
    });
    let mut kept: Vec<(&Group, i64, i64)> = Vec::new();
    let mut last: Option<(&str, i64)> = None;
    let mut weeks_of_patient = 0;
    for score in ordered {
        if last.is_some_and(|(p, w)| p == score.patient && w == score.week) {
            continue;
        }
        if last.is_none_or(|(p, _)| p != score.patient) {
            weeks_of_patient = 0;
        }
        last = Some((&score.patient, score.week));
        if weeks_of_patient >= weeks {
            continue;
        }
        weeks_of_patient += 1;
        kept.push((
            &groups[&score.patient],
            score.week,
            i64::from(score.severity.clamp(0, max_severity)),
        ));
    }
    let key = |group: &Group, week: i64| {
        let mut key = group.clone();
        key.insert(WEEK_KEY.into(), format!("{week:02}"));
        key
    };
    let mut patients: HashMap<Group, i64> = HashMap::new();
    for (group, week, _) in &kept {
        *patients.entry(key(group, *week)).or_default() += 1;
    }
    let statistics = 2;
    let (keys_epsilon, each) = privacy::share(privacy.epsilon, statistics, 2);
    let KeyRelease {
        keys,
        epsilon: key_epsilon,
        delta,
        threshold,
        patients_bound,
    } = release_keys(patients, weeks, keys_epsilon, privacy)?;
    let index: HashMap<&Group, usize> = keys.iter().enumerate().map(|(i, (g, _))| (g, i)).collect();
    let n = keys.len();
    let (mut sums, mut squares) = (vec![0; n], vec![0; n]);
    for (group, week, severity) in &kept {
        if let Some(&i) = index.get(&key(group, *week)) {
            sums[i] += severity;
            squares[i] += severity * severity;
        }
    }
    let (w, max) = (i64::from(weeks), i64::from(max_severity));
    let table = Table {
        scalars: vec![("sum", w * max, sums), ("squares", w * max * max, squares)],
        histograms: vec![],
    };
    let noised = table.noise(each)?;
    let counts: Vec<i64> = keys.iter().map(|(_, c)| *c).collect();
    let derive = |v: &Noised, g: usize| {
        let (mean, sd) = privacy::mean_sd(
            counts[g],
            v.scalar("sum", g),
            v.scalar("squares", g),
            f64::from(max_severity),
        );
        BTreeMap::from([("mean", mean), ("sd", sd)])
    };
    let bounds = derived_bounds(&noised, n, derive);
    let rows = keys
        .iter()
        .zip(bounds)
        .enumerate()
        .map(|(g, ((k, patients), mut errors))| {
            let (mean, sd) = privacy::mean_sd(
                *patients,
                noised.scalar("sum", g),
                noised.scalar("squares", g),
                f64::from(max_severity),
            );
            errors.insert("patients".into(), patients_bound);
            errors.insert("count".into(), patients_bound);
            let mut group = k.clone();
            let week = group
                .remove(WEEK_KEY)
                .and_then(|w| w.parse().ok())
                .unwrap_or(0);
            TrajectoryRow {
                group,
                week,
                patients: privacy::count(*patients),
                count: privacy::count(*patients),
                mean,
                sd,
                error_95: Some(errors),
            }
        })
        .collect();
    Ok(Released {
        rows,
        spent: Spent {
            epsilon: key_epsilon + table.spent(&noised),
            delta,
            release_threshold: threshold,
        },
    })
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The defaults of domain.md §8a, as `config` reads them.
    fn defaults() -> Privacy {
        let settings = crate::config::Settings::from_lookup(|_| None).expect("defaults");
        let r = settings.research;
        Privacy {
            epsilon: r.epsilon_per_query,
            delta: r.delta,
            k: r.min_cell,
            bounds: r.bounds,
        }
    }

    fn at(day: i64) -> NaiveDateTime {
        DateTime::from_timestamp(1_790_000_000 + day * 86_400, 0)
            .unwrap()
            .naive_utc()
    }

    use chrono::DateTime;

    /// A cohort of 500 patients on the standard induction: 8 sessions each, 6 judged, 4 of
    /// them with benefit, 1 of those worn off within W; half the courses respond, a quarter
    /// remit; adherence 7 of 9.
    fn cohort() -> (Vec<Contribution>, HashMap<String, CourseInputs>) {
        let mut points = Vec::new();
        let mut courses = HashMap::new();
        for p in 0..500 {
            let patient = format!("p{p:04}");
            let course = format!("c{p:04}");
            for s in 0..8 {
                let (status, days) = match s {
                    0 => (BenefitStatus::NoBaseline, None),
                    1 => (BenefitStatus::NoFollowUp, None),
                    2 | 3 => (BenefitStatus::NoBenefit, None),
                    4 => (BenefitStatus::WoreOff, Some(3.5)),
                    5 => (BenefitStatus::WoreOff, Some(12.0)),
                    _ => (BenefitStatus::Sustained, Some(20.0)),
                };
                points.push(SessionPoint {
                    patient: patient.clone(),
                    course: course.clone(),
                    session: format!("{patient}-s{s}"),
                    started_at: at(s * 3),
                    group: Group::new(),
                    status,
                    durability_days: days,
                    charge_cents: Some(40_000),
                });
            }
            courses.insert(
                course,
                CourseInputs {
                    baseline: Some(20),
                    end_of_induction_response: Some(p % 2 == 0),
                    end_of_induction_remission: Some(p % 4 == 0),
                    time_to_response_days: (p % 2 == 0).then_some(7.0),
                    adherence: (7, 9),
                },
            );
        }
        (bound(points, &defaults().bounds), courses)
    }

    /// issue 13, utility: at the default settings, on a group of 500 patients, every released
    /// rate is within ±0.05 of the exact rate, and every count of the group's size within
    /// ±5 %, in at least 95 % of draws.
    #[test]
    fn released_rates_and_counts_are_useful_at_the_defaults() {
        let (contributions, courses) = cohort();
        let query = OutcomeQuery {
            wear_off_days: 7.0,
            baseline_max: None,
        };
        let exact_rates = [
            ("session_benefit", 4.0 / 6.0),
            ("wears_off_within_days", 1.0 / 4.0),
            ("end_of_induction_response", 0.5),
            ("end_of_induction_remission", 0.25),
            ("adherence", 7.0 / 9.0),
        ];
        let exact_counts = [
            ("patients", 500.0),
            ("courses", 500.0),
            ("sessions", 4000.0),
            ("sessions_with_follow_up", 3000.0),
        ];
        let trials = 200;
        let mut misses: BTreeMap<&str, usize> = BTreeMap::new();
        for _ in 0..trials {
            let released = outcomes(&contributions, &courses, query, &defaults()).unwrap();
            assert_eq!(released.rows.len(), 1, "a group of 500 is released");
            assert!(
                (released.spent.epsilon - defaults().epsilon).abs() < 1e-6,
                "{:?}",
                released.spent
            );
            let row = serde_json::to_value(&released.rows[0]).unwrap();
            for (name, exact) in exact_rates {
                let rate = row[name]["rate"].as_f64().unwrap();
                if (rate - exact).abs() > 0.05 {
                    *misses.entry(name).or_default() += 1;
                }
            }
            for (name, exact) in exact_counts {
                let count = row[name].as_f64().unwrap();
                if (count - exact).abs() > 0.05 * exact {
                    *misses.entry(name).or_default() += 1;
                }
            }
        }
        for (name, missed) in &misses {
            assert!(
                *missed * 20 <= trials,
                "{name} missed its margin in {missed} of {trials} draws"
            );
        }
    }

    /// Each row states a 95 % error bound for every noisy figure, and the bounds hold: the
    /// released figure lies within its bound of the exact one in about 95 % of draws.
    #[test]
    fn error_bounds_are_stated_and_hold() {
        let (contributions, courses) = cohort();
        let query = OutcomeQuery {
            wear_off_days: 7.0,
            baseline_max: None,
        };
        let (mut inside, trials) = (0, 200);
        for _ in 0..trials {
            let released = outcomes(&contributions, &courses, query, &defaults()).unwrap();
            let row = &released.rows[0];
            let errors = row.error_95.as_ref().unwrap();
            for field in [
                "patients",
                "sessions",
                "session_benefit.rate",
                "adherence.rate",
                "km_median_durability_days",
            ] {
                assert!(errors.contains_key(field), "{field}: {errors:?}");
            }
            let rate = row.session_benefit.rate.unwrap();
            inside +=
                usize::from((rate - 4.0 / 6.0).abs() <= errors["session_benefit.rate"] + 1e-9);
        }
        let share = inside as f64 / trials as f64;
        assert!(share >= 0.88, "the 95 % bound held in {share} of draws");
    }

    /// Contribution bounding: one group per patient (their first session's), the first
    /// sessions and courses only.
    #[test]
    fn each_patient_contributes_within_the_bounds() {
        let mut bounds = defaults().bounds;
        bounds.sessions = 2;
        bounds.courses = 1;
        let group = |route: &str| Group::from([("route".to_owned(), route.to_owned())]);
        let point = |s: i64, course: &str, route: &str| SessionPoint {
            patient: "p".into(),
            course: course.into(),
            session: format!("s{s}"),
            started_at: at(s),
            group: group(route),
            status: BenefitStatus::NoBaseline,
            durability_days: None,
            charge_cents: None,
        };
        let points = vec![
            point(3, "a", "iv"),
            point(1, "a", "im"),
            point(2, "b", "im"),
            point(4, "a", "im"),
        ];
        let bounded = bound(points, &bounds);
        assert_eq!(bounded.len(), 1);
        assert_eq!(
            bounded[0].group,
            group("im"),
            "the group of the first session"
        );
        let kept: Vec<&str> = bounded[0]
            .sessions
            .iter()
            .map(|s| s.session.as_str())
            .collect();
        assert_eq!(
            kept,
            ["s1", "s4"],
            "course b is a second course; s3 another group"
        );
        assert_eq!(bounded[0].courses, ["a"]);
    }
}
