//! What every write to a patient's record sets in motion, inside the writer's transaction:
//! the patient's outcomes are recomputed (and stored where they changed) and every flag the
//! record now warrants is raised. Rules come from `domain`; rows from and to `store`.
//!
//! A write evaluates only what it can move ([`Change`]): an assessment, its own flags and the
//! outcomes whose windows (domain.md §6) hold its time, from the scores in those windows; a
//! session, the flags of the treatment and the outcomes of the sessions around it (and of its
//! course when it moves the course's first session), from the scores in their windows; a side
//! effect, its own flags. Courses and the patient are evaluated whole — the reference the
//! incremental paths are held to (`tests/api/evaluation.rs` runs random histories through
//! both). Every earlier write evaluated its own record, so what a change cannot move stands
//! as it was left.
//!
//! The flags that time alone raises (a side effect that outlasts its expected time, a
//! follow-up not taken, an induction slot more than 3 days overdue) are raised by the sweep
//! (`sweep`), from the record as it stands then, each rule giving the instant its flag falls
//! due, so the sweep knows when to read the record again.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

use crate::clock;
use crate::config::ClinicalSettings;
use crate::domain::durability;
use crate::domain::flags::{self, CompletedSession, FlagKind, FlaggedRecord, Raised};
use crate::domain::ids::{AssessmentId, CourseId, PatientId, SessionId};
use crate::domain::instrument::{Definition, Instrument, Scored};
use crate::domain::outcomes::{self, BenefitStatus, Score};
use crate::domain::patient::RiskClass;
use crate::domain::schedule::{self, Phase};
use crate::domain::side_effect::Persistence;
use crate::domain::treatment::{SessionStatus, VitalSigns};
use crate::store::assessments::{self, AssessmentRow};
use crate::store::courses::{self, CourseRow};
use crate::store::flags::{self as flag_store, FlagRow};
use crate::store::outcomes::{self as outcome_store, CourseOutcomeRow, SessionOutcomeRow};
use crate::store::scope::Scope;
use crate::store::sessions::{self, SessionRow};
use crate::store::side_effects::{self, SideEffectRow};
use crate::store::{patients, time_flag_checks, DbConnection, StoreError};

/// Everything of one patient's record that outcomes and flags are computed from.
struct Record {
    patient_id: PatientId,
    has_contraindication: bool,
    courses: Vec<CourseRow>,
    /// Live sessions, oldest first.
    sessions: Vec<SessionRow>,
    assessments: Vec<AssessmentRow>,
    side_effects: Vec<SideEffectRow>,
}

impl Record {
    fn load(conn: &mut DbConnection, patient_id: PatientId) -> Result<Self, StoreError> {
        Ok(Self {
            assessments: assessments::live_of_patient(conn, patient_id)?,
            side_effects: side_effects::live_of_patient(conn, patient_id)?,
            ..Self::treatment(conn, patient_id)?
        })
    }

    /// The patient's treatment alone — risk factors, courses and sessions, no scores or side
    /// effects: what a session's write reads whole.
    fn treatment(conn: &mut DbConnection, patient_id: PatientId) -> Result<Self, StoreError> {
        let patient = patients::find(conn, &Scope::Patient(patient_id), patient_id)?;
        let has_contraindication = patient
            .risk_factors
            .iter()
            .any(|r| r.factor.class() == RiskClass::Contraindication);
        Ok(Self {
            patient_id,
            has_contraindication,
            courses: courses::of_patient(conn, patient_id)?,
            sessions: sessions::live_of_patient(conn, patient_id)?,
            assessments: Vec::new(),
            side_effects: Vec::new(),
        })
    }

    fn completed(&self) -> Vec<&SessionRow> {
        self.sessions
            .iter()
            .filter(|s| s.status == SessionStatus::Completed)
            .collect()
    }

    /// The course's schedule as of `today`, from its completed sessions.
    fn slots(&self, course: &CourseRow, today: NaiveDate) -> Vec<schedule::Slot> {
        course_slots(course, self.completed(), today)
    }

    fn course(&self, id: CourseId) -> Option<&CourseRow> {
        self.courses.iter().find(|c| c.id == id)
    }

    /// The scores of one instrument, as severities, oldest first.
    fn scores(&self, instrument: Instrument) -> Vec<Score> {
        let definition = instrument.definition();
        self.assessments
            .iter()
            .filter(|a| a.instrument == instrument)
            .map(|a| score(definition, a.id, a.taken_at, a.total))
            .collect()
    }
}

fn score(definition: &Definition, id: AssessmentId, taken_at: NaiveDateTime, total: i32) -> Score {
    Score {
        id,
        taken_at: clock::from_db(taken_at),
        severity: definition.severity(total),
        total,
    }
}

/// The live scores of `instrument` taken from `from` to `to` (both included; no end when
/// `to` is `None`).
fn scores_between(
    conn: &mut DbConnection,
    patient_id: PatientId,
    instrument: Instrument,
    from: DateTime<Utc>,
    to: Option<DateTime<Utc>>,
) -> Result<Vec<Score>, StoreError> {
    let definition = instrument.definition();
    let rows = assessments::scores_between(
        conn,
        patient_id,
        instrument,
        clock::to_db(from),
        to.map(clock::to_db),
    )?;
    Ok(rows
        .into_iter()
        .map(|(id, taken_at, total)| score(definition, id, taken_at, total))
        .collect())
}

/// What a write changed, so that evaluation recomputes only what the change can move.
#[derive(Clone, Copy)]
pub enum Change<'a> {
    /// An assessment recorded, or entered in error: its own flags, and the outcomes whose
    /// windows hold its time.
    Assessment(&'a AssessmentRow),
    /// A session recorded, changed or entered in error: `session` as written, `before` as it
    /// was stored before a change (`None` when created or entered in error, which leave it in
    /// its place): the treatment's flags, the outcomes of the sessions around where it is and
    /// was, and the outcome of each course it joins or leaves whose first session it moves.
    Session {
        session: &'a SessionRow,
        before: Option<&'a SessionRow>,
    },
    /// A side effect recorded, changed or entered in error: its own flags.
    SideEffect(&'a SideEffectRow),
    /// A course created or changed, as written: the treatment's flags (a contraindication on
    /// an open course; which of its sessions are maintenance, for the dependence rule), its
    /// own outcome, and the outcomes of its completed sessions, which read its instrument and
    /// keep its indication, protocol and start as research facts.
    Course(&'a CourseRow),
    /// The patient's own fields changed: the treatment's flags (their risk factors make the
    /// contraindication); no outcome reads those fields.
    Patient,
    /// The whole record, evaluated again: the sweep, and the reference the incremental
    /// changes are held to (`evaluation::each_write_stores_what_evaluating_the_whole_record_would`).
    Whole,
}

/// Brings the patient's stored outcomes and flags to what the whole record warrants after
/// `change`, recomputing only what `change` can move; gives the flags it raised.
pub fn refresh(
    conn: &mut DbConnection,
    settings: &ClinicalSettings,
    patient_id: PatientId,
    change: Change<'_>,
) -> Result<Vec<FlagRow>, StoreError> {
    let now = clock::now();
    // A new score can only follow a session up, never leave one owing: the sweep's next
    // instant for the patient stands (at worst it wakes for nothing). Any other change may
    // bring a flag that time raises closer.
    let new_score =
        matches!(change, Change::Assessment(a) if a.version == 1 && a.deleted_at.is_none());
    if !new_score {
        time_flag_checks::forget_patient(conn, patient_id)?;
    }
    let wanted = match change {
        Change::Whole => whole(conn, settings, patient_id)?,
        Change::Assessment(a) => after_assessment(conn, settings, a)?,
        Change::Session { session, before } => after_session(conn, settings, session, before)?,
        Change::SideEffect(e) => side_effect_flags_of(e),
        Change::Course(course) => after_course(conn, settings, course)?,
        Change::Patient => treatment_flags(settings, &Record::treatment(conn, patient_id)?),
    };
    raise_missing(conn, patient_id, wanted, now)
}

/// Every outcome of the record computed and stored where it changed; every flag the record
/// warrants.
fn whole(
    conn: &mut DbConnection,
    settings: &ClinicalSettings,
    patient_id: PatientId,
) -> Result<Vec<Wanted>, StoreError> {
    let record = Record::load(conn, patient_id)?;
    let session_outcomes = store_outcomes(conn, settings, &record)?;
    let mut wanted = record_flags(settings, &record);
    wanted.extend(session_outcomes.iter().filter_map(wear_off_flag));
    Ok(wanted)
}

/// What a session moves: the flags of the treatment — its own vital signs, the dependence rule
/// over all completed sessions — and the outcomes that read where it is and where it was: its
/// own, and those of the completed sessions just before either place, whose follow-up window
/// ends at their next session (§6); and the outcome of each course it belongs or belonged to,
/// when the course's first completed session moved. Scores are read for those windows only.
fn after_session(
    conn: &mut DbConnection,
    settings: &ClinicalSettings,
    session: &SessionRow,
    before: Option<&SessionRow>,
) -> Result<Vec<Wanted>, StoreError> {
    let record = Record::treatment(conn, session.patient_id)?;
    let mut wanted = treatment_flags(settings, &record);
    let completed = record.completed();
    let computed_at = clock::to_db(clock::now());

    // The completed session (not this one) just before a place in the patient's order — the
    // order `sessions::live_of_patient` reads them in, which gives each its next.
    let order = |s: &SessionRow| (s.started_at, s.id);
    let preceding = |place: (NaiveDateTime, SessionId)| {
        completed
            .iter()
            .rev()
            .find(|s| s.id != session.id && order(s) < place)
            .map(|s| s.id)
    };
    let mut moved = vec![session.id];
    moved.extend(preceding(order(session)));
    moved.extend(before.and_then(|b| preceding(order(b))));
    moved.sort_unstable();
    moved.dedup();
    let raised = refresh_sessions(conn, settings, &record, &completed, &moved, computed_at)?;
    wanted.extend(raised);

    let stored = stored_course_outcomes(conn, record.patient_id)?;
    let mut touched = vec![session.course_id];
    touched.extend(before.map(|b| b.course_id));
    touched.dedup();
    for course in touched.iter().filter_map(|id| record.course(*id)) {
        let first = first_session(&completed, course.id);
        let old = stored.get(&course.id);
        if old.is_some_and(|o| o.first_session_at == first) {
            continue;
        }
        let row = course_from_first(conn, settings, course, first, computed_at)?;
        put_course_if_changed(conn, old, &row)?;
    }
    Ok(wanted)
}

/// What a course moves (`Change::Course`): the treatment's flags, the outcomes of its
/// completed sessions, and its own outcome.
fn after_course(
    conn: &mut DbConnection,
    settings: &ClinicalSettings,
    course: &CourseRow,
) -> Result<Vec<Wanted>, StoreError> {
    let record = Record::treatment(conn, course.patient_id)?;
    let mut wanted = treatment_flags(settings, &record);
    let completed = record.completed();
    let computed_at = clock::to_db(clock::now());
    let its: Vec<SessionId> = completed
        .iter()
        .filter(|s| s.course_id == course.id)
        .map(|s| s.id)
        .collect();
    wanted.extend(refresh_sessions(
        conn,
        settings,
        &record,
        &completed,
        &its,
        computed_at,
    )?);
    let stored = stored_course_outcomes(conn, course.patient_id)?;
    let first = first_session(&completed, course.id);
    let row = course_from_first(conn, settings, course, first, computed_at)?;
    put_course_if_changed(conn, stored.get(&course.id), &row)?;
    Ok(wanted)
}

/// Computes the outcomes of the sessions `ids` (those of `completed`, in its order) again,
/// stores the ones that changed and removes the ones no longer due; gives the flags the
/// computed outcomes raise (benefit that wears off).
fn refresh_sessions(
    conn: &mut DbConnection,
    settings: &ClinicalSettings,
    record: &Record,
    completed: &[&SessionRow],
    ids: &[SessionId],
    computed_at: NaiveDateTime,
) -> Result<Vec<Wanted>, StoreError> {
    let stored = stored_session_outcomes(conn, record.patient_id)?;
    let (mut wanted, mut gone) = (Vec::new(), Vec::new());
    for id in ids {
        let row = match completed.iter().position(|s| s.id == *id) {
            Some(i) => outcome_around(conn, settings, record, completed, i, computed_at)?,
            None => None,
        };
        match row {
            Some(row) => {
                put_session_if_changed(conn, stored.get(id), &row)?;
                wanted.extend(wear_off_flag(&row));
            }
            None if stored.contains_key(id) => gone.push(*id),
            None => {}
        }
    }
    outcome_store::remove_sessions(conn, &gone)?;
    Ok(wanted)
}

/// When the first of `completed` (in the order they were read) given in `course` began.
fn first_session(completed: &[&SessionRow], course: CourseId) -> Option<NaiveDateTime> {
    completed
        .iter()
        .find(|s| s.course_id == course)
        .map(|s| s.started_at)
}

/// `course`'s outcome from its `first` completed session, reading every score it may: from the
/// course's baseline window on, for its first response may come at any time after.
fn course_from_first(
    conn: &mut DbConnection,
    settings: &ClinicalSettings,
    course: &CourseRow,
    first: Option<NaiveDateTime>,
    computed_at: NaiveDateTime,
) -> Result<CourseOutcomeRow, StoreError> {
    let scores = match first {
        Some(first) => {
            let (from, _) = outcomes::course_induction_reads(clock::from_db(first));
            scores_between(
                conn,
                course.patient_id,
                course.primary_instrument,
                from,
                None,
            )?
        }
        None => Vec::new(),
    };
    Ok(course_row(settings, course, first, &scores, computed_at))
}

/// The outcome of `completed[i]`, from the scores of its windows alone.
fn outcome_around(
    conn: &mut DbConnection,
    settings: &ClinicalSettings,
    record: &Record,
    completed: &[&SessionRow],
    i: usize,
    computed_at: NaiveDateTime,
) -> Result<Option<SessionOutcomeRow>, StoreError> {
    let session = completed[i];
    let Some(course) = record.course(session.course_id) else {
        return Ok(None);
    };
    let next = completed.get(i + 1).map(|n| clock::from_db(n.started_at));
    let (from, to) = outcomes::session_reads(clock::from_db(session.started_at), next);
    let instrument = course.primary_instrument;
    let scores = scores_between(conn, record.patient_id, instrument, from, Some(to))?;
    Ok(session_row(
        settings,
        session,
        course,
        next,
        &scores,
        computed_at,
    ))
}

/// What an assessment moves: its own flags; the outcome of each completed session whose
/// windows hold its time; and the outcome of each course it could change — its baseline, its
/// end of induction, or its first response — all computed from the scores of the windows they
/// read. Only a course's baseline, or a first response entered in error, makes the course read
/// every later score of its instrument.
fn after_assessment(
    conn: &mut DbConnection,
    settings: &ClinicalSettings,
    assessment: &AssessmentRow,
) -> Result<Vec<Wanted>, StoreError> {
    let mut wanted = assessment_flags_of(assessment);
    let (patient_id, instrument) = (assessment.patient_id, assessment.instrument);
    let (courses, stored): (Vec<CourseRow>, Vec<Option<CourseOutcomeRow>>) =
        outcome_store::courses_reading(conn, patient_id, instrument)?
            .into_iter()
            .unzip();
    if courses.is_empty() {
        // No course reads this instrument: no outcome can move.
        return Ok(wanted);
    }
    let stored_courses: HashMap<CourseId, CourseOutcomeRow> = stored
        .into_iter()
        .flatten()
        .map(|r| (r.course_id, r))
        .collect();
    let sessions = sessions::live_of_patient(conn, patient_id)?;
    let completed: Vec<&SessionRow> = sessions
        .iter()
        .filter(|s| s.status == SessionStatus::Completed)
        .collect();
    let computed_at = clock::to_db(clock::now());
    let taken_at = clock::from_db(assessment.taken_at);

    let affected: Vec<(&SessionRow, &CourseRow, Option<DateTime<Utc>>)> = completed
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            let course = courses.iter().find(|c| c.id == s.course_id)?;
            let next = completed.get(i + 1).map(|n| clock::from_db(n.started_at));
            let reads =
                outcomes::session_reads_score_at(clock::from_db(s.started_at), next, taken_at);
            reads.then_some((*s, course, next))
        })
        .collect();
    let spans = affected
        .iter()
        .map(|(s, _, next)| outcomes::session_reads(clock::from_db(s.started_at), *next));
    if let Some((from, to)) = spans.reduce(|(f1, t1), (f2, t2)| (f1.min(f2), t1.max(t2))) {
        let scores = scores_between(conn, patient_id, instrument, from, Some(to))?;
        let stored = stored_session_outcomes(conn, patient_id)?;
        for (session, course, next) in affected {
            let Some(row) = session_row(settings, session, course, next, &scores, computed_at)
            else {
                continue;
            };
            put_session_if_changed(conn, stored.get(&session.id), &row)?;
            wanted.extend(wear_off_flag(&row));
        }
    }

    for course in &courses {
        // A course with no completed session has an empty outcome that no score moves.
        let Some(first) = first_session(&completed, course.id) else {
            continue;
        };
        let old = stored_courses.get(&course.id);
        let row = match old {
            Some(old) if old.first_session_at == Some(first) && old.instrument == instrument => {
                course_after_score(conn, settings, course, old, assessment, computed_at)?
            }
            _ => Some(course_from_first(
                conn,
                settings,
                course,
                Some(first),
                computed_at,
            )?),
        };
        if let Some(row) = row {
            put_course_if_changed(conn, old, &row)?;
        }
    }
    Ok(wanted)
}

/// A course's outcome after one score of its primary instrument was recorded or entered in
/// error, from its stored outcome `old`; `None` when the score cannot move it.
fn course_after_score(
    conn: &mut DbConnection,
    settings: &ClinicalSettings,
    course: &CourseRow,
    old: &CourseOutcomeRow,
    assessment: &AssessmentRow,
    computed_at: NaiveDateTime,
) -> Result<Option<CourseOutcomeRow>, StoreError> {
    let Some(first_at) = old.first_session_at else {
        return Ok(None);
    };
    let (patient_id, instrument) = (assessment.patient_id, assessment.instrument);
    let first = clock::from_db(first_at);
    let taken_at = clock::from_db(assessment.taken_at);
    let (induction_from, induction_to) = outcomes::course_induction_reads(first);
    if taken_at < induction_from {
        return Ok(None);
    }
    let days = outcomes::days_between(first, taken_at);
    let withdrawn = assessment.deleted_at.is_some();
    // The response that came first may be the one withdrawn: the next is wherever it is.
    let was_first_response =
        withdrawn && taken_at > first && old.time_to_response_days.is_some_and(|d| days <= d);
    if outcomes::in_course_baseline_window(first, taken_at) || was_first_response {
        let scores = scores_between(conn, patient_id, instrument, induction_from, None)?;
        return Ok(Some(course_row(
            settings,
            course,
            Some(first_at),
            &scores,
            computed_at,
        )));
    }
    if taken_at <= induction_to {
        // The baseline stands; end of induction and any response in the first 42 days are
        // read here, and a first response found here comes before any later one.
        let scores = scores_between(
            conn,
            patient_id,
            instrument,
            induction_from,
            Some(induction_to),
        )?;
        let mut row = course_row(settings, course, Some(first_at), &scores, computed_at);
        row.time_to_response_days = row.time_to_response_days.or(old.time_to_response_days);
        return Ok(Some(row));
    }
    // Later than the induction: only the first response can move, and only to this score.
    let definition = instrument.definition();
    let responds = match (definition.response, old.baseline) {
        (Some(rule), Some(baseline)) => {
            outcomes::is_response(rule, baseline, definition.severity(assessment.total))
        }
        _ => false,
    };
    if withdrawn || !responds {
        return Ok(None);
    }
    let earliest = old.time_to_response_days.map_or(days, |d| d.min(days));
    Ok(Some(CourseOutcomeRow {
        time_to_response_days: Some(earliest),
        computed_at,
        ..old.clone()
    }))
}

/// The settings a stored evaluation depends on, as text: W, the remission cut-offs and the
/// vital-sign thresholds. (Persistence is the sweep's: each instant it stores says which
/// persistence times it was found with.)
pub fn settings_text(settings: &ClinicalSettings) -> String {
    format!(
        "wear_off_days={:?} remission={:?} thresholds={:?}",
        settings.wear_off_days, settings.remission, settings.thresholds
    )
}

/// Raises the flags that time has made due on the patient's record as it stands at `now`,
/// and finds the first instant after `now` at which another will fall due (`None`: none will,
/// as the record stands). The sweep calls it holding the patient, so no write can change the
/// record between the reading and the instant stored.
pub fn raise_time_flags(
    conn: &mut DbConnection,
    settings: &ClinicalSettings,
    patient_id: PatientId,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    let record = Record::load(conn, patient_id)?;
    let (due, later): (Vec<_>, Vec<_>) = time_flags(&record, now, settings.persistence)
        .into_iter()
        .partition(|(from, _)| *from <= now);
    let outcomes = stored_session_outcomes(conn, patient_id)?;
    let (gaps, gaps_change_at) = benefit_gaps(&record, &outcomes, settings, now);
    let standing: Vec<String> = gaps.iter().map(|w| w.record_id.clone()).collect();
    flag_store::clear_open_except(conn, patient_id, FlagKind::BenefitGapExpected, &standing)?;
    let mut wanted: Vec<Wanted> = due.into_iter().map(|(_, w)| w).collect();
    wanted.extend(gaps);
    raise_missing(conn, patient_id, wanted, now)?;
    Ok(later
        .into_iter()
        .map(|(from, _)| from)
        .chain(gaps_change_at)
        .min())
}

/// A course's schedule as of `today`, filled by those of `completed` that belong to it
/// (sessions already loaded: the evaluation's record, the durability read).
pub fn course_slots<'a>(
    course: &CourseRow,
    completed: impl IntoIterator<Item = &'a SessionRow>,
    today: NaiveDate,
) -> Vec<schedule::Slot> {
    let filled: Vec<(SessionId, NaiveDate)> = completed
        .into_iter()
        .filter(|s| s.course_id == course.id)
        .map(|s| (s.id, s.started_at.date()))
        .collect();
    schedule::slots(
        course.protocol,
        course.start_date,
        course.custom_dates(),
        &filled,
        today,
    )
}

/// A completed session as §6a reads it: infusion `number` of its course, with its stored
/// outcome (none yet: no follow-up).
pub fn infusion(
    session: &SessionRow,
    outcome: Option<&SessionOutcomeRow>,
    number: u32,
) -> durability::Infusion {
    durability::Infusion {
        number,
        started_at: clock::from_db(session.started_at),
        status: outcome.map_or(BenefitStatus::NoFollowUp, |o| o.status),
        durability_days: outcome.and_then(|o| o.durability_days),
        dose_mg: session.total_dose_mg,
        charge_cents: session.charge_cents,
    }
}

/// domain.md §6a: a `benefit_gap_expected` flag on the latest infusion of each open course
/// whose benefit is expected to fade more than the margin before the next planned infusion;
/// and the instant the next planned infusion comes due (then the gap is read again). A write
/// to the record has the sweep read it again too, so the flag follows every change.
fn benefit_gaps(
    record: &Record,
    outcomes: &HashMap<SessionId, SessionOutcomeRow>,
    settings: &ClinicalSettings,
    now: DateTime<Utc>,
) -> (Vec<Wanted>, Option<DateTime<Utc>>) {
    let mut wanted = Vec::new();
    let mut change_at = None;
    for course in record.courses.iter().filter(|c| !c.closed) {
        let completed: Vec<&SessionRow> = record
            .completed()
            .into_iter()
            .filter(|s| s.course_id == course.id)
            .collect();
        let infusions: Vec<durability::Infusion> = completed
            .iter()
            .zip(1..)
            .map(|(s, number)| infusion(s, outcomes.get(&s.id), number))
            .collect();
        let Some(latest) = completed.last() else {
            continue;
        };
        let slots = record.slots(course, now.date_naive());
        let Some(next) = durability::next_planned(&slots, now.date_naive()) else {
            continue;
        };
        change_at = change_at.min(Some(next)).or(Some(next));
        let figures = durability::course_figures(&infusions, Some(next), &settings.durability);
        if figures.gap_expected {
            let raised = Raised {
                kind: FlagKind::BenefitGapExpected,
                detail: durability::gap_detail(&figures, next),
            };
            wanted.push(on(FlaggedRecord::Session, latest.id)(raised));
        }
    }
    (wanted, change_at)
}

/// Computes every session's and course's outcome; writes the rows that changed and removes
/// those of sessions no longer completed. Returns the session outcomes.
fn store_outcomes(
    conn: &mut DbConnection,
    settings: &ClinicalSettings,
    record: &Record,
) -> Result<Vec<SessionOutcomeRow>, StoreError> {
    let now = clock::to_db(clock::now());
    let completed = record.completed();
    let mut scores: HashMap<Instrument, Vec<Score>> = HashMap::new();
    let mut wanted_sessions = Vec::new();
    for (i, session) in completed.iter().enumerate() {
        let Some(course) = record.course(session.course_id) else {
            continue;
        };
        let scores = scores
            .entry(course.primary_instrument)
            .or_insert_with(|| record.scores(course.primary_instrument));
        let next = completed.get(i + 1).map(|n| clock::from_db(n.started_at));
        wanted_sessions.extend(session_row(settings, session, course, next, scores, now));
    }
    let stored = stored_session_outcomes(conn, record.patient_id)?;
    for row in &wanted_sessions {
        put_session_if_changed(conn, stored.get(&row.session_id), row)?;
    }
    let gone: Vec<SessionId> = stored
        .keys()
        .filter(|id| !wanted_sessions.iter().any(|w| w.session_id == **id))
        .copied()
        .collect();
    outcome_store::remove_sessions(conn, &gone)?;

    let stored_courses = stored_course_outcomes(conn, record.patient_id)?;
    for course in &record.courses {
        let first = first_session(&completed, course.id);
        let scores = scores
            .entry(course.primary_instrument)
            .or_insert_with(|| record.scores(course.primary_instrument));
        let row = course_row(settings, course, first, scores, now);
        put_course_if_changed(conn, stored_courses.get(&course.id), &row)?;
    }
    Ok(wanted_sessions)
}

/// The outcome of a completed session of `course` (§6), from scores of the course's primary
/// instrument that hold its windows; none when the instrument has no minimal important change.
fn session_row(
    settings: &ClinicalSettings,
    session: &SessionRow,
    course: &CourseRow,
    next: Option<DateTime<Utc>>,
    scores: &[Score],
    computed_at: NaiveDateTime,
) -> Option<SessionOutcomeRow> {
    let instrument = course.primary_instrument;
    let mic = instrument.definition().mic?;
    let o = outcomes::session_outcome(
        clock::from_db(session.started_at),
        next,
        scores,
        mic,
        settings.wear_off_days,
    );
    Some(SessionOutcomeRow {
        session_id: session.id,
        patient_id: session.patient_id,
        course_id: course.id,
        instrument,
        status: o.status,
        baseline: o.baseline,
        nadir: o.nadir,
        gain: o.gain,
        durability_days: o.durability_days,
        censored: o.censored,
        wears_off_within_days: o.wears_off_within_days,
        computed_at,
        started_at: session.started_at,
        route: session.route,
        dose_mg_per_kg: session.dose_mg_per_kg,
        charge_cents: session.charge_cents,
        indication: course.indication,
        protocol: course.protocol,
        course_start_date: course.start_date,
    })
}

/// The outcome of `course` (§6 "Course response") from its first completed session and scores
/// of its primary instrument that hold the windows it reads.
fn course_row(
    settings: &ClinicalSettings,
    course: &CourseRow,
    first: Option<NaiveDateTime>,
    scores: &[Score],
    computed_at: NaiveDateTime,
) -> CourseOutcomeRow {
    let instrument = course.primary_instrument;
    let o = outcomes::course_outcome(
        first.map(clock::from_db),
        scores,
        instrument.definition(),
        settings.remission.of(instrument),
    );
    CourseOutcomeRow {
        course_id: course.id,
        patient_id: course.patient_id,
        instrument,
        first_session_at: first,
        baseline: o.baseline,
        end_of_induction_assessment_id: o.end_of_induction_score,
        end_of_induction_response: o.end_of_induction_response,
        end_of_induction_remission: o.end_of_induction_remission,
        time_to_response_days: o.time_to_response_days,
        computed_at,
    }
}

fn stored_session_outcomes(
    conn: &mut DbConnection,
    patient_id: PatientId,
) -> Result<HashMap<SessionId, SessionOutcomeRow>, StoreError> {
    Ok(outcome_store::sessions_of(conn, patient_id)?
        .into_iter()
        .map(|r| (r.session_id, r))
        .collect())
}

fn stored_course_outcomes(
    conn: &mut DbConnection,
    patient_id: PatientId,
) -> Result<HashMap<CourseId, CourseOutcomeRow>, StoreError> {
    Ok(outcome_store::courses_of(conn, patient_id)?
        .into_iter()
        .map(|r| (r.course_id, r))
        .collect())
}

/// A stored outcome, which says the same as another when all but the instant each was
/// computed at agree.
trait Computed: Clone + PartialEq {
    fn computed_at(&mut self) -> &mut NaiveDateTime;
}

impl Computed for SessionOutcomeRow {
    fn computed_at(&mut self) -> &mut NaiveDateTime {
        &mut self.computed_at
    }
}

impl Computed for CourseOutcomeRow {
    fn computed_at(&mut self) -> &mut NaiveDateTime {
        &mut self.computed_at
    }
}

/// Whether `row` says anything the stored one does not: only then is it written.
fn changed<T: Computed>(stored: Option<&T>, row: &T) -> bool {
    stored.is_none_or(|old| {
        let (mut old, mut new) = (old.clone(), row.clone());
        *old.computed_at() = *new.computed_at();
        old != new
    })
}

fn put_session_if_changed(
    conn: &mut DbConnection,
    stored: Option<&SessionOutcomeRow>,
    row: &SessionOutcomeRow,
) -> Result<(), StoreError> {
    if changed(stored, row) {
        outcome_store::put_session(conn, row)?;
    }
    Ok(())
}

fn put_course_if_changed(
    conn: &mut DbConnection,
    stored: Option<&CourseOutcomeRow>,
    row: &CourseOutcomeRow,
) -> Result<(), StoreError> {
    if changed(stored, row) {
        outcome_store::put_course(conn, row)?;
    }
    Ok(())
}

/// The flag of a session whose benefit wore off within days.
fn wear_off_flag(outcome: &SessionOutcomeRow) -> Option<Wanted> {
    outcome.wears_off_within_days.then(|| Wanted {
        record_type: FlaggedRecord::Session,
        record_id: outcome.session_id.to_string(),
        raised: Raised {
            kind: FlagKind::WearsOffWithinDays,
            detail: format!(
                "benefit wore off after {} days",
                outcome.durability_days.unwrap_or_default()
            ),
        },
    })
}

/// A flag the record warrants, on the record that raises it.
pub struct Wanted {
    record_type: FlaggedRecord,
    record_id: String,
    raised: Raised,
}

fn on(record_type: FlaggedRecord, record_id: impl std::fmt::Display) -> impl Fn(Raised) -> Wanted {
    let record_id = record_id.to_string();
    move |raised| Wanted {
        record_type,
        record_id: record_id.clone(),
        raised,
    }
}

/// The flags raised by the records themselves (§7), whatever the time.
fn record_flags(settings: &ClinicalSettings, record: &Record) -> Vec<Wanted> {
    let mut wanted: Vec<Wanted> = record
        .assessments
        .iter()
        .flat_map(assessment_flags_of)
        .collect();
    wanted.extend(treatment_flags(settings, record));
    wanted.extend(record.side_effects.iter().flat_map(side_effect_flags_of));
    wanted
}

/// The flags the treatment raises (§7): each session's vital signs and contraindication, the
/// dependence rule over the completed sessions, a contraindication on each open course.
fn treatment_flags(settings: &ClinicalSettings, record: &Record) -> Vec<Wanted> {
    let mut wanted = Vec::new();
    for s in record
        .sessions
        .iter()
        .filter(|s| s.status != SessionStatus::Cancelled)
    {
        let given = s.administration();
        let during = given.readings.iter().map(|r| r.vitals);
        let post_dose: Vec<VitalSigns> = during.chain(std::iter::once(given.post)).collect();
        let raised = flags::session_flags(
            &given.pre,
            &post_dose,
            settings.thresholds,
            record.has_contraindication,
        );
        wanted.extend(raised.into_iter().map(on(FlaggedRecord::Session, s.id)));
    }
    let completed: Vec<CompletedSession> = record
        .completed()
        .iter()
        .map(|s| CompletedSession {
            id: s.id,
            started_at: clock::from_db(s.started_at),
            maintenance: record
                .course(s.course_id)
                .is_some_and(|c| after_induction(c, s.started_at.date())),
        })
        .collect();
    wanted.extend(
        flags::dependence_by_frequency(&completed)
            .into_iter()
            .map(|(id, raised)| Wanted {
                record_type: FlaggedRecord::Session,
                record_id: id.to_string(),
                raised,
            }),
    );
    if record.has_contraindication {
        for c in record.courses.iter().filter(|c| !c.closed) {
            let raised = Raised {
                kind: FlagKind::Contraindication,
                detail: "course planned for a patient with a contraindication".into(),
            };
            wanted.push(on(FlaggedRecord::Course, c.id)(raised));
        }
    }
    wanted
}

/// The flags an assessment raises by its answers (none once entered in error).
fn assessment_flags_of(a: &AssessmentRow) -> Vec<Wanted> {
    if a.deleted_at.is_some() {
        return Vec::new();
    }
    // Stored items were scored when they were stored: scoring them again cannot fail unless
    // the instrument table changed, and then the record raises nothing new.
    Scored::score(a.instrument, &a.items.0).map_or_else(
        |_| Vec::new(),
        |scored| {
            flags::assessment_flags(&scored)
                .into_iter()
                .map(on(FlaggedRecord::Assessment, a.id))
                .collect()
        },
    )
}

/// The flags a side effect raises by what it is (none once entered in error).
fn side_effect_flags_of(e: &SideEffectRow) -> Vec<Wanted> {
    if e.deleted_at.is_some() {
        return Vec::new();
    }
    flags::side_effect_flags(e.effect, e.severity)
        .into_iter()
        .map(on(FlaggedRecord::SideEffect, e.id))
        .collect()
}

fn after_induction(course: &CourseRow, day: NaiveDate) -> bool {
    schedule::phase_of(course.protocol, course.start_date, day) == Phase::Maintenance
}

/// The flags that time raises on the record as it stands — persistent side effects, missed
/// follow-ups and missed induction slots — each with the first instant it is due. Time only
/// adds to them: once due, a flag stays due until a write changes the record.
fn time_flags(
    record: &Record,
    now: DateTime<Utc>,
    persistence: Persistence,
) -> Vec<(DateTime<Utc>, Wanted)> {
    let mut wanted = Vec::new();
    for e in &record.side_effects {
        let report = e.report();
        if let Some(from) = report.persistent_from(persistence) {
            let detail = format!(
                "{} unresolved since {}",
                report.effect,
                report.onset_at.format("%Y-%m-%d %H:%M UTC")
            );
            let raised = Raised {
                kind: FlagKind::PersistentSideEffect,
                detail,
            };
            wanted.push((from, on(FlaggedRecord::SideEffect, e.id)(raised)));
        }
    }
    for s in record.completed() {
        let Some(primary) = record.course(s.course_id).map(|c| c.primary_instrument) else {
            continue;
        };
        let scores: Vec<DateTime<Utc>> = record
            .scores(primary)
            .iter()
            .map(|sc| sc.taken_at)
            .collect();
        if let Some((from, raised)) = flags::missed_follow_up(clock::from_db(s.started_at), &scores)
        {
            wanted.push((from, on(FlaggedRecord::Session, s.id)(raised)));
        }
    }
    for course in record.courses.iter().filter(|c| !c.closed) {
        for slot in record.slots(course, now.date_naive()) {
            if slot.phase != Phase::Induction || slot.session_id.is_some() {
                continue;
            }
            let Some(from) = schedule::missed_from(slot.planned_date)
                .and_then(|day| day.and_hms_opt(0, 0, 0))
                .map(|midnight| midnight.and_utc())
            else {
                continue;
            };
            let id = format!("{}:{}", course.id, slot.planned_date);
            let detail = format!("infusion planned for {} not given", slot.planned_date);
            let raised = Raised {
                kind: FlagKind::MissedSession,
                detail,
            };
            wanted.push((
                from,
                Wanted {
                    record_type: FlaggedRecord::PlannedSlot,
                    record_id: id,
                    raised,
                },
            ));
        }
    }
    wanted
}

/// The flags the patient has, of those on the records `wanted` names; no query when it names
/// none.
fn existing_flags(
    conn: &mut DbConnection,
    patient_id: PatientId,
    wanted: &[Wanted],
) -> Result<HashSet<(FlagKind, String)>, StoreError> {
    let mut records: Vec<String> = wanted.iter().map(|w| w.record_id.clone()).collect();
    records.sort_unstable();
    records.dedup();
    if records.is_empty() {
        return Ok(HashSet::new());
    }
    Ok(flag_store::existing_on(conn, patient_id, &records)?
        .into_iter()
        .collect())
}

/// Inserts each wanted flag that the patient does not have yet; gives those it inserted.
pub fn raise_missing(
    conn: &mut DbConnection,
    patient_id: PatientId,
    wanted: Vec<Wanted>,
    now: DateTime<Utc>,
) -> Result<Vec<FlagRow>, StoreError> {
    let existing = existing_flags(conn, patient_id, &wanted)?;
    let mut seen = HashSet::new();
    let mut raised = Vec::new();
    for w in wanted {
        let key = (w.raised.kind, w.record_id.clone());
        if existing.contains(&key) || !seen.insert(key) {
            continue;
        }
        let flag = FlagRow::open(
            patient_id,
            w.raised.kind,
            w.record_type,
            w.record_id,
            w.raised.detail,
            clock::to_db(now),
        );
        if flag_store::raise(conn, &flag)? {
            raised.push(flag);
        }
    }
    Ok(raised)
}
