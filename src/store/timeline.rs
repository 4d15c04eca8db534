//! One page of a patient's timeline in one statement (issue 16 (2)): the scope check, the
//! page of each of the three lists, the flags of every record on them and the clinic's crisis
//! message. One statement reads one snapshot on either engine, so the page needs no
//! transaction around it — where six statements in a REPEATABLE READ one cost eight round
//! trips to PostgreSQL.
//!
//! The parts are rows of one `UNION ALL`, told apart by an `entry` column; each part fills the
//! columns of its own row type and leaves the others a typed NULL, and reads back as that
//! type (`QueryableByName`, by column name), so every row is as typed as the per-kind lists'.

use std::sync::LazyLock;

use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql, QueryableByName};
use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::row::NamedRow;
use diesel::sql_types::{BigInt, Text, Timestamp, Untyped};

use super::assessments::AssessmentRow;
use super::flags::FlagRow;
use super::scope::Scope;
use super::sessions::SessionRow;
use super::side_effects::SideEffectRow;
use super::{DbConnection, MultiBackend, Page, StoreError, TimeRange};
use crate::domain::ids::PatientId;

/// The page: each list's first `page.limit` records after the cursor (the caller merges them),
/// and the flags of all of them.
#[derive(Debug, Default)]
pub struct TimelinePage {
    /// The clinic's crisis-resources message, for an entry with a suicidal-ideation flag.
    pub crisis_message: String,
    pub sessions: Vec<SessionRow>,
    pub assessments: Vec<AssessmentRow>,
    pub side_effects: Vec<SideEffectRow>,
    /// In no order (`flags::by_urgency` gives theirs).
    pub flags: Vec<FlagRow>,
}

/// The live records of `patient` whose own time falls in the range, one page of each kind,
/// with their flags; `NotFound` when the patient is not within `scope`.
pub fn page(
    conn: &mut DbConnection,
    scope: Scope,
    patient: PatientId,
    range: TimeRange,
    page: &Page,
) -> Result<TimelinePage, StoreError> {
    let statement = PageStatement {
        scope,
        patient,
        range,
        page,
    };
    gather(statement.load::<Part>(conn)?)
}

/// The statement, written by diesel's AST pass rather than as one string with its binds
/// beside it: each engine numbers its own parameters, and diesel keeps the statement prepared
/// on the connection, keyed by its text (a few shapes: which bounds a request gives). Planning
/// it afresh took PostgreSQL 3.5 ms, three times its execution.
struct PageStatement<'a> {
    scope: Scope,
    patient: PatientId,
    range: TimeRange,
    page: &'a Page,
}

impl QueryFragment<MultiBackend> for PageStatement<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, MultiBackend>) -> QueryResult<()> {
        out.push_sql(
            "WITH scope AS (SELECT clinics.crisis_message FROM patients \
             JOIN clinics ON clinics.id = patients.clinic_id WHERE patients.id = ",
        );
        out.push_bind_param::<Text, _>(&self.patient)?;
        match &self.scope {
            Scope::Clinic(clinic) => {
                out.push_sql(" AND patients.clinic_id = ");
                out.push_bind_param::<Text, _>(clinic)?;
            }
            Scope::Patient(own) => {
                out.push_sql(" AND patients.id = ");
                out.push_bind_param::<Text, _>(own)?;
            }
        }
        out.push_sql("), s AS (");
        self.list(&mut out, "sessions", "started_at")?;
        out.push_sql("), a AS (");
        self.list(&mut out, "assessments", "taken_at")?;
        out.push_sql("), e AS (");
        self.list(&mut out, "side_effects", "onset_at")?;
        out.push_sql(") ");
        out.push_sql(&PARTS);
        out.push_sql(" WHERE flags.patient_id = ");
        out.push_bind_param::<Text, _>(&self.patient)?;
        out.push_sql(
            " AND flags.record_id IN \
             (SELECT id FROM s UNION ALL SELECT id FROM a UNION ALL SELECT id FROM e)",
        );
        Ok(())
    }
}

impl PageStatement<'_> {
    /// One kind's page, as `list_for_patient!` reads a range: live records in `[from, to)`,
    /// after the cursor, in `(time, id)` order.
    fn list<'b>(
        &'b self,
        out: &mut AstPass<'_, 'b, MultiBackend>,
        table: &str,
        time: &str,
    ) -> QueryResult<()> {
        out.push_sql(&format!(
            "SELECT {table}.* FROM {table} WHERE {table}.deleted_at IS NULL \
             AND EXISTS (SELECT 1 FROM scope) AND {table}.patient_id = "
        ));
        out.push_bind_param::<Text, _>(&self.patient)?;
        if let Some(from) = &self.range.from {
            out.push_sql(&format!(" AND {table}.{time} >= "));
            out.push_bind_param::<Timestamp, _>(from)?;
        }
        if let Some(to) = &self.range.to {
            out.push_sql(&format!(" AND {table}.{time} < "));
            out.push_bind_param::<Timestamp, _>(to)?;
        }
        if let Some((at, id)) = &self.page.after {
            out.push_sql(&format!(" AND ({table}.{time} > "));
            out.push_bind_param::<Timestamp, _>(at)?;
            out.push_sql(&format!(" OR ({table}.{time} = "));
            out.push_bind_param::<Timestamp, _>(at)?;
            out.push_sql(&format!(" AND {table}.id > "));
            out.push_bind_param::<Text, _>(id)?;
            out.push_sql("))");
        }
        out.push_sql(&format!(" ORDER BY {table}.{time}, {table}.id LIMIT "));
        out.push_bind_param::<BigInt, _>(&self.page.limit)
    }
}

impl QueryId for PageStatement<'_> {
    type QueryId = ();
    // Its text varies with the bounds given, so diesel must key the prepared statement by the
    // text: `true` would give every shape one key (`()`'s), and a request would run a cached
    // statement of another shape with its own binds.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for PageStatement<'_> {
    type SqlType = Untyped;
}

impl<Conn> RunQueryDsl<Conn> for PageStatement<'_> {}

/// The union's branches after the CTEs, the same for every request: the scope's row, the
/// three pages and the flags (whose `WHERE` follows).
static PARTS: LazyLock<String> = LazyLock::new(|| {
    [
        part(Part::SCOPE, "scope", &[&["crisis_message"]]),
        part(Part::SESSION, "s", &[SESSION_COLUMNS, RECORD_COLUMNS]),
        part(Part::ASSESSMENT, "a", &[ASSESSMENT_COLUMNS, RECORD_COLUMNS]),
        part(
            Part::SIDE_EFFECT,
            "e",
            &[SIDE_EFFECT_COLUMNS, RECORD_COLUMNS],
        ),
        part(Part::FLAG, "flags", &[FLAG_COLUMNS]),
    ]
    .join(" UNION ALL ")
});

/// The rows of the statement, sorted into the page; `NotFound` without the scope's row.
fn gather(parts: Vec<Part>) -> Result<TimelinePage, StoreError> {
    let mut page = TimelinePage::default();
    let mut in_scope = false;
    for part in parts {
        match part {
            Part::Scope { crisis_message } => {
                in_scope = true;
                page.crisis_message = crisis_message;
            }
            Part::Session(row) => page.sessions.push(row),
            Part::Assessment(row) => page.assessments.push(row),
            Part::SideEffect(row) => page.side_effects.push(row),
            Part::Flag(row) => page.flags.push(row),
        }
    }
    if !in_scope {
        return Err(StoreError::NotFound);
    }
    Ok(page)
}

/// One branch of the union: `entry`, then every column of [`COLUMNS`] — `source`'s own where it
/// has it, a NULL of the column's type where it has not (PostgreSQL types a union's columns
/// from its branches, and an untyped NULL in the first would make a column text).
fn part(entry: &str, source: &str, own: &[&[&str]]) -> String {
    let columns: Vec<String> = COLUMNS
        .iter()
        .map(|(name, sql_type)| {
            if own.iter().any(|columns| columns.contains(name)) {
                format!("{source}.{name} AS {name}")
            } else {
                format!("CAST(NULL AS {sql_type}) AS {name}")
            }
        })
        .collect();
    format!(
        "SELECT '{entry}' AS entry, {} FROM {source}",
        columns.join(", ")
    )
}

/// Every column a part fills, once, with its type. Columns two row types share (`id`, `note`,
/// `status`, …) have the same type in each.
const COLUMNS: &[(&str, &str)] = &[
    ("crisis_message", "TEXT"),
    ("id", "TEXT"),
    ("patient_id", "TEXT"),
    ("course_id", "TEXT"),
    ("route", "TEXT"),
    ("started_at", "TIMESTAMP"),
    ("ended_at", "TIMESTAMP"),
    ("dose_mg_per_kg", "DOUBLE PRECISION"),
    ("weight_kg", "DOUBLE PRECISION"),
    ("total_dose_mg", "DOUBLE PRECISION"),
    ("status", "TEXT"),
    ("hold_reason", "TEXT"),
    ("charge_cents", "BIGINT"),
    ("pre_systolic", "INTEGER"),
    ("pre_diastolic", "INTEGER"),
    ("pre_heart_rate", "INTEGER"),
    ("pre_spo2", "INTEGER"),
    ("post_systolic", "INTEGER"),
    ("post_diastolic", "INTEGER"),
    ("post_heart_rate", "INTEGER"),
    ("post_spo2", "INTEGER"),
    ("readings", "TEXT"),
    ("monitoring_minutes", "INTEGER"),
    ("sedation", "TEXT"),
    ("respiratory_concern", "BOOLEAN"),
    ("instrument", "TEXT"),
    ("taken_at", "TIMESTAMP"),
    ("items", "TEXT"),
    ("total", "INTEGER"),
    ("band", "TEXT"),
    ("submitted_by", "TEXT"),
    ("session_id", "TEXT"),
    ("effect", "TEXT"),
    ("severity", "TEXT"),
    ("onset_at", "TIMESTAMP"),
    ("resolved_at", "TIMESTAMP"),
    ("reported_by", "TEXT"),
    ("note", "TEXT"),
    ("recorded_by", "TEXT"),
    ("body_hash", "TEXT"),
    ("created_at", "TIMESTAMP"),
    ("updated_at", "TIMESTAMP"),
    ("version", "INTEGER"),
    ("deleted_at", "TIMESTAMP"),
    ("deleted_reason", "TEXT"),
    ("change_seq", "BIGINT"),
    ("kind", "TEXT"),
    ("level", "TEXT"),
    ("level_rank", "INTEGER"),
    ("record_type", "TEXT"),
    ("record_id", "TEXT"),
    ("detail", "TEXT"),
    ("raised_at", "TIMESTAMP"),
    ("acknowledged_by", "TEXT"),
    ("acknowledged_at", "TIMESTAMP"),
    ("escalated_at", "TIMESTAMP"),
];

/// The columns of each row type, as its `Selectable` reads them (a unit test holds each list
/// to the row type's own): a clinical record's own, then [`RECORD_COLUMNS`].
const RECORD_COLUMNS: &[&str] = &[
    "recorded_by",
    "body_hash",
    "created_at",
    "updated_at",
    "version",
    "deleted_at",
    "deleted_reason",
    "change_seq",
];
const SESSION_COLUMNS: &[&str] = &[
    "id",
    "patient_id",
    "course_id",
    "route",
    "started_at",
    "ended_at",
    "dose_mg_per_kg",
    "weight_kg",
    "total_dose_mg",
    "status",
    "hold_reason",
    "charge_cents",
    "pre_systolic",
    "pre_diastolic",
    "pre_heart_rate",
    "pre_spo2",
    "post_systolic",
    "post_diastolic",
    "post_heart_rate",
    "post_spo2",
    "readings",
    "monitoring_minutes",
    "sedation",
    "respiratory_concern",
];
const ASSESSMENT_COLUMNS: &[&str] = &[
    "id",
    "patient_id",
    "instrument",
    "taken_at",
    "items",
    "total",
    "band",
    "submitted_by",
];
const SIDE_EFFECT_COLUMNS: &[&str] = &[
    "id",
    "patient_id",
    "session_id",
    "effect",
    "severity",
    "onset_at",
    "resolved_at",
    "reported_by",
    "note",
];
const FLAG_COLUMNS: &[&str] = &[
    "id",
    "patient_id",
    "kind",
    "level",
    "level_rank",
    "record_type",
    "record_id",
    "detail",
    "raised_at",
    "status",
    "acknowledged_by",
    "acknowledged_at",
    "note",
    "escalated_at",
];

/// One row of the statement, read as the type its `entry` names.
enum Part {
    Scope { crisis_message: String },
    Session(SessionRow),
    Assessment(AssessmentRow),
    SideEffect(SideEffectRow),
    Flag(FlagRow),
}

impl Part {
    const SCOPE: &'static str = "scope";
    const SESSION: &'static str = "session";
    const ASSESSMENT: &'static str = "assessment";
    const SIDE_EFFECT: &'static str = "side_effect";
    const FLAG: &'static str = "flag";
}

impl<DB: Backend> QueryableByName<DB> for Part
where
    String: FromSql<Text, DB>,
    SessionRow: QueryableByName<DB>,
    AssessmentRow: QueryableByName<DB>,
    SideEffectRow: QueryableByName<DB>,
    FlagRow: QueryableByName<DB>,
{
    fn build<'a>(row: &impl NamedRow<'a, DB>) -> deserialize::Result<Self> {
        let entry = NamedRow::get::<Text, String>(row, "entry")?;
        Ok(match entry.as_str() {
            Part::SCOPE => Part::Scope {
                crisis_message: NamedRow::get::<Text, String>(row, "crisis_message")?,
            },
            Part::SESSION => Part::Session(SessionRow::build(row)?),
            Part::ASSESSMENT => Part::Assessment(AssessmentRow::build(row)?),
            Part::SIDE_EFFECT => Part::SideEffect(SideEffectRow::build(row)?),
            Part::FLAG => Part::Flag(FlagRow::build(row)?),
            other => return Err(format!("a timeline row of no known entry: {other}").into()),
        })
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::store::schema::{assessments, flags, sessions, side_effects};
    use crate::store::tests::selected;

    #[test]
    fn each_parts_columns_are_its_row_types_own_and_every_one_is_typed() {
        let record = |own: &[&'static str]| [own, RECORD_COLUMNS].concat();
        let cases: [(Vec<&str>, Vec<String>); 4] = [
            (
                record(SESSION_COLUMNS),
                selected(sessions::table.select(SessionRow::as_select())),
            ),
            (
                record(ASSESSMENT_COLUMNS),
                selected(assessments::table.select(AssessmentRow::as_select())),
            ),
            (
                record(SIDE_EFFECT_COLUMNS),
                selected(side_effects::table.select(SideEffectRow::as_select())),
            ),
            (
                FLAG_COLUMNS.to_vec(),
                selected(flags::table.select(FlagRow::as_select())),
            ),
        ];
        for (own, selectable) in cases {
            assert_eq!(own, selectable);
            for column in &own {
                assert!(
                    COLUMNS.iter().any(|(name, _)| name == column),
                    "{column} has no type in COLUMNS"
                );
            }
        }
    }

    #[test]
    fn a_statement_without_the_scopes_row_is_not_found() {
        assert!(matches!(gather(vec![]), Err(StoreError::NotFound)));
        let page = gather(vec![Part::Scope {
            crisis_message: "call 988".into(),
        }])
        .unwrap();
        assert_eq!(page.crisis_message, "call 988");
    }
}
