//! The rows research results are computed from: completed, live records of patients who
//! consent to research now. Filters that the database can apply portably are applied here;
//! every query reads from the research pool (a read replica when one is configured).

use chrono::{NaiveDate, NaiveDateTime};
use diesel::connection::DefaultLoadingMode;
use diesel::dsl::{case_when, min};
use diesel::pg::PgRowByRowLoadingMode;
use diesel::prelude::*;

use super::schema::{
    assessments, course_outcomes, courses, patients, session_outcomes, sessions, side_effects,
};
use super::{DbConnection, StoreError};
use crate::domain::ids::{AssessmentId, ClinicId, CourseId, PatientId, SessionId, SideEffectId};
use crate::domain::instrument::Instrument;
use crate::domain::outcomes::BenefitStatus;
use crate::domain::patient::{Indication, Sex};
use crate::domain::schedule::Protocol;
use crate::domain::side_effect::{Effect, Severity};
use crate::domain::treatment::Route;

/// Filters on what every research row is about.
#[derive(Clone, Debug, Default)]
pub struct ResearchFilter {
    pub clinic_id: Option<ClinicId>,
    pub indication: Option<Indication>,
    pub route: Option<Route>,
    pub sex: Option<Sex>,
    /// Sessions (or assessments, or onsets) at or after this instant.
    pub from: Option<NaiveDateTime>,
    /// … and before this one.
    pub to: Option<NaiveDateTime>,
}

/// What a question reads of each session beyond what every question does (the session, its
/// patient, course, time, route, charge, indication, instrument and outcome): the columns
/// its dimensions are derived from. Another column comes back NULL, so the database neither
/// decodes nor sends it — sending every session's row is most of a question's time at scale
/// (issue 16).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reads {
    pub dose: bool,
    pub clinic: bool,
    pub sex: bool,
    pub birth_year: bool,
    /// The course's protocol and start date, which the session's phase is derived from.
    pub schedule: bool,
}

/// One completed session with what it is grouped by and what became of it. A field in an
/// `Option` is present when the question [`Reads`] it (each is a `NOT NULL` column).
#[derive(Clone, Debug, Queryable)]
pub struct SessionFact {
    pub session_id: SessionId,
    pub patient_id: PatientId,
    pub course_id: CourseId,
    pub started_at: NaiveDateTime,
    pub route: Route,
    pub dose_mg_per_kg: Option<f64>,
    pub charge_cents: Option<i64>,
    pub clinic_id: Option<ClinicId>,
    pub sex: Option<Sex>,
    pub birth_year: Option<i32>,
    pub indication: Indication,
    pub protocol: Option<Protocol>,
    pub start_date: Option<NaiveDate>,
    pub primary_instrument: Instrument,
    pub status: BenefitStatus,
    pub durability_days: Option<f64>,
}

/// The completed, live sessions of consenting patients — one outcome row each, which carries
/// what research groups a session by (kept at write time, `store::outcomes`) — from `$base`
/// (the outcomes, or side effects joined to them), with the filters applied. Consent, clinic
/// and sex are read from the patient as the question runs.
macro_rules! consenting_sessions {
    ($base:expr, $filter:expr) => {{
        let filter: &ResearchFilter = $filter;
        let mut query = $base
            .inner_join(patients::table.on(patients::id.eq(session_outcomes::patient_id)))
            .filter(patients::research_consent.eq(true))
            .into_boxed();
        if let Some(clinic) = &filter.clinic_id {
            query = query.filter(patients::clinic_id.eq(*clinic));
        }
        if let Some(indication) = &filter.indication {
            query = query.filter(session_outcomes::indication.eq(*indication));
        }
        if let Some(route) = &filter.route {
            query = query.filter(session_outcomes::route.eq(*route));
        }
        if let Some(sex) = &filter.sex {
            query = query.filter(patients::sex.eq(*sex));
        }
        if let Some(from) = filter.from {
            query = query.filter(session_outcomes::started_at.ge(from));
        }
        if let Some(to) = filter.to {
            query = query.filter(session_outcomes::started_at.lt(to));
        }
        query
    }};
}

/// Runs `$query` on `$conn` and hands each row to `$each` as the database yields it: on
/// PostgreSQL in libpq's row-by-row mode, on SQLite by stepping the statement. One statement
/// reads the whole selection — consistent in itself, unsorted (an aggregate needs no order, and
/// sorting ~100 000 rows was most of a question's time) — and no result is held whole.
macro_rules! stream {
    ($conn:expr, $query:expr, $row:ty, $each:expr) => {{
        let mut each = $each;
        match $conn {
            DbConnection::Postgres(pg) => {
                for row in $query.load_iter::<$row, PgRowByRowLoadingMode>(pg)? {
                    each(row?)?;
                }
            }
            DbConnection::Sqlite(sqlite) => {
                for row in $query.load_iter::<$row, DefaultLoadingMode>(sqlite)? {
                    each(row?)?;
                }
            }
        }
        Ok(())
    }};
}

/// `$column` when `$read`, else NULL: `CASE WHEN $read THEN $column END`, the flag a bound
/// parameter, so that every question shares one prepared statement.
macro_rules! read_if {
    ($read:expr, $column:expr, $sql_type:ty) => {
        case_when::<_, _, $sql_type>($read.into_sql::<diesel::sql_types::Bool>(), $column)
    };
}

macro_rules! session_fact_columns {
    ($reads:expr) => {{
        use diesel::sql_types::{Date, Double, Integer, Text};
        let reads: Reads = $reads;
        (
            session_outcomes::session_id,
            session_outcomes::patient_id,
            session_outcomes::course_id,
            session_outcomes::started_at,
            session_outcomes::route,
            read_if!(reads.dose, session_outcomes::dose_mg_per_kg, Double),
            session_outcomes::charge_cents,
            read_if!(reads.clinic, patients::clinic_id, Text),
            read_if!(reads.sex, patients::sex, Text),
            read_if!(reads.birth_year, patients::birth_year, Integer),
            session_outcomes::indication,
            read_if!(reads.schedule, session_outcomes::protocol, Text),
            read_if!(reads.schedule, session_outcomes::course_start_date, Date),
            session_outcomes::instrument,
            session_outcomes::status,
            session_outcomes::durability_days,
        )
    }};
}

/// Each session fact `filter` selects, with what the question `reads`, handed to `each` in no
/// particular order.
pub fn each_session_fact(
    conn: &mut DbConnection,
    filter: &ResearchFilter,
    reads: Reads,
    mut each: impl FnMut(SessionFact),
) -> Result<(), StoreError> {
    stream!(
        conn,
        consenting_sessions!(session_outcomes::table, filter).select(session_fact_columns!(reads)),
        SessionFact,
        |fact: SessionFact| {
            as_stored(&fact, reads)?;
            each(fact);
            Ok::<_, StoreError>(())
        }
    )
}

/// A benefit that wore off or is sustained has its durability, and no other status has one
/// (the CHECK `session_outcomes_durability_when_measured`): a row that breaks this is corrupt,
/// and research reads nothing into it.
fn measured(fact: &SessionFact) -> Result<(), StoreError> {
    use BenefitStatus::{Sustained, WoreOff};
    let lasted = matches!(fact.status, WoreOff | Sustained);
    if lasted == fact.durability_days.is_some() {
        Ok(())
    } else {
        Err(corrupt(fact, "durability does not match its status"))
    }
}

/// A session fact as the store keeps it, with what the question reads: both checks every
/// row read passes.
fn as_stored(fact: &SessionFact, reads: Reads) -> Result<(), StoreError> {
    measured(fact)?;
    read_as_asked(fact, reads)
}

/// Every column the question reads is there: each is `NOT NULL`, so an absent one is a row
/// the database did not read as asked, and research reads nothing into it.
fn read_as_asked(fact: &SessionFact, reads: Reads) -> Result<(), StoreError> {
    let asked = [
        (reads.dose, fact.dose_mg_per_kg.is_some()),
        (reads.clinic, fact.clinic_id.is_some()),
        (reads.sex, fact.sex.is_some()),
        (reads.birth_year, fact.birth_year.is_some()),
        (
            reads.schedule,
            fact.protocol.is_some() && fact.start_date.is_some(),
        ),
    ];
    if asked.iter().all(|(read, present)| !read || *present) {
        Ok(())
    } else {
        Err(corrupt(fact, "a column the question reads is absent"))
    }
}

fn corrupt(fact: &SessionFact, what: &str) -> StoreError {
    StoreError::Integrity(format!("session {}: {what}", fact.session_id).into())
}

/// Every completed, live session's number among its course's completed sessions, from 1, in
/// time order (issue 18's `infusion_number`): one statement, numbered by the database.
pub fn infusion_numbers(conn: &mut DbConnection) -> Result<Vec<(SessionId, u32)>, StoreError> {
    #[derive(QueryableByName)]
    struct Numbered {
        #[diesel(sql_type = diesel::sql_types::Text)]
        id: SessionId,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        number: i64,
    }
    let rows: Vec<Numbered> = diesel::sql_query(
        "SELECT session_id AS id, \
         ROW_NUMBER() OVER (PARTITION BY course_id ORDER BY started_at, session_id) AS number \
         FROM session_outcomes",
    )
    .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|r| (r.id, u32::try_from(r.number).unwrap_or(u32::MAX)))
        .collect())
}

/// Each consenting patient's first completed session, for age bands and day offsets.
pub fn first_sessions(
    conn: &mut DbConnection,
) -> Result<Vec<(PatientId, Option<NaiveDateTime>)>, StoreError> {
    Ok(session_outcomes::table
        .inner_join(patients::table.on(patients::id.eq(session_outcomes::patient_id)))
        .filter(patients::research_consent.eq(true))
        .group_by(session_outcomes::patient_id)
        .select((
            session_outcomes::patient_id,
            min(session_outcomes::started_at),
        ))
        .load(conn)?)
}

/// The stored outcomes of the given courses: course id, baseline, end-of-induction response
/// and remission, time to response.
pub type CourseFact = (
    CourseId,
    Option<i32>,
    Option<bool>,
    Option<bool>,
    Option<f64>,
);

pub fn course_facts(
    conn: &mut DbConnection,
    course_ids: &[CourseId],
) -> Result<Vec<CourseFact>, StoreError> {
    let mut facts = Vec::with_capacity(course_ids.len());
    for chunk in course_ids.chunks(super::ids_per_statement(conn)) {
        facts.extend(
            course_outcomes::table
                .filter(course_outcomes::course_id.eq_any(chunk))
                .select((
                    course_outcomes::course_id,
                    course_outcomes::baseline,
                    course_outcomes::end_of_induction_response,
                    course_outcomes::end_of_induction_remission,
                    course_outcomes::time_to_response_days,
                ))
                .load::<CourseFact>(conn)?,
        );
    }
    Ok(facts)
}

/// A live side effect of a consenting patient.
#[derive(Clone, Debug, Queryable)]
pub struct SideEffectFact {
    pub id: SideEffectId,
    pub effect: Effect,
    pub severity: Severity,
    pub onset_at: NaiveDateTime,
    pub resolved_at: Option<NaiveDateTime>,
}

/// Each live side effect `filter` selects, with the facts of its session (what the question
/// `reads`), handed to `each` in no particular order.
pub fn each_side_effect_fact(
    conn: &mut DbConnection,
    filter: &ResearchFilter,
    reads: Reads,
    mut each: impl FnMut(SessionFact, SideEffectFact),
) -> Result<(), StoreError> {
    let base = side_effects::table.inner_join(
        session_outcomes::table.on(session_outcomes::session_id.eq(side_effects::session_id)),
    );
    stream!(
        conn,
        consenting_sessions!(base, filter)
            .filter(side_effects::deleted_at.is_null())
            .select((
                session_fact_columns!(reads),
                (
                    side_effects::id,
                    side_effects::effect,
                    side_effects::severity,
                    side_effects::onset_at,
                    side_effects::resolved_at,
                ),
            )),
        (SessionFact, SideEffectFact),
        |(session, effect): (SessionFact, SideEffectFact)| {
            as_stored(&session, reads)?;
            each(session, effect);
            Ok::<_, StoreError>(())
        }
    )
}

/// The live scores of `$instrument` of consenting patients (`ScoreFact`), with the question's
/// clinic, sex and time range applied.
macro_rules! consenting_scores {
    ($instrument:expr, $filter:expr) => {{
        let filter: &ResearchFilter = $filter;
        let mut query = assessments::table
            .inner_join(patients::table.on(patients::id.eq(assessments::patient_id)))
            .filter(assessments::deleted_at.is_null())
            .filter(assessments::instrument.eq($instrument))
            .filter(patients::research_consent.eq(true))
            .into_boxed();
        if let Some(clinic) = &filter.clinic_id {
            query = query.filter(patients::clinic_id.eq(*clinic));
        }
        if let Some(sex) = &filter.sex {
            query = query.filter(patients::sex.eq(*sex));
        }
        if let Some(from) = filter.from {
            query = query.filter(assessments::taken_at.ge(from));
        }
        if let Some(to) = filter.to {
            query = query.filter(assessments::taken_at.lt(to));
        }
        query.select((
            assessments::id,
            assessments::patient_id,
            assessments::taken_at,
            assessments::total,
        ))
    }};
}

/// A live score of a consenting patient, as trajectories read it.
#[derive(Clone, Debug, Queryable)]
pub struct ScoreFact {
    pub assessment_id: AssessmentId,
    pub patient_id: PatientId,
    pub taken_at: NaiveDateTime,
    pub total: i32,
}

/// The live scores of one instrument of consenting patients, handed to `each` in no particular
/// order. The question's clinic, sex and time range are applied here, by the database.
pub fn each_score(
    conn: &mut DbConnection,
    instrument: Instrument,
    filter: &ResearchFilter,
    mut each: impl FnMut(ScoreFact),
) -> Result<(), StoreError> {
    stream!(
        conn,
        consenting_scores!(instrument, filter),
        ScoreFact,
        |score: ScoreFact| {
            each(score);
            Ok::<_, StoreError>(())
        }
    )
}

/// One page of consenting patients for the export, in id order after `after`, of one sex
/// if given: (id, sex, birth year).
pub fn patients_page(
    conn: &mut DbConnection,
    after: Option<PatientId>,
    limit: i64,
    sex: Option<Sex>,
) -> Result<Vec<(PatientId, Sex, i32)>, StoreError> {
    let mut query = patients::table
        .filter(patients::research_consent.eq(true))
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(patients::id.gt(after));
    }
    if let Some(sex) = sex {
        query = query.filter(patients::sex.eq(sex));
    }
    Ok(query
        .select((patients::id, patients::sex, patients::birth_year))
        .order(patients::id)
        .limit(limit)
        .load(conn)?)
}

/// Everything of a page of patients that the export writes.
pub struct ExportBatch {
    pub courses: Vec<crate::store::courses::CourseRow>,
    pub sessions: Vec<crate::store::sessions::SessionRow>,
    pub outcomes: Vec<crate::store::outcomes::SessionOutcomeRow>,
    pub assessments: Vec<crate::store::assessments::AssessmentRow>,
    pub side_effects: Vec<crate::store::side_effects::SideEffectRow>,
}

pub fn export_batch(conn: &mut DbConnection, ids: &[PatientId]) -> Result<ExportBatch, StoreError> {
    use crate::store::assessments::AssessmentRow;
    use crate::store::courses::CourseRow;
    use crate::store::outcomes::SessionOutcomeRow;
    use crate::store::sessions::SessionRow;
    use crate::store::side_effects::SideEffectRow;
    Ok(ExportBatch {
        courses: courses::table
            .filter(courses::patient_id.eq_any(ids))
            .select(CourseRow::as_select())
            .load(conn)?,
        sessions: sessions::table
            .filter(sessions::patient_id.eq_any(ids))
            .filter(sessions::deleted_at.is_null())
            .order((sessions::patient_id, sessions::started_at))
            .select(SessionRow::as_select())
            .load(conn)?,
        outcomes: session_outcomes::table
            .filter(session_outcomes::patient_id.eq_any(ids))
            .select(SessionOutcomeRow::as_select())
            .load(conn)?,
        assessments: assessments::table
            .filter(assessments::patient_id.eq_any(ids))
            .filter(assessments::deleted_at.is_null())
            .order((assessments::patient_id, assessments::taken_at))
            .select(AssessmentRow::as_select())
            .load(conn)?,
        side_effects: side_effects::table
            .filter(side_effects::patient_id.eq_any(ids))
            .filter(side_effects::deleted_at.is_null())
            .order((side_effects::patient_id, side_effects::onset_at))
            .select(SideEffectRow::as_select())
            .load(conn)?,
    })
}

/// How many clinics there are: the number of values the `clinic` dimension can take.
pub fn clinic_count(conn: &mut DbConnection) -> Result<usize, StoreError> {
    use super::schema::clinics;
    let n: i64 = clinics::table.count().get_result(conn)?;
    Ok(usize::try_from(n).unwrap_or(0))
}
