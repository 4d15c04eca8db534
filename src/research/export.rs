//! The de-identified row-level export of the `controlled` tier (domain.md §8), and the
//! k-anonymity it keeps.
//!
//! Each row names no one: a pseudonym made afresh for each export instead of an id, whole days
//! since the patient's first session instead of dates, an age band instead of a birth year,
//! charges in bands, no dose per kilogram, total dose or weight, and never notes, external
//! references, clinics, accounts or emails.
//!
//! The quasi-identifiers — age band, sex, indication, route, dose band, phase — could still
//! single a patient out in combination. So the export is built in two passes over the same
//! rows. The first counts, for every combination of quasi-identifiers at each level of a
//! generalisation ladder, the distinct patients with a row of it. The export then uses the
//! lowest level at which at most 5 % of rows fall in combinations of fewer than `k` patients,
//! and leaves those rows out (record suppression): every combination in the file covers at
//! least `k` patients. The ladder (`Level`): exact values; 20-year age bands and two dose
//! bands; then age split at 60 and routes as IV or other; then no age, and indications by
//! family (depression, anxiety and trauma, pain); then no sex and no dose band; then no
//! quasi-identifier at all (a small cohort's file).
//!
//! What pseudonyms do not prevent: within one export, all of a patient's rows share one
//! pseudonym, so someone who knows enough of a patient's history (the days of their
//! infusions, say) may recognise them in it; across exports, pseudonyms differ, but the same
//! history can be matched again. The export is for researchers under a data-use agreement,
//! who undertake not to try.

use std::collections::{BTreeSet, HashMap};

use chrono::{Datelike, NaiveDateTime};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::instrument::Instrument;
use crate::domain::patient::Indication;
use crate::domain::research;
use crate::domain::schedule::{self, Protocol};
use crate::store::research::ExportBatch;

/// One row of the export.
#[derive(Debug, Default, Clone, Serialize, ToSchema)]
#[schema(example = json!({"kind": "session", "patient": "5f1c0a9e7b3d2e41", "day": 3, "sex": "female", "age_band": "40-49",
    "indication": "treatment_resistant_depression", "route": "iv", "dose_band": "0.5_to_0.75",
    "session_status": "completed", "phase": "induction", "charge_band": "300_to_450", "benefit_status": "wore_off",
    "durability_days": 5, "instrument": null, "total": null, "severity": null, "band": null, "effect": null,
    "effect_severity": null, "resolved_day": null}))]
pub struct ExportRow {
    /// `session`, `assessment` or `side_effect`.
    pub kind: &'static str,
    /// A pseudonym of the patient, different in every export.
    pub patient: String,
    /// Whole days since the patient's first completed session (negative before it).
    pub day: i64,
    pub sex: Option<String>,
    /// A 10-year band, `90+` over 89; wider bands or none where k-anonymity needs it.
    pub age_band: Option<String>,
    /// The course's indication (sessions, side effects), or the patient's first course's;
    /// an indication family where k-anonymity needs it.
    pub indication: Option<String>,
    pub route: Option<String>,
    pub dose_band: Option<String>,
    pub session_status: Option<String>,
    pub phase: Option<String>,
    /// `lt_300`, `300_to_450` or `ge_450` (US dollars), or null without a charge.
    pub charge_band: Option<String>,
    pub benefit_status: Option<String>,
    /// Whole days.
    pub durability_days: Option<i64>,
    pub instrument: Option<String>,
    pub total: Option<i32>,
    pub severity: Option<i32>,
    pub band: Option<String>,
    pub effect: Option<String>,
    pub effect_severity: Option<String>,
    pub resolved_day: Option<i64>,
}

/// The CSV header: the row's own field names, so it cannot drift from the rows.
pub fn csv_header() -> Vec<u8> {
    let mut out = Vec::new();
    let mut writer = csv::Writer::from_writer(&mut out);
    // Serialising one row writes the header first; only that line is kept.
    let _ = writer.serialize(ExportRow::default());
    drop(writer);
    let end = out
        .iter()
        .position(|b| *b == b'\n')
        .map_or(out.len(), |i| i + 1);
    out.truncate(end);
    out
}

/// What the export is restricted to (every one is documented; anything else is refused).
#[derive(Clone, Debug, Default)]
pub struct ExportFilter {
    /// Patients with a course of this indication.
    pub indication: Option<String>,
    pub sex: Option<String>,
    pub age_band: Option<String>,
    /// Patients with a course in this adherence band.
    pub adherence_band: Option<String>,
    /// Sessions (and their side effects) of this route, dose band, phase.
    pub route: Option<String>,
    pub dose_band: Option<String>,
    pub phase: Option<String>,
    /// Assessments of this instrument, sessions of courses whose primary instrument it is.
    pub instrument: Option<Instrument>,
    /// Rows whose own time lies in `[from, to)`.
    pub from: Option<NaiveDateTime>,
    pub to: Option<NaiveDateTime>,
}

impl ExportFilter {
    fn session_filtered(&self) -> bool {
        self.route.is_some() || self.dose_band.is_some() || self.phase.is_some()
    }

    fn in_range(&self, at: NaiveDateTime) -> bool {
        self.from.is_none_or(|f| at >= f) && self.to.is_none_or(|t| at < t)
    }
}

fn charge_band(cents: Option<i64>) -> Option<String> {
    let cents = cents?;
    Some(
        match cents {
            c if c < 30_000 => "lt_300",
            c if c < 45_000 => "300_to_450",
            _ => "ge_450",
        }
        .to_owned(),
    )
}

fn whole_days(from: NaiveDateTime, at: NaiveDateTime) -> i64 {
    (at - from).num_seconds().div_euclid(86_400)
}

/// What a side effect takes from its session.
struct SessionQuasi {
    route: String,
    dose_band: String,
    phase: Option<String>,
    indication: Option<String>,
}

/// One patient of a batch: id, sex, birth year.
pub type ExportPatient = (String, String, i32);

/// The rows of one patient that the filter allows, in time order, before generalisation.
/// `adherence` gives each course's adherence band (read only when the filter asks for one).
pub fn rows_of_patient(
    (patient_id, sex, birth_year): &ExportPatient,
    pseudonym: &str,
    batch: &ExportBatch,
    filter: &ExportFilter,
    adherence: &HashMap<String, &'static str>,
) -> Vec<ExportRow> {
    let sessions: Vec<_> = batch
        .sessions
        .iter()
        .filter(|s| &s.patient_id == patient_id)
        .collect();
    let Some(first) = sessions
        .iter()
        .filter(|s| s.status == "completed")
        .map(|s| s.started_at)
        .min()
    else {
        return vec![];
    };
    let age_band = research::age_band(*birth_year, first.year());
    let courses: HashMap<&str, &crate::store::courses::CourseRow> = batch
        .courses
        .iter()
        .filter(|c| &c.patient_id == patient_id)
        .map(|c| (c.id.as_str(), c))
        .collect();
    let patient_allowed = filter.sex.as_ref().is_none_or(|s| s == sex)
        && filter.age_band.as_ref().is_none_or(|a| *a == age_band)
        && filter
            .indication
            .as_ref()
            .is_none_or(|i| courses.values().any(|c| &c.indication == i))
        && filter.adherence_band.as_ref().is_none_or(|band| {
            courses
                .keys()
                .any(|c| adherence.get(*c).is_some_and(|b| b == band))
        });
    if !patient_allowed {
        return vec![];
    }
    let first_indication = sessions
        .iter()
        .find(|s| s.started_at == first)
        .and_then(|s| courses.get(s.course_id.as_str()))
        .map(|c| c.indication.clone());
    let base = |kind, at| ExportRow {
        kind,
        patient: pseudonym.to_owned(),
        day: whole_days(first, at),
        sex: Some(sex.clone()),
        age_band: Some(age_band.clone()),
        indication: first_indication.clone(),
        ..ExportRow::default()
    };
    let mut rows = Vec::new();
    let mut chosen: HashMap<&str, SessionQuasi> = HashMap::new();
    for s in &sessions {
        let course = courses.get(s.course_id.as_str());
        let phase = course.map(|c| {
            let protocol = c.protocol.parse().unwrap_or(Protocol::Custom);
            schedule::phase_of(protocol, c.start_date, s.started_at.date())
                .as_str()
                .to_owned()
        });
        let dose_band = research::dose_band(s.dose_mg_per_kg).to_owned();
        let allowed = filter.route.as_ref().is_none_or(|r| *r == s.route)
            && filter.dose_band.as_ref().is_none_or(|d| *d == dose_band)
            && filter
                .phase
                .as_ref()
                .is_none_or(|p| Some(p) == phase.as_ref())
            && filter
                .instrument
                .is_none_or(|i| course.is_some_and(|c| c.primary_instrument == i.as_str()));
        if !allowed {
            continue;
        }
        let indication = course.map(|c| c.indication.clone());
        chosen.insert(
            s.id.as_str(),
            SessionQuasi {
                route: s.route.clone(),
                dose_band: dose_band.clone(),
                phase: phase.clone(),
                indication: indication.clone(),
            },
        );
        if !filter.in_range(s.started_at) {
            continue;
        }
        let outcome = batch.outcomes.iter().find(|o| o.session_id == s.id);
        rows.push(ExportRow {
            indication,
            route: Some(s.route.clone()),
            dose_band: Some(dose_band),
            session_status: Some(s.status.clone()),
            phase,
            charge_band: charge_band(s.charge_cents),
            benefit_status: outcome.map(|o| o.status.clone()),
            durability_days: outcome
                .and_then(|o| o.durability_days)
                .map(|d| d.floor() as i64),
            ..base("session", s.started_at)
        });
    }
    // A session filter keeps the patients it selects sessions of, with all their scores.
    if filter.session_filtered() && chosen.is_empty() {
        return vec![];
    }
    for a in batch
        .assessments
        .iter()
        .filter(|a| &a.patient_id == patient_id)
    {
        let instrument: Option<Instrument> = a.instrument.parse().ok();
        if filter.instrument.is_some_and(|i| Some(i) != instrument) || !filter.in_range(a.taken_at)
        {
            continue;
        }
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
        .filter(|e| &e.patient_id == patient_id)
    {
        let Some(session) = chosen.get(e.session_id.as_str()) else {
            continue;
        };
        if !filter.in_range(e.onset_at) {
            continue;
        }
        rows.push(ExportRow {
            indication: session.indication.clone(),
            route: Some(session.route.clone()),
            dose_band: Some(session.dose_band.clone()),
            phase: session.phase.clone(),
            effect: Some(e.effect.clone()),
            effect_severity: Some(e.severity.clone()),
            resolved_day: e.resolved_at.map(|r| whole_days(first, r)),
            ..base("side_effect", e.onset_at)
        });
    }
    rows.sort_by_key(|r| r.day);
    rows
}

/// A rung of the generalisation ladder, from exact (0) to coarsest (5).
pub type Level = usize;
pub const LEVELS: Level = 6;

/// The quasi-identifiers of a row.
pub type Quasi = [Option<String>; 6];

fn quasi(row: &ExportRow) -> Quasi {
    [
        row.age_band.clone(),
        row.sex.clone(),
        row.indication.clone(),
        row.route.clone(),
        row.dose_band.clone(),
        row.phase.clone(),
    ]
}

/// The row with its quasi-identifiers generalised to `level`.
pub fn generalised(mut row: ExportRow, level: Level) -> ExportRow {
    let [age_band, sex, indication, route, dose_band, phase] = generalise(quasi(&row), level);
    (row.age_band, row.sex, row.indication) = (age_band, sex, indication);
    (row.route, row.dose_band, row.phase) = (route, dose_band, phase);
    row
}

/// Quasi-identifiers generalised to `level`.
fn generalise(q: Quasi, level: Level) -> Quasi {
    let [mut age_band, mut sex, mut indication, mut route, mut dose_band, mut phase] = q;
    if level >= 1 {
        age_band = age_band.map(|a| wider_age(&a, 20, 80));
        dose_band = dose_band.map(|d| {
            if d == "lt_0.5" || d == "0.5_to_0.75" {
                "lt_0.75"
            } else {
                "ge_0.75"
            }
            .to_owned()
        });
    }
    if level >= 2 {
        age_band = age_band.map(|a| wider_age(&a, 60, 60));
        route = route.map(|r| if r == "iv" { r } else { "other".to_owned() });
    }
    if level >= 3 {
        age_band = None;
        indication = indication.map(|i| indication_family(&i).to_owned());
    }
    if level >= 4 {
        sex = None;
        dose_band = None;
    }
    if level >= 5 {
        // Nothing left to single anyone out: every row of the file is one combination.
        (indication, route, phase) = (None, None, None);
    }
    [age_band, sex, indication, route, dose_band, phase]
}

/// The band of `width` years holding a 10-year band's low end, everything from `top` up as
/// one band (`80+`): `45-54`-style inputs never occur, so the low end decides.
fn wider_age(band: &str, width: u32, top: u32) -> String {
    let low: u32 = band
        .split(['-', '+'])
        .next()
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    if low >= top {
        return format!("{top}+");
    }
    if width >= top {
        return format!("lt_{top}");
    }
    let start = low / width * width;
    format!("{start}-{}", start + width - 1)
}

fn indication_family(indication: &str) -> &'static str {
    use Indication::*;
    match indication.parse::<Indication>() {
        Ok(MajorDepression | TreatmentResistantDepression | BipolarDepression | Other) => {
            "depression"
        }
        Ok(Anxiety | Ocd | Ptsd) => "anxiety_or_trauma",
        Ok(Fibromyalgia | ComplexRegionalPainSyndrome | PostOperativePain | OtherChronicPain) => {
            "pain"
        }
        Err(_) => "other",
    }
}

/// The first pass: for each level, the distinct patients and the rows of each combination.
#[derive(Debug, Default)]
pub struct Census {
    combinations: [HashMap<Quasi, (usize, usize)>; LEVELS],
    rows: usize,
}

impl Census {
    /// Counts one patient's rows (all of them, as `rows_of_patient` gave them).
    pub fn add_patient(&mut self, rows: &[ExportRow]) {
        self.rows += rows.len();
        // A patient's rows share few combinations: each counted once, with its rows.
        let mut own: HashMap<Quasi, usize> = HashMap::new();
        for row in rows {
            *own.entry(quasi(row)).or_default() += 1;
        }
        for (level, combinations) in self.combinations.iter_mut().enumerate() {
            let mut at_level: HashMap<Quasi, usize> = HashMap::new();
            for (q, n) in &own {
                *at_level.entry(generalise(q.clone(), level)).or_default() += n;
            }
            for (q, n) in at_level {
                let entry = combinations.entry(q).or_default();
                entry.0 += 1;
                entry.1 += n;
            }
        }
    }

    /// The plan for the second pass: the lowest level at which at most 5 % of rows fall in
    /// combinations of fewer than `k` patients (the coarsest when none does).
    pub fn plan(self, k: usize) -> Anonymity {
        let suppressed = |level: Level| -> usize {
            self.combinations[level]
                .values()
                .filter(|(patients, _)| *patients < k)
                .map(|(_, rows)| rows)
                .sum()
        };
        let level = (0..LEVELS)
            .find(|l| suppressed(*l) * 20 <= self.rows)
            .unwrap_or(LEVELS - 1);
        let rare = self.combinations[level]
            .iter()
            .filter(|(_, (patients, _))| *patients < k)
            .map(|(q, _)| q.clone())
            .collect();
        Anonymity {
            level,
            suppressed_rows: suppressed(level),
            rows: self.rows,
            rare,
        }
    }
}

/// How the second pass writes rows.
#[derive(Debug)]
pub struct Anonymity {
    pub level: Level,
    /// Rows left out, in combinations of fewer than k patients.
    pub suppressed_rows: usize,
    /// Rows before suppression.
    pub rows: usize,
    rare: BTreeSet<Quasi>,
}

impl Anonymity {
    /// The row as it is exported, or none when its combination is too rare.
    pub fn apply(&self, row: ExportRow) -> Option<ExportRow> {
        let row = generalised(row, self.level);
        (!self.rare.contains(&quasi(&row))).then_some(row)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(age: &str, sex: &str, route: &str) -> ExportRow {
        ExportRow {
            kind: "session",
            age_band: Some(age.into()),
            sex: Some(sex.into()),
            indication: Some("ocd".into()),
            route: Some(route.into()),
            dose_band: Some("0.5_to_0.75".into()),
            phase: Some("induction".into()),
            ..ExportRow::default()
        }
    }

    /// The CSV header is the row's fields in order.
    #[test]
    fn the_header_names_the_rows_fields() {
        let header = String::from_utf8(csv_header()).unwrap();
        assert!(
            header.starts_with("kind,patient,day,sex,age_band,indication,route,"),
            "{header}"
        );
        assert!(
            header.ends_with("effect,effect_severity,resolved_day\n"),
            "{header}"
        );
        assert!(!header.contains("dose_mg_per_kg") && !header.contains("total_dose"));
    }

    /// The ladder widens every quasi-identifier it touches, and nothing else.
    #[test]
    fn the_generalisation_ladder() {
        let r = row("40-49", "female", "intranasal");
        let at = |level| {
            let g = generalised(r.clone(), level);
            (g.age_band, g.dose_band, g.route, g.indication)
        };
        let s = |x: &str| Some(x.to_owned());
        assert_eq!(
            at(0),
            (s("40-49"), s("0.5_to_0.75"), s("intranasal"), s("ocd"))
        );
        assert_eq!(at(1), (s("40-59"), s("lt_0.75"), s("intranasal"), s("ocd")));
        assert_eq!(at(2), (s("lt_60"), s("lt_0.75"), s("other"), s("ocd")));
        assert_eq!(
            at(3),
            (None, s("lt_0.75"), s("other"), s("anxiety_or_trauma"))
        );
        assert_eq!(at(4), (None, None, s("other"), s("anxiety_or_trauma")));
        assert_eq!(at(5), (None, None, None, None));
        assert_eq!(wider_age("90+", 20, 80), "80+");
        assert_eq!(wider_age("60-69", 60, 60), "60+");
        assert_eq!(charge_band(Some(29_999)).as_deref(), Some("lt_300"));
        assert_eq!(charge_band(Some(30_000)).as_deref(), Some("300_to_450"));
        assert_eq!(charge_band(Some(45_000)).as_deref(), Some("ge_450"));
        assert_eq!(charge_band(None), None);
    }

    /// k-anonymity, counted in the file: every combination kept covers at least k patients.
    #[test]
    fn every_kept_combination_covers_k_patients() {
        let k = 3;
        let mut patients: Vec<Vec<ExportRow>> = Vec::new();
        // Twenty patients alike, and one of a kind at each level short of the coarsest.
        for i in 0..20 {
            patients.push(vec![row(
                "40-49",
                if i % 2 == 0 { "female" } else { "male" },
                "iv",
            )]);
        }
        patients.push(vec![row("90+", "intersex", "oral")]);
        let mut census = Census::default();
        for rows in &patients {
            census.add_patient(rows);
        }
        let plan = census.plan(k);
        assert_eq!(plan.level, 0, "1 rare row in 21 is within 5 %");
        assert_eq!(plan.suppressed_rows, 1);
        let mut coverage: HashMap<Quasi, BTreeSet<usize>> = HashMap::new();
        for (p, rows) in patients.into_iter().enumerate() {
            for r in rows.into_iter().filter_map(|r| plan.apply(r)) {
                coverage.entry(quasi(&r)).or_default().insert(p);
            }
        }
        assert!(
            coverage.values().all(|patients| patients.len() >= k),
            "{coverage:?}"
        );
        assert_eq!(coverage.values().map(BTreeSet::len).sum::<usize>(), 20);
    }

    #[test]
    fn a_file_of_rarities_climbs_the_ladder() {
        let mut census = Census::default();
        for age in ["20-29", "30-39", "40-49", "50-59"] {
            for _ in 0..3 {
                census.add_patient(&[row(age, "female", "iv")]);
            }
        }
        // At 10-year bands each age has 3 patients (< 5); at 20-year bands, 6.
        assert_eq!(census.plan(5).level, 1);
    }
}
