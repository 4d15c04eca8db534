//! What every write to a patient's record sets in motion, inside the writer's transaction:
//! the patient's outcomes are recomputed (and stored where they changed) and every flag the
//! record now warrants is raised. Rules come from `domain`; rows from and to `store`.
//!
//! The flags that time alone raises (a side effect that outlasts its expected time, an
//! induction slot more than 3 days overdue) are raised when the flag list is read, from the
//! record as it stands then.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};

use crate::clock;
use crate::config::ClinicalSettings;
use crate::domain::flags::{self, CompletedSession, FlagKind, Raised};
use crate::domain::instrument::{Instrument, Scored};
use crate::domain::outcomes::{self, Score};
use crate::domain::patient::{RiskClass, RiskFactor};
use crate::domain::schedule::{self, Phase, Protocol, SlotStatus};
use crate::domain::side_effect::{Effect, Persistence, Severity, SideEffectReport};
use crate::domain::treatment::VitalSigns;
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
    patient_id: String,
    has_contraindication: bool,
    courses: Vec<CourseRow>,
    /// Live sessions, oldest first.
    sessions: Vec<SessionRow>,
    assessments: Vec<AssessmentRow>,
    side_effects: Vec<SideEffectRow>,
}

impl Record {
    fn load(conn: &mut DbConnection, patient_id: &str) -> Result<Self, StoreError> {
        let patient = patients::find(conn, &Scope::Patient(patient_id.to_owned()), patient_id)?;
        let has_contraindication = patient
            .risk_factors
            .iter()
            .filter_map(|r| r.factor.parse::<RiskFactor>().ok())
            .any(|f| f.class() == RiskClass::Contraindication);
        Ok(Self {
            patient_id: patient_id.to_owned(),
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
            .filter(|s| s.status == "completed")
            .collect()
    }

    fn course(&self, id: &str) -> Option<&CourseRow> {
        self.courses.iter().find(|c| c.id == id)
    }

    /// The scores of one instrument, as severities, oldest first.
    fn scores(&self, instrument: Instrument) -> Vec<Score> {
        let definition = instrument.definition();
        self.assessments
            .iter()
            .filter(|a| a.instrument == instrument.as_str())
            .map(|a| Score {
                id: a.id.clone(),
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
    patient_id: &str,
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
                record_type: "session",
                record_id: o.session_id.clone(),
                raised: Raised {
                    kind: FlagKind::WearsOffWithinDays,
                    detail: format!(
                        "benefit wore off after {} days",
                        o.durability_days.unwrap_or_default()
                    ),
                },
            }),
    );
    raise_missing(conn, &record.patient_id, wanted, now)
}

/// Raises the flags that time alone raises, for every patient in the scope who could have one.
pub fn refresh_time_based(
    conn: &mut DbConnection,
    settings: &ClinicalSettings,
    scope: &Scope,
) -> Result<(), StoreError> {
    let mut candidates = side_effects::patients_with_unresolved(conn, scope)?;
    candidates.extend(courses::patients_with_open_courses(conn, scope)?);
    candidates.sort();
    candidates.dedup();
    let now = clock::now();
    for patient_id in candidates {
        let record = Record::load(conn, &patient_id)?;
        raise_missing(
            conn,
            &patient_id,
            time_flags(&record, now, settings.persistence),
            now,
        )?;
    }
    Ok(())
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
    let mut scores: HashMap<String, Vec<Score>> = HashMap::new();
    let mut wanted_sessions = Vec::new();
    for (i, session) in completed.iter().enumerate() {
        let Some(course) = record.course(&session.course_id) else {
            continue;
        };
        let Ok(instrument) = course.primary_instrument.parse::<Instrument>() else {
            continue;
        };
        let Some(mic) = instrument.definition().mic else {
            continue;
        };
        let scores = scores
            .entry(course.primary_instrument.clone())
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
            session_id: session.id.clone(),
            patient_id: record.patient_id.clone(),
            course_id: course.id.clone(),
            instrument: course.primary_instrument.clone(),
            status: o.status.as_str().to_owned(),
            baseline: o.baseline,
            nadir: o.nadir,
            gain: o.gain,
            durability_days: o.durability_days,
            censored: o.censored,
            wears_off_within_days: o.wears_off_within_days,
            computed_at: now,
        });
    }
    let stored: HashMap<String, SessionOutcomeRow> =
        outcome_store::sessions_of(conn, &record.patient_id)?
            .into_iter()
            .map(|r| (r.session_id.clone(), r))
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
    let gone: Vec<String> = stored
        .keys()
        .filter(|id| !wanted_sessions.iter().any(|w| &&w.session_id == id))
        .cloned()
        .collect();
    outcome_store::remove_sessions(conn, &gone)?;

    let stored_courses: HashMap<String, CourseOutcomeRow> =
        outcome_store::courses_of(conn, &record.patient_id)?
            .into_iter()
            .map(|r| (r.course_id.clone(), r))
            .collect();
    for course in &record.courses {
        let Ok(instrument) = course.primary_instrument.parse::<Instrument>() else {
            continue;
        };
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
            course_id: course.id.clone(),
            patient_id: record.patient_id.clone(),
            instrument: course.primary_instrument.clone(),
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
struct Wanted {
    record_type: &'static str,
    record_id: String,
    raised: Raised,
}

fn on<'a>(record_type: &'static str, record_id: &'a str) -> impl Fn(Raised) -> Wanted + 'a {
    move |raised| Wanted {
        record_type,
        record_id: record_id.to_owned(),
        raised,
    }
}

/// The flags raised by the records themselves (§7), whatever the time.
fn record_flags(settings: &ClinicalSettings, record: &Record) -> Vec<Wanted> {
    let mut wanted = Vec::new();
    for a in &record.assessments {
        let items: Vec<i32> = serde_json::from_str(&a.items).unwrap_or_default();
        let Ok(instrument) = a.instrument.parse::<Instrument>() else {
            continue;
        };
        if let Ok(scored) = Scored::score(instrument, &items) {
            wanted.extend(
                flags::assessment_flags(&scored)
                    .into_iter()
                    .map(on("assessment", &a.id)),
            );
        }
    }
    for s in record.sessions.iter().filter(|s| s.status != "cancelled") {
        let pre = VitalSigns {
            systolic: s.pre_systolic,
            diastolic: s.pre_diastolic,
            heart_rate: s.pre_heart_rate,
            spo2: s.pre_spo2,
        };
        let post = VitalSigns {
            systolic: s.post_systolic,
            diastolic: s.post_diastolic,
            heart_rate: s.post_heart_rate,
            spo2: s.post_spo2,
        };
        let readings: Vec<serde_json::Value> =
            serde_json::from_str(&s.readings).unwrap_or_default();
        let during = readings.iter().map(|r| {
            let field = |name: &str| {
                r.get(name)
                    .and_then(serde_json::Value::as_i64)
                    .and_then(|v| i32::try_from(v).ok())
            };
            VitalSigns {
                systolic: field("systolic"),
                diastolic: field("diastolic"),
                heart_rate: field("heart_rate"),
                spo2: field("spo2"),
            }
        });
        let post_dose: Vec<VitalSigns> = during.chain(std::iter::once(post)).collect();
        let raised = flags::session_flags(
            &pre,
            &post_dose,
            settings.thresholds,
            record.has_contraindication,
        );
        wanted.extend(raised.into_iter().map(on("session", &s.id)));
    }
    let completed: Vec<CompletedSession> = record
        .completed()
        .iter()
        .map(|s| CompletedSession {
            id: s.id.clone(),
            started_at: clock::from_db(s.started_at),
            maintenance: record
                .course(&s.course_id)
                .is_some_and(|c| after_induction(c, s.started_at.date())),
        })
        .collect();
    wanted.extend(
        flags::dependence_by_frequency(&completed)
            .into_iter()
            .map(|(id, raised)| Wanted {
                record_type: "session",
                record_id: id,
                raised,
            }),
    );
    if record.has_contraindication {
        for c in record.courses.iter().filter(|c| !c.closed) {
            let raised = Raised {
                kind: FlagKind::Contraindication,
                detail: "course planned for a patient with a contraindication".into(),
            };
            wanted.push(on("course", &c.id)(raised));
        }
    }
    for e in &record.side_effects {
        let (Ok(effect), Ok(severity)) =
            (e.effect.parse::<Effect>(), e.severity.parse::<Severity>())
        else {
            continue;
        };
        wanted.extend(
            flags::side_effect_flags(effect, severity)
                .into_iter()
                .map(on("side_effect", &e.id)),
        );
    }
    wanted
}

fn after_induction(course: &CourseRow, day: NaiveDate) -> bool {
    let protocol = course.protocol.parse().unwrap_or(Protocol::Custom);
    schedule::phase_of(protocol, course.start_date, day) == Phase::Maintenance
}

/// The flags that time raises: persistent side effects, missed follow-ups and missed
/// induction slots.
fn time_flags(record: &Record, now: DateTime<Utc>, persistence: Persistence) -> Vec<Wanted> {
    let mut wanted = Vec::new();
    for e in &record.side_effects {
        let (Ok(effect), Ok(severity)) =
            (e.effect.parse::<Effect>(), e.severity.parse::<Severity>())
        else {
            continue;
        };
        let report = SideEffectReport {
            effect,
            severity,
            onset_at: clock::from_db(e.onset_at),
            resolved_at: e.resolved_at.map(clock::from_db),
            reported_by: crate::domain::instrument::Rater::Clinician,
            note: None,
        };
        if report.is_persistent(now, persistence) {
            let detail = format!(
                "{effect} unresolved since {}",
                report.onset_at.format("%Y-%m-%d %H:%M UTC")
            );
            wanted.push(on("side_effect", &e.id)(Raised {
                kind: FlagKind::PersistentSideEffect,
                detail,
            }));
        }
    }
    for s in record.completed() {
        let primary = record
            .course(&s.course_id)
            .and_then(|c| c.primary_instrument.parse::<Instrument>().ok());
        let Some(primary) = primary else { continue };
        let scores: Vec<DateTime<Utc>> = record
            .scores(primary)
            .iter()
            .map(|sc| sc.taken_at)
            .collect();
        if let Some(raised) = flags::missed_follow_up(clock::from_db(s.started_at), &scores, now) {
            wanted.push(on("session", &s.id)(raised));
        }
    }
    for course in record.courses.iter().filter(|c| !c.closed) {
        let Ok(protocol) = course.protocol.parse::<Protocol>() else {
            continue;
        };
        let custom: Vec<NaiveDate> = course
            .planned_dates
            .as_deref()
            .and_then(|d| serde_json::from_str(d).ok())
            .unwrap_or_default();
        let completed: Vec<(String, NaiveDate)> = record
            .completed()
            .iter()
            .filter(|s| s.course_id == course.id)
            .map(|s| (s.id.clone(), s.started_at.date()))
            .collect();
        for slot in schedule::slots(
            protocol,
            course.start_date,
            &custom,
            &completed,
            now.date_naive(),
        ) {
            if slot.phase == Phase::Induction && slot.status == SlotStatus::Missed {
                let id = format!("{}:{}", course.id, slot.planned_date);
                let detail = format!("infusion planned for {} not given", slot.planned_date);
                wanted.push(Wanted {
                    record_type: "planned_slot",
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
fn raise_missing(
    conn: &mut DbConnection,
    patient_id: &str,
    wanted: Vec<Wanted>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let existing: HashSet<(String, String)> = flag_store::existing(conn, patient_id)?
        .into_iter()
        .collect();
    let mut seen = HashSet::new();
    for w in wanted {
        let key = (w.raised.kind.as_str().to_owned(), w.record_id.clone());
        if existing.contains(&key) || !seen.insert(key) {
            continue;
        }
        let level = w.raised.kind.level();
        flag_store::raise(
            conn,
            &FlagRow {
                id: uuid::Uuid::new_v4().to_string(),
                patient_id: patient_id.to_owned(),
                kind: w.raised.kind.as_str().to_owned(),
                level: level.as_str().to_owned(),
                level_rank: level.rank(),
                record_type: w.record_type.to_owned(),
                record_id: w.record_id,
                detail: w.raised.detail,
                raised_at: clock::to_db(now),
                status: "open".to_owned(),
                acknowledged_by: None,
                acknowledged_at: None,
                note: None,
            },
        )?;
    }
    Ok(())
}
