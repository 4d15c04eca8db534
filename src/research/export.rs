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

use crate::domain::ids::{CourseId, PatientId, SessionId};
use crate::domain::instrument::Instrument;
use crate::domain::patient::{Indication, Sex};
use crate::domain::research::{AdherenceBand, AgeBand, DoseBand};
use crate::domain::schedule::{self, Phase};
use crate::domain::treatment::{Route, SessionStatus};
use crate::research::query::Question;
use crate::store::research::ExportBatch;

/// One row of the export.
#[derive(Debug, Default, Clone, Serialize, ToSchema)]
#[schema(example = json!({"kind": "session", "patient": "5f1c0a9e7b3d2e41", "day": 3, "sex": "female", "age_band": "40-49",
    "indication": "treatment_resistant_depression", "route": "iv", "dose_band": "0.5_to_0.75",
    "session_status": "completed", "phase": "induction", "charge_band": "300_to_450", "benefit_status": "wore_off",
    "durability_days": 5, "instrument": null, "total": null, "severity": null, "band": null, "effect": null,
    "effect_severity": null, "resolved_day": null}))]
pub struct ExportRow {
    #[schema(schema_with = vocabulary::kind_schema)]
    pub kind: &'static str,
    /// A pseudonym of the patient, different in every export.
    pub patient: String,
    /// Whole days since the patient's first completed session (negative before it).
    pub day: i64,
    #[schema(required = true, schema_with = vocabulary::sex_schema)]
    pub sex: Option<String>,
    #[schema(required = true, schema_with = vocabulary::age_band_schema)]
    pub age_band: Option<String>,
    #[schema(required = true, schema_with = vocabulary::indication_schema)]
    pub indication: Option<String>,
    #[schema(required = true, schema_with = vocabulary::route_schema)]
    pub route: Option<String>,
    #[schema(required = true, schema_with = vocabulary::dose_band_schema)]
    pub dose_band: Option<String>,
    #[schema(required = true, schema_with = vocabulary::session_status_schema)]
    pub session_status: Option<String>,
    #[schema(required = true, schema_with = vocabulary::phase_schema)]
    pub phase: Option<String>,
    #[schema(required = true, schema_with = vocabulary::charge_band_schema)]
    pub charge_band: Option<String>,
    #[schema(required = true, schema_with = vocabulary::benefit_status_schema)]
    pub benefit_status: Option<String>,
    /// Whole days.
    #[schema(required = true)]
    pub durability_days: Option<i64>,
    #[schema(required = true, schema_with = vocabulary::instrument_schema)]
    pub instrument: Option<String>,
    #[schema(required = true)]
    pub total: Option<i32>,
    #[schema(required = true)]
    pub severity: Option<i32>,
    #[schema(required = true, schema_with = vocabulary::band_schema)]
    pub band: Option<String>,
    #[schema(required = true, schema_with = vocabulary::effect_schema)]
    pub effect: Option<String>,
    #[schema(required = true, schema_with = vocabulary::effect_severity_schema)]
    pub effect_severity: Option<String>,
    #[schema(required = true)]
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
    pub indication: Option<Indication>,
    pub sex: Option<Sex>,
    pub age_band: Option<AgeBand>,
    /// Patients with a course in this adherence band.
    pub adherence_band: Option<AdherenceBand>,
    /// Sessions (and their side effects) of this route, dose band, phase.
    pub route: Option<Route>,
    pub dose_band: Option<DoseBand>,
    pub phase: Option<Phase>,
    /// Assessments of this instrument, sessions of courses whose primary instrument it is.
    pub instrument: Option<Instrument>,
    /// Rows whose own time lies in `[from, to)`.
    pub from: Option<NaiveDateTime>,
    pub to: Option<NaiveDateTime>,
}

impl From<&Question> for ExportFilter {
    fn from(q: &Question) -> Self {
        Self {
            indication: q.indication,
            sex: q.sex,
            age_band: q.age_band,
            adherence_band: q.adherence_band,
            route: q.route,
            dose_band: q.dose_band,
            phase: q.phase,
            instrument: q.instrument,
            from: q.from.map(crate::clock::to_db),
            to: q.to.map(crate::clock::to_db),
        }
    }
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
            c if c < 30_000 => vocabulary::CHARGE_BANDS[0],
            c if c < 45_000 => vocabulary::CHARGE_BANDS[1],
            _ => vocabulary::CHARGE_BANDS[2],
        }
        .to_owned(),
    )
}

fn whole_days(from: NaiveDateTime, at: NaiveDateTime) -> i64 {
    (at - from).num_seconds().div_euclid(86_400)
}

/// What a side effect takes from its session.
struct SessionQuasi {
    route: Route,
    dose_band: DoseBand,
    phase: Option<Phase>,
    indication: Option<Indication>,
}

/// One patient of a batch: id, sex, birth year.
pub type ExportPatient = (PatientId, Sex, i32);

fn text(value: impl std::fmt::Display) -> Option<String> {
    Some(value.to_string())
}

/// The rows of one patient that the filter allows, in time order, before generalisation.
/// `adherence` gives each course's adherence band (read only when the filter asks for one).
pub fn rows_of_patient(
    (patient_id, sex, birth_year): &ExportPatient,
    pseudonym: &str,
    batch: &ExportBatch,
    filter: &ExportFilter,
    adherence: &HashMap<CourseId, AdherenceBand>,
) -> Vec<ExportRow> {
    let sessions: Vec<_> = batch
        .sessions
        .iter()
        .filter(|s| s.patient_id == *patient_id)
        .collect();
    let Some(first) = sessions
        .iter()
        .filter(|s| s.status == SessionStatus::Completed)
        .map(|s| s.started_at)
        .min()
    else {
        return vec![];
    };
    let age_band = AgeBand::at(*birth_year, first.year());
    let courses: HashMap<CourseId, &crate::store::courses::CourseRow> = batch
        .courses
        .iter()
        .filter(|c| c.patient_id == *patient_id)
        .map(|c| (c.id, c))
        .collect();
    let patient_allowed = filter.sex.is_none_or(|s| s == *sex)
        && filter.age_band.is_none_or(|a| a == age_band)
        && filter
            .indication
            .is_none_or(|i| courses.values().any(|c| c.indication == i))
        && filter.adherence_band.is_none_or(|band| {
            courses
                .keys()
                .any(|c| adherence.get(c).is_some_and(|b| *b == band))
        });
    if !patient_allowed {
        return vec![];
    }
    let first_indication = sessions
        .iter()
        .find(|s| s.started_at == first)
        .and_then(|s| courses.get(&s.course_id))
        .map(|c| c.indication);
    let base = |kind, at| ExportRow {
        kind,
        patient: pseudonym.to_owned(),
        day: whole_days(first, at),
        sex: text(sex),
        age_band: text(age_band),
        indication: first_indication.and_then(text),
        ..ExportRow::default()
    };
    let mut rows = Vec::new();
    let mut chosen: HashMap<SessionId, SessionQuasi> = HashMap::new();
    for s in &sessions {
        let course = courses.get(&s.course_id);
        let phase =
            course.map(|c| schedule::phase_of(c.protocol, c.start_date, s.started_at.date()));
        let dose_band = DoseBand::of(s.dose_mg_per_kg);
        let allowed = filter.route.is_none_or(|r| r == s.route)
            && filter.dose_band.is_none_or(|d| d == dose_band)
            && filter.phase.is_none_or(|p| Some(p) == phase)
            && filter
                .instrument
                .is_none_or(|i| course.is_some_and(|c| c.primary_instrument == i));
        if !allowed {
            continue;
        }
        let indication = course.map(|c| c.indication);
        chosen.insert(
            s.id,
            SessionQuasi {
                route: s.route,
                dose_band,
                phase,
                indication,
            },
        );
        if !filter.in_range(s.started_at) {
            continue;
        }
        let outcome = batch.outcomes.iter().find(|o| o.session_id == s.id);
        rows.push(ExportRow {
            indication: indication.and_then(text),
            route: text(s.route),
            dose_band: text(dose_band),
            session_status: text(s.status),
            phase: phase.and_then(text),
            charge_band: charge_band(s.charge_cents),
            benefit_status: outcome.and_then(|o| text(o.status)),
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
        .filter(|a| a.patient_id == *patient_id)
    {
        if filter.instrument.is_some_and(|i| i != a.instrument) || !filter.in_range(a.taken_at) {
            continue;
        }
        rows.push(ExportRow {
            instrument: text(a.instrument),
            total: Some(a.total),
            severity: Some(a.instrument.definition().severity(a.total)),
            band: a.band.clone(),
            ..base("assessment", a.taken_at)
        });
    }
    for e in batch
        .side_effects
        .iter()
        .filter(|e| e.patient_id == *patient_id)
    {
        let Some(session) = chosen.get(&e.session_id) else {
            continue;
        };
        if !filter.in_range(e.onset_at) {
            continue;
        }
        rows.push(ExportRow {
            indication: session.indication.and_then(text),
            route: text(session.route),
            dose_band: text(session.dose_band),
            phase: session.phase.and_then(text),
            effect: text(e.effect),
            effect_severity: text(e.severity),
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
        let covered = self.combinations[level]
            .iter()
            .filter(|(_, (patients, _))| *patients >= k)
            .map(|(q, _)| q.clone())
            .collect();
        Anonymity {
            level,
            suppressed_rows: suppressed(level),
            rows: self.rows,
            covered,
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
    /// The combinations the census found covering at least k patients. Only these are
    /// written: a combination that first appears between the passes (a record written
    /// meanwhile) was never counted, so it is left out rather than trusted.
    covered: BTreeSet<Quasi>,
}

impl Anonymity {
    /// The row as it is exported, or none unless the census counted its combination among
    /// at least k patients.
    pub fn apply(&self, row: ExportRow) -> Option<ExportRow> {
        let row = generalised(row, self.level);
        self.covered.contains(&quasi(&row)).then_some(row)
    }
}

/// The export as a use case: streamed in two passes over the same patients, a hundred at a
/// time (memory stays flat however many rows): the first counts the quasi-identifier
/// combinations ([`Census`]), the second writes the rows k-anonymity allows. Audited when it
/// starts (what it asked, how far it generalised) and when it ends (rows written).
pub mod run {
    use futures_util::stream::{self, LocalBoxStream, StreamExt};
    use hmac::{Hmac, Mac};
    use rand::RngCore;
    use sha2::Sha256;
    use std::collections::HashMap;
    use std::time::{Duration, Instant};

    use chrono::{DateTime, Utc};
    use tokio::sync::{mpsc, oneshot};

    use super::{
        csv_header, rows_of_patient, Anonymity, Census, ExportFilter, ExportPatient, ExportRow,
        Level,
    };
    use crate::call::{Call, Event};
    use crate::domain::account::Role;
    use crate::domain::audit::Action;
    use crate::domain::ids::{CourseId, PatientId};
    use crate::domain::privacy::Tier;
    use crate::domain::research::AdherenceBand;
    use crate::error::ApiError;
    use crate::research::access;
    use crate::research::query::Question;
    use crate::store::research::{self as facts, ExportBatch};
    use crate::store::{DbConnection, StoreError};

    /// Patients per database round trip.
    const BATCH: i64 = 100;

    /// The file's two encodings: CSV with a header line, or one JSON object per line.
    #[derive(
        Clone,
        Copy,
        Debug,
        Default,
        PartialEq,
        Eq,
        serde::Serialize,
        serde::Deserialize,
        utoipa::ToSchema,
    )]
    #[serde(rename_all = "lowercase")]
    #[schema(as = ExportFormat)]
    pub enum Format {
        #[default]
        Csv,
        Ndjson,
    }

    /// An export under way: how far it generalised, how many rows it leaves out, and its
    /// bytes, a batch of patients at a time.
    pub struct Export {
        pub format: Format,
        pub level: usize,
        pub suppressed_rows: usize,
        pub pages: LocalBoxStream<'static, Result<Vec<u8>, ApiError>>,
    }

    /// One batch of patients and everything the export needs of them: their records, and each
    /// course's adherence band (read only when the filter asks for one).
    struct Batch {
        patients: Vec<ExportPatient>,
        records: ExportBatch,
        bands: HashMap<CourseId, AdherenceBand>,
    }

    fn batch(
        conn: &mut DbConnection,
        after: Option<PatientId>,
        filter: &ExportFilter,
        now: DateTime<Utc>,
    ) -> Result<Batch, StoreError> {
        let patients = facts::patients_page(conn, after, BATCH, filter.sex)?;
        let ids: Vec<PatientId> = patients.iter().map(|p| p.0).collect();
        let records = facts::export_batch(conn, &ids)?;
        let mut bands = HashMap::new();
        if filter.adherence_band.is_some() {
            let ids: Vec<CourseId> = records.courses.iter().map(|c| c.id).collect();
            let adherence = crate::plan::adherence_of_courses(conn, &ids, now)?;
            for (course, (completed, due)) in adherence {
                bands.insert(course, AdherenceBand::of(completed, due));
            }
        }
        Ok(Batch {
            patients,
            records,
            bands,
        })
    }

    /// The first pass: how rare each quasi-identifier combination is, at each level.
    fn census(
        conn: &mut DbConnection,
        filter: &ExportFilter,
        k: usize,
        now: DateTime<Utc>,
    ) -> Result<Anonymity, StoreError> {
        let mut census = Census::default();
        let mut after = None;
        loop {
            let b = batch(conn, after, filter, now)?;
            for patient in &b.patients {
                let rows = rows_of_patient(patient, "", &b.records, filter, &b.bands);
                census.add_patient(&rows);
            }
            if (b.patients.len() as i64) < BATCH {
                return Ok(census.plan(k));
            }
            after = b.patients.last().map(|p| p.0);
        }
    }

    /// What the census decided, for the response's headers and the audit trail.
    #[derive(Clone, Copy)]
    struct Planned {
        level: Level,
        suppressed_rows: usize,
        rows_before_suppression: usize,
    }

    /// Pages of the file on their way to the client: two in flight at most, so memory stays
    /// flat however many rows the export has.
    type Pages = mpsc::Sender<Result<Vec<u8>, ApiError>>;

    /// How long a page may wait for the client to take it. A reader that stalls longer loses
    /// the export, so it cannot hold a connection and its snapshot open for ever.
    const STALL: Duration = Duration::from_secs(30);

    /// How an export ended: every row written, or the client gone (or stalled) after `written`.
    enum Ended {
        Written(Planned, usize),
        Abandoned(Planned, usize),
    }

    /// Hands `page` to the client, waiting up to [`STALL`]; false when it is gone or stalled.
    fn deliver(pages: &Pages, mut page: Result<Vec<u8>, ApiError>) -> bool {
        let deadline = Instant::now() + STALL;
        loop {
            match pages.try_send(page) {
                Ok(()) => return true,
                Err(mpsc::error::TrySendError::Closed(_)) => return false,
                Err(mpsc::error::TrySendError::Full(back)) if Instant::now() < deadline => {
                    page = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(mpsc::error::TrySendError::Full(_)) => return false,
            }
        }
    }

    /// Both passes, in one snapshot of the research database and at one instant (so the rows
    /// written are the rows the census counted, whatever is written, withdrawn or falls due
    /// meanwhile): the census, whose plan goes to `planned`, then the rows it allows, a batch
    /// of patients at a time, into `pages`. None when the client left before the plan.
    fn produce(
        conn: &mut DbConnection,
        filter: &ExportFilter,
        k: usize,
        format: Format,
        planned: oneshot::Sender<Planned>,
        pages: &Pages,
    ) -> Result<Option<Ended>, StoreError> {
        let now = crate::clock::now();
        let plan = census(conn, filter, k, now)?;
        let summary = Planned {
            level: plan.level,
            suppressed_rows: plan.suppressed_rows,
            rows_before_suppression: plan.rows,
        };
        if planned.send(summary).is_err() {
            return Ok(None);
        }
        let mut secret = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        let (mut after, mut written) = (None, 0);
        loop {
            let b = batch(conn, after, filter, now)?;
            let rows: Vec<ExportRow> = b
                .patients
                .iter()
                .flat_map(|p| {
                    let pseudonym = pseudonym(&secret, p.0);
                    rows_of_patient(p, &pseudonym, &b.records, filter, &b.bands)
                })
                .filter_map(|row| plan.apply(row))
                .collect();
            if !deliver(pages, encode(&rows, format, after.is_none())) {
                return Ok(Some(Ended::Abandoned(summary, written)));
            }
            written += rows.len();
            match b.patients.last() {
                Some(last) if b.patients.len() as i64 == BATCH => after = Some(last.0),
                _ => return Ok(Some(Ended::Written(summary, written))),
            }
        }
    }

    /// Starts the export of what `question` selects (the controlled tier only).
    pub async fn export(
        call: &Call,
        question: Question,
        format: Format,
    ) -> Result<Export, ApiError> {
        call.require(&[Role::Researcher])?;
        let researcher = call.caller.user_id;
        let tier = call
            .run(move |conn| access::tier_of(conn, researcher))
            .await?;
        if tier != Tier::Controlled {
            return Err(ApiError::NeedsGrant);
        }
        let filter = ExportFilter::from(&question);
        let research = call.services.research_db.db.clone();
        let k = call.services.research.min_cell;
        // Started before any data is read, with what was asked; completed, once every row is
        // written, with how the file was generalised and how many rows it holds. (Written to
        // the primary from outside the snapshot, so the export holds one connection at a
        // time even on a pool of one.)
        let started = Event::new(Action::ResearchExportStarted)
            .detail(serde_json::json!({"query": question, "format": format}).to_string());
        call.transaction(move |conn, call| Ok(call.audit(conn, started)?))
            .await?;
        let (planned, plan) = oneshot::channel();
        let (pages, mut received) = mpsc::channel(2);
        let (failed, finisher) = (pages.clone(), call.clone());
        actix_web::rt::spawn(async move {
            let produced = research
                .snapshot(move |conn| {
                    produce(conn, &filter, k, format, planned, &pages).map_err(ApiError::from)
                })
                .await;
            let ended = match produced {
                Ok(Some(Ended::Written(plan, rows))) => {
                    Some((Action::ResearchExportCompleted, plan, rows))
                }
                Ok(Some(Ended::Abandoned(plan, rows))) => {
                    Some((Action::ResearchExportAbandoned, plan, rows))
                }
                Ok(None) => None,
                Err(err) => {
                    tracing::error!(error = %err, "the research export failed");
                    let _ = failed.send(Err(err)).await;
                    None
                }
            };
            // The end, with how far the rows handed over were generalised and how many there
            // were, also when the client left half-way: they were released all the same.
            if let Some((action, plan, rows)) = ended {
                let event = Event::new(action).detail(
                    serde_json::json!({"rows": rows, "generalisation": plan.level,
                        "rows_before_suppression": plan.rows_before_suppression,
                        "suppressed_rows": plan.suppressed_rows})
                    .to_string(),
                );
                // Behind the answer, not in a transaction of the call's: that would confirm the
                // account first, and an account refused meanwhile must not erase the trail of
                // rows already released.
                let audited = finisher.audit_behind([event]).await;
                if let Err(err) = audited {
                    tracing::error!(error = %err, "the end of a research export was not audited");
                    let _ = failed.send(Err(err)).await;
                }
            }
        });
        // The census's plan, or why there is none (the producer's error, sent as a page).
        let Ok(Planned {
            level,
            suppressed_rows,
            ..
        }) = plan.await
        else {
            return Err(match received.recv().await {
                Some(Err(err)) => err,
                _ => ApiError::Internal("the export ended before its census".into()),
            });
        };
        let pages = stream::unfold(received, |mut received| async move {
            received.recv().await.map(|page| (page, received))
        });
        Ok(Export {
            format,
            level,
            suppressed_rows,
            pages: pages.boxed_local(),
        })
    }

    /// One page of rows as CSV (the header first on the first page, even when there are no
    /// rows) or as NDJSON.
    fn encode(rows: &[ExportRow], format: Format, first_page: bool) -> Result<Vec<u8>, ApiError> {
        let failed = |e: Box<dyn std::error::Error + Send + Sync>| ApiError::Internal(e);
        let mut out = Vec::new();
        match format {
            Format::Csv => {
                if first_page {
                    out.extend(csv_header());
                }
                let mut writer = ::csv::WriterBuilder::new()
                    .has_headers(false)
                    .from_writer(&mut out);
                for row in rows {
                    writer.serialize(row).map_err(|e| failed(Box::new(e)))?;
                }
                writer.flush().map_err(|e| failed(Box::new(e)))?;
            }
            Format::Ndjson => {
                for row in rows {
                    serde_json::to_writer(&mut out, row).map_err(|e| failed(Box::new(e)))?;
                    out.push(b'\n');
                }
            }
        }
        Ok(out)
    }

    /// A keyed hash of the patient id with this export's secret: stable within the export,
    /// unlinkable across exports.
    fn pseudonym(secret: &[u8], patient: PatientId) -> String {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes a key of any length");
        mac.update(patient.to_string().as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..8])
    }
}

/// What each categorical field of a row may hold, stated in the contract as an enumeration so
/// a generated client gets a type, not a string: a quasi-identifier's exact values and every
/// generalisation of them the ladder makes, computed by that ladder so the two cannot drift.
pub mod vocabulary {
    use std::collections::BTreeSet;

    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
    use utoipa::openapi::{Ref, RefOr, Schema};

    use super::{generalise, Quasi, LEVELS};
    use crate::domain::instrument::Instrument;
    use crate::domain::patient::{Indication, Sex};
    use crate::domain::research::{AgeBand, DoseBand};
    use crate::domain::schedule::Phase;
    use crate::domain::treatment::Route;

    pub const KINDS: [&str; 3] = ["session", "assessment", "side_effect"];
    pub const CHARGE_BANDS: [&str; 3] = ["lt_300", "300_to_450", "ge_450"];

    /// The values the quasi-identifier at `position` takes at any level of the ladder.
    fn released(position: usize, exact: impl IntoIterator<Item = String>) -> Vec<String> {
        let mut values = BTreeSet::new();
        for value in exact {
            for level in 0..LEVELS {
                let mut quasi = Quasi::default();
                quasi[position] = Some(value.clone());
                values.extend(generalise(quasi, level)[position].take());
            }
        }
        values.into_iter().collect()
    }

    fn names<T: std::fmt::Display>(all: &[T]) -> Vec<String> {
        all.iter().map(T::to_string).collect()
    }

    pub fn age_bands() -> Vec<String> {
        let exact = (0..AgeBand::COUNT as i32).map(|band| AgeBand::at(2000, 2000 + band * 10));
        released(0, exact.map(|band| band.to_string()))
    }
    pub fn sexes() -> Vec<String> {
        released(1, names(Sex::ALL))
    }
    pub fn indications() -> Vec<String> {
        released(2, names(Indication::ALL))
    }
    pub fn routes() -> Vec<String> {
        released(3, names(Route::ALL))
    }
    pub fn dose_bands() -> Vec<String> {
        released(4, names(DoseBand::ALL))
    }
    pub fn phases() -> Vec<String> {
        released(5, names(Phase::ALL))
    }
    pub fn bands() -> Vec<String> {
        let all = Instrument::ALL.iter().flat_map(|i| i.definition().bands);
        let names: BTreeSet<String> = all.map(|band| band.name.to_owned()).collect();
        names.into_iter().collect()
    }

    /// The components the row's fields refer to that no Rust type of their own states: a
    /// quasi-identifier's values with their generalisations, the charge bands, the kinds.
    pub fn components() -> Vec<(&'static str, Schema)> {
        let named = |values: Vec<String>, description: &str| {
            let values = values.into_iter().map(serde_json::Value::from);
            let schema = ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(values))
                .description(Some(description.to_owned()));
            Schema::Object(schema.build())
        };
        vec![
            (
                "ExportKind",
                named(names(&KINDS), "What an export row records."),
            ),
            (
                "ExportAgeBand",
                named(
                    age_bands(),
                    "A 10-year band, `90+` over 89; where k-anonymity needs it a 20-year band \
                     or `80+`, or `lt_60` and `60+`.",
                ),
            ),
            (
                "ExportIndication",
                named(
                    indications(),
                    "An indication; where k-anonymity needs it its family: `depression`, \
                     `anxiety_or_trauma` or `pain`.",
                ),
            ),
            (
                "ExportRoute",
                named(
                    routes(),
                    "A route; `other` for all but IV where k-anonymity needs it.",
                ),
            ),
            (
                "ExportDoseBand",
                named(
                    dose_bands(),
                    "A band of mg/kg; `lt_0.75` and `ge_0.75` where k-anonymity needs it.",
                ),
            ),
            (
                "ExportChargeBand",
                named(names(&CHARGE_BANDS), "A session's charge in US dollars."),
            ),
            (
                "SeverityBand",
                named(bands(), "An instrument's severity band (domain.md §4)."),
            ),
        ]
    }

    /// The component `name`, or null.
    fn or_null(name: &str) -> RefOr<Schema> {
        let null = ObjectBuilder::new().schema_type(Type::Null);
        let either = OneOfBuilder::new()
            .item(null)
            .item(Ref::from_schema_name(name));
        RefOr::T(Schema::OneOf(either.build()))
    }

    pub fn kind_schema() -> RefOr<Schema> {
        RefOr::Ref(Ref::from_schema_name("ExportKind"))
    }
    pub fn sex_schema() -> RefOr<Schema> {
        or_null("Sex")
    }
    pub fn age_band_schema() -> RefOr<Schema> {
        or_null("ExportAgeBand")
    }
    pub fn indication_schema() -> RefOr<Schema> {
        or_null("ExportIndication")
    }
    pub fn route_schema() -> RefOr<Schema> {
        or_null("ExportRoute")
    }
    pub fn dose_band_schema() -> RefOr<Schema> {
        or_null("ExportDoseBand")
    }
    pub fn session_status_schema() -> RefOr<Schema> {
        or_null("SessionStatus")
    }
    pub fn phase_schema() -> RefOr<Schema> {
        or_null("Phase")
    }
    pub fn charge_band_schema() -> RefOr<Schema> {
        or_null("ExportChargeBand")
    }
    pub fn benefit_status_schema() -> RefOr<Schema> {
        or_null("BenefitStatus")
    }
    pub fn instrument_schema() -> RefOr<Schema> {
        or_null("Instrument")
    }
    pub fn band_schema() -> RefOr<Schema> {
        or_null("SeverityBand")
    }
    pub fn effect_schema() -> RefOr<Schema> {
        or_null("Effect")
    }
    pub fn effect_severity_schema() -> RefOr<Schema> {
        or_null("Severity")
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

    /// A record written between the census and the rows (a new patient, a new session) has a
    /// combination the census never counted: it is left out, however it generalises.
    #[test]
    fn a_combination_the_census_never_saw_is_left_out() {
        let mut census = Census::default();
        for _ in 0..5 {
            census.add_patient(&[row("40-49", "female", "iv")]);
        }
        let plan = census.plan(3);
        assert!(plan.apply(row("40-49", "female", "iv")).is_some());
        assert!(plan.apply(row("90+", "intersex", "oral")).is_none());
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
