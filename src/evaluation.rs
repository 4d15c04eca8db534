//! What every write to a patient's record sets in motion, inside the writer's transaction:
//! the patient's outcomes are recomputed (and stored where they changed) and every flag the
//! record now warrants is raised. Rules come from `domain`; rows from and to `store`.
//!
//! The flags that time alone raises (a side effect that outlasts its expected time, a
//! follow-up not taken, an induction slot more than 3 days overdue) are raised by the sweep
//! (`sweep`), one patient at a time, from the record as it stands then.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};

use crate::clock;
use crate::config::ClinicalSettings;
use crate::domain::flags::{self, CompletedSession, FlagKind, FlagStatus, FlaggedRecord, Raised};
use crate::domain::ids::{CourseId, FlagId, PatientId, SessionId};
use crate::domain::instrument::{Instrument, Scored};
use crate::domain::outcomes::{self, Score};
use crate::domain::patient::RiskClass;
use crate::domain::schedule::{self, Phase, SlotStatus};
use crate::domain::side_effect::Persistence;
use crate::domain::treatment::{SessionStatus, VitalSigns};
use crate::store::assessments::{self, AssessmentRow};
use crate::store::courses::{self, CourseRow};
use crate::store::flags::{self as flag_store, FlagRow};
use crate::store::outcomes::{self as outcome_store, CourseOutcomeRow, SessionOutcomeRow};
use crate::store::scope::Scope;
use crate::store::sessions::{self, SessionRow};
use crate::store::side_effects::{self, SideEffectRow};
use crate::store::{patients, DbConnection, StoreError};

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
            assessments: assessments::live_of_patient(conn, patient_id)?,
            side_effects: side_effects::live_of_patient(conn, patient_id)?,
        })
    }

    fn completed(&self) -> Vec<&SessionRow> {
        self.sessions
            .iter()
            .filter(|s| s.status == SessionStatus::Completed)
            .collect()
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
            .map(|a| Score {
                id: a.id,
                taken_at: clock::from_db(a.taken_at),
                severity: definition.severity(a.total),
                total: a.total,
            })
            .collect()
    }
}

/// Recomputes the patient's outcomes and raises the flags their records warrant.
pub fn refresh(
    conn: &mut DbConnection,
    settings: &ClinicalSettings,
    patient_id: PatientId,
) -> Result<(), StoreError> {
    let record = Record::load(conn, patient_id)?;
    let session_outcomes = store_outcomes(conn, settings, &record)?;
    let now = clock::now();
    let mut wanted = record_flags(settings, &record);
    wanted.extend(
        session_outcomes
            .iter()
            .filter(|o| o.wears_off_within_days)
            .map(|o| Wanted {
                record_type: FlaggedRecord::Session,
                record_id: o.session_id.to_string(),
                raised: Raised {
                    kind: FlagKind::WearsOffWithinDays,
                    detail: format!(
                        "benefit wore off after {} days",
                        o.durability_days.unwrap_or_default()
                    ),
                },
            }),
    );
    raise_missing(conn, record.patient_id, wanted, now)
}

/// The patients who could have a flag that time alone raises: an unresolved side effect, or
/// an open course.
pub fn time_flag_candidates(conn: &mut DbConnection) -> Result<Vec<PatientId>, StoreError> {
    let mut candidates = side_effects::patients_with_unresolved(conn)?;
    candidates.extend(courses::patients_with_open_courses(conn)?);
    candidates.sort();
    candidates.dedup();
    Ok(candidates)
}

/// The flags that time alone raises for one patient, as their record stands at `now`, that
/// they do not have yet. Reads only: the sweep raises them ([`raise_missing`]) in a write of its
/// own, so most patients — who have nothing new — cost the database no write at all.
pub fn time_flags_due(
    conn: &mut DbConnection,
    settings: &ClinicalSettings,
    patient_id: PatientId,
    now: DateTime<Utc>,
) -> Result<Vec<Wanted>, StoreError> {
    let record = Record::load(conn, patient_id)?;
    let existing: HashSet<(FlagKind, String)> = flag_store::existing(conn, patient_id)?
        .into_iter()
        .collect();
    let wanted = time_flags(&record, now, settings.persistence);
    Ok(wanted
        .into_iter()
        .filter(|w| !existing.contains(&(w.raised.kind, w.record_id.clone())))
        .collect())
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
        let instrument = course.primary_instrument;
        let Some(mic) = instrument.definition().mic else {
            continue;
        };
        let scores = scores
            .entry(instrument)
            .or_insert_with(|| record.scores(instrument));
        let next = completed.get(i + 1).map(|n| clock::from_db(n.started_at));
        let o = outcomes::session_outcome(
            clock::from_db(session.started_at),
            next,
            scores,
            mic,
            settings.wear_off_days,
        );
        wanted_sessions.push(SessionOutcomeRow {
            session_id: session.id,
            patient_id: record.patient_id,
            course_id: course.id,
            instrument,
            status: o.status,
            baseline: o.baseline,
            nadir: o.nadir,
            gain: o.gain,
            durability_days: o.durability_days,
            censored: o.censored,
            wears_off_within_days: o.wears_off_within_days,
            computed_at: now,
        });
    }
    let stored: HashMap<SessionId, SessionOutcomeRow> =
        outcome_store::sessions_of(conn, record.patient_id)?
            .into_iter()
            .map(|r| (r.session_id, r))
            .collect();
    for row in &wanted_sessions {
        let unchanged = stored.get(&row.session_id).is_some_and(|old| {
            SessionOutcomeRow {
                computed_at: now,
                ..old.clone()
            } == *row
        });
        if !unchanged {
            outcome_store::put_session(conn, row)?;
        }
    }
    let gone: Vec<SessionId> = stored
        .keys()
        .filter(|id| !wanted_sessions.iter().any(|w| w.session_id == **id))
        .copied()
        .collect();
    outcome_store::remove_sessions(conn, &gone)?;

    let stored_courses: HashMap<CourseId, CourseOutcomeRow> =
        outcome_store::courses_of(conn, record.patient_id)?
            .into_iter()
            .map(|r| (r.course_id, r))
            .collect();
    for course in &record.courses {
        let instrument = course.primary_instrument;
        let first = completed
            .iter()
            .find(|s| s.course_id == course.id)
            .map(|s| s.started_at);
        let o = outcomes::course_outcome(
            first.map(clock::from_db),
            &record.scores(instrument),
            instrument.definition(),
            settings.remission.of(instrument),
        );
        let row = CourseOutcomeRow {
            course_id: course.id,
            patient_id: record.patient_id,
            instrument,
            first_session_at: first,
            baseline: o.baseline,
            end_of_induction_assessment_id: o.end_of_induction_score,
            end_of_induction_response: o.end_of_induction_response,
            end_of_induction_remission: o.end_of_induction_remission,
            time_to_response_days: o.time_to_response_days,
            computed_at: now,
        };
        let unchanged = stored_courses.get(&course.id).is_some_and(|old| {
            CourseOutcomeRow {
                computed_at: now,
                ..old.clone()
            } == row
        });
        if !unchanged {
            outcome_store::put_course(conn, &row)?;
        }
    }
    Ok(wanted_sessions)
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
    let mut wanted = Vec::new();
    for a in &record.assessments {
        // Stored items were scored when they were stored: scoring them again cannot fail
        // unless the instrument table changed, and then the record raises nothing new.
        if let Ok(scored) = Scored::score(a.instrument, &a.items.0) {
            wanted.extend(
                flags::assessment_flags(&scored)
                    .into_iter()
                    .map(on(FlaggedRecord::Assessment, a.id)),
            );
        }
    }
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
    for e in &record.side_effects {
        wanted.extend(
            flags::side_effect_flags(e.effect, e.severity)
                .into_iter()
                .map(on(FlaggedRecord::SideEffect, e.id)),
        );
    }
    wanted
}

fn after_induction(course: &CourseRow, day: NaiveDate) -> bool {
    schedule::phase_of(course.protocol, course.start_date, day) == Phase::Maintenance
}

/// The flags that time raises: persistent side effects, missed follow-ups and missed
/// induction slots.
fn time_flags(record: &Record, now: DateTime<Utc>, persistence: Persistence) -> Vec<Wanted> {
    let mut wanted = Vec::new();
    for e in &record.side_effects {
        let report = e.report();
        if report.is_persistent(now, persistence) {
            let detail = format!(
                "{} unresolved since {}",
                report.effect,
                report.onset_at.format("%Y-%m-%d %H:%M UTC")
            );
            wanted.push(on(FlaggedRecord::SideEffect, e.id)(Raised {
                kind: FlagKind::PersistentSideEffect,
                detail,
            }));
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
        if let Some(raised) = flags::missed_follow_up(clock::from_db(s.started_at), &scores, now) {
            wanted.push(on(FlaggedRecord::Session, s.id)(raised));
        }
    }
    for course in record.courses.iter().filter(|c| !c.closed) {
        let completed: Vec<(SessionId, NaiveDate)> = record
            .completed()
            .iter()
            .filter(|s| s.course_id == course.id)
            .map(|s| (s.id, s.started_at.date()))
            .collect();
        for slot in schedule::slots(
            course.protocol,
            course.start_date,
            course.custom_dates(),
            &completed,
            now.date_naive(),
        ) {
            if slot.phase == Phase::Induction && slot.status == SlotStatus::Missed {
                let id = format!("{}:{}", course.id, slot.planned_date);
                let detail = format!("infusion planned for {} not given", slot.planned_date);
                wanted.push(Wanted {
                    record_type: FlaggedRecord::PlannedSlot,
                    record_id: id,
                    raised: Raised {
                        kind: FlagKind::MissedSession,
                        detail,
                    },
                });
            }
        }
    }
    wanted
}

/// Inserts each wanted flag that the patient does not have yet.
pub fn raise_missing(
    conn: &mut DbConnection,
    patient_id: PatientId,
    wanted: Vec<Wanted>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let existing: HashSet<(FlagKind, String)> = flag_store::existing(conn, patient_id)?
        .into_iter()
        .collect();
    let mut seen = HashSet::new();
    for w in wanted {
        let key = (w.raised.kind, w.record_id.clone());
        if existing.contains(&key) || !seen.insert(key) {
            continue;
        }
        let level = w.raised.kind.level();
        flag_store::raise(
            conn,
            &FlagRow {
                id: FlagId::random(),
                patient_id,
                kind: w.raised.kind,
                level,
                level_rank: level.rank(),
                record_type: w.record_type,
                record_id: w.record_id,
                detail: w.raised.detail,
                raised_at: clock::to_db(now),
                status: FlagStatus::Open,
                acknowledged_by: None,
                acknowledged_at: None,
                note: None,
            },
        )?;
    }
    Ok(())
}
