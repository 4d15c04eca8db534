//! Where the database is touched: the connection type both engines share, the pool, the
//! migrations, and one module per aggregate.
//!
//! Every call goes through [`Db::run`], which waits for a slot asynchronously and then does the
//! work on a blocking thread, so no database work ever runs on actix's async workers.

#[macro_use]
mod macros;
#[macro_use]
pub mod scope;

pub mod assessments;
pub mod audit;
pub mod backup;
pub mod clinics;
pub mod columns;
pub mod consent;
pub mod course_adherence;
pub mod courses;
pub mod evaluation_settings;
pub mod fhir_exports;
pub mod flags;
pub mod invites;
pub mod outbox;
pub mod outcomes;
pub mod patients;
pub mod refresh_tokens;
pub mod research;
pub mod research_access;
pub mod schema;
pub mod sessions;
pub mod side_effects;
pub mod throttle;
pub mod time_flag_checks;
pub mod timeline;
pub mod users;
pub mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::prelude::*;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::query_dsl::methods::ExecuteDsl;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool, PooledConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use tokio::sync::Semaphore;

use chrono::NaiveDateTime;

use crate::config::DatabaseUrl;
use crate::domain::ids::{AssessmentId, CourseId, PatientId, SessionId, SideEffectId};
use scope::Scope;

/// One connection type for both engines, so every query is written once.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

/// How many ids one `IN` list of a statement may hold: SQLite caps the parameters of a
/// statement; PostgreSQL binds the whole list as one array, so a list of any length is one
/// round trip.
pub fn ids_per_statement(conn: &DbConnection) -> usize {
    match conn {
        DbConnection::Postgres(_) => usize::MAX,
        DbConnection::Sqlite(_) => 500,
    }
}

/// An `INSERT` of one row that writes nothing when one of the table's unique keys is taken
/// (`ON CONFLICT DO NOTHING`), which diesel's connection over both engines cannot write: an
/// idempotent create learns from the count of rows written whether its id was free, in one
/// statement and with no savepoint (a refused insert would abort PostgreSQL's transaction).
/// Every unique key, not the id alone: PostgreSQL checks the keys it is not told to leave
/// alone without waiting its turn, so an identical create racing this one would meet the
/// other key (a clinic's name, an account's email) before the id, and be refused instead of
/// replayed (`admin::identical_creates_racing_each_other_land_once_whatever_else_is_unique`).
struct UnlessTaken<I>(I);

impl<I: QueryFragment<MultiBackend>> QueryFragment<MultiBackend> for UnlessTaken<I> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, MultiBackend>) -> QueryResult<()> {
        self.0.walk_ast(out.reborrow())?;
        out.push_sql(" ON CONFLICT DO NOTHING");
        Ok(())
    }
}

impl<I> QueryId for UnlessTaken<I> {
    type QueryId = ();
    // Keyed by its text, and kept prepared when the insert may be (no DEFAULT in it).
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<I, Conn> RunQueryDsl<Conn> for UnlessTaken<I> {}

/// Runs `insert` (one row keyed by `id`) unless one of its table's unique keys is taken:
/// whether it wrote the row. A create uses it where the id is the only unique key; a flag,
/// where one of its kind already on its record is the row to leave alone.
pub fn inserted_unless_taken<I>(conn: &mut DbConnection, insert: I) -> Result<bool, StoreError>
where
    I: QueryFragment<MultiBackend>,
{
    Ok(UnlessTaken(insert).execute(conn)? == 1)
}

/// [`inserted_unless_taken`] for a table with one more unique key, `other`: when nothing was
/// written, `id_taken` tells the two apart — `Ok(false)` when the id was taken (the create is a
/// replay or a conflict), [`StoreError::Taken`] naming `other` when it was not.
pub fn inserted_unless_taken_or<I>(
    conn: &mut DbConnection,
    insert: I,
    other: &'static str,
    id_taken: impl FnOnce(&mut DbConnection) -> Result<bool, StoreError>,
) -> Result<bool, StoreError>
where
    I: QueryFragment<MultiBackend>,
{
    if inserted_unless_taken(conn, insert)? {
        return Ok(true);
    }
    if id_taken(conn)? {
        Ok(false)
    } else {
        Err(StoreError::Taken { field: other })
    }
}

/// Two writes of one transaction, `first` and then `then`, where `then` does not read what
/// `first` wrote and the two write different rows: on PostgreSQL one statement, `first` a
/// data-modifying `WITH` of `then` (which must not begin with a `WITH` of its own), saving a
/// round trip to the database; on SQLite, where a statement costs none, one after the other,
/// atomic only inside the caller's transaction. Gives the count of rows `then` wrote: `first`
/// must be a write whose rows are certain (an insert of values, which writes them or fails),
/// for its own count is not seen.
pub fn written_together<F, T>(
    conn: &mut DbConnection,
    first: F,
    then: T,
) -> Result<usize, StoreError>
where
    F: QueryFragment<MultiBackend> + QueryId,
    T: QueryFragment<MultiBackend> + QueryId,
{
    Ok(match conn {
        DbConnection::Postgres(_) => Together(first, then).execute(conn)?,
        DbConnection::Sqlite(_) => {
            ExecuteDsl::execute(first, conn)?;
            ExecuteDsl::execute(then, conn)?
        }
    })
}

/// `WITH first AS (…) then`, which diesel cannot write.
struct Together<F, T>(F, T);

impl<F, T> QueryFragment<MultiBackend> for Together<F, T>
where
    F: QueryFragment<MultiBackend>,
    T: QueryFragment<MultiBackend>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, MultiBackend>) -> QueryResult<()> {
        out.push_sql("WITH first AS (");
        self.0.walk_ast(out.reborrow())?;
        out.push_sql(") ");
        self.1.walk_ast(out.reborrow())
    }
}

impl<F, T> QueryId for Together<F, T> {
    type QueryId = ();
    // Keyed by its text, and kept prepared when both writes may be.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<F, T, Conn> RunQueryDsl<Conn> for Together<F, T> {}

const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// Failures of the storage layer; the API layer decides what each means to a client.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No connection could be had in time: the database is down or saturated.
    #[error("database unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("record not found")]
    NotFound,
    /// The record changed since the version the client holds.
    #[error("stale version")]
    Stale,
    /// A unique constraint refused the write: this field's value is taken. Named the same on
    /// both engines (the constraints' own names differ, and are not for clients).
    #[error("{field} is taken")]
    Taken { field: &'static str },
    /// Another constraint (a foreign key, an unknown unique key) refused the write.
    #[error("a constraint refused the write")]
    Conflict,
    /// A stored value does not read back as its type (an unknown name, unreadable JSON):
    /// the data is corrupt or was written by something else, and nothing is guessed.
    #[error("stored data cannot be read")]
    Integrity(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("database error")]
    Query(#[source] diesel::result::Error),
    #[error("migrations failed: {0}")]
    Migration(String),
    /// A sync position at or past the horizon: no position this database handed out can be,
    /// since the horizon only moves on. The database was restored from a backup since the
    /// client synced (or the cursor is forged): syncing on from it would skip changes.
    #[error("the sync position is ahead of this database")]
    AheadOfDatabase,
}

impl From<diesel::result::Error> for StoreError {
    fn from(err: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind as Kind, Error};
        match err {
            Error::NotFound => Self::NotFound,
            Error::DeserializationError(cause) => Self::Integrity(cause),
            Error::DatabaseError(Kind::UniqueViolation, info) => match taken_field(&*info) {
                Some(field) => Self::Taken { field },
                None => Self::Conflict,
            },
            Error::DatabaseError(Kind::ForeignKeyViolation, _) => Self::Conflict,
            Error::DatabaseError(Kind::ClosedConnection | Kind::UnableToSendCommand, _)
            | Error::BrokenTransactionManager => Self::Unavailable(Box::new(err)),
            // SQLite's one write lock was held past busy_timeout: the client may retry.
            Error::DatabaseError(Kind::Unknown, ref info) if info.message() == SQLITE_BUSY => {
                Self::Unavailable(Box::new(err))
            }
            // The connection died at COMMIT and the rollback could not be sent either: what
            // the commit met decides (a lost connection is a 503; the client retries by id).
            Error::RollbackErrorOnCommit { commit_error, .. } => Self::from(*commit_error),
            other => Self::Query(other),
        }
    }
}

/// SQLite's word for a lock it waited on past busy_timeout.
const SQLITE_BUSY: &str = "database is locked";

/// The field each unique key protects: PostgreSQL names the constraint, SQLite the columns
/// ("UNIQUE constraint failed: users.email").
const UNIQUE_KEYS: &[(&str, &str, &str)] = &[
    ("users_email_key", "users.email", "email"),
    ("clinics_name_key", "clinics.name", "name"),
    (
        "patients_external_ref_key",
        "patients.external_ref",
        "external_ref",
    ),
    (
        "patient_accounts_patient_key",
        "patient_accounts.patient_id",
        "patient_id",
    ),
];

fn taken_field(info: &dyn diesel::result::DatabaseErrorInformation) -> Option<&'static str> {
    let columns = info.message().rsplit(": ").next().unwrap_or_default();
    let known = UNIQUE_KEYS.iter().find(|(constraint, column, _)| {
        info.constraint_name() == Some(*constraint) || columns.split(", ").any(|c| c == *column)
    });
    match known {
        Some((_, _, field)) => Some(field),
        // A primary key: the id is taken.
        None if info.constraint_name().is_some_and(|c| c.ends_with("_pkey"))
            || columns.ends_with(".id") =>
        {
            Some("id")
        }
        None => None,
    }
}

/// The change position of a row built in the application, until the database gives it its
/// own as it is written.
pub const UNSYNCED: i64 = 0;

/// One page of a list in its stable order: `(time, id)` ascending, starting after `after`.
#[derive(Clone, Debug)]
pub struct Page {
    pub limit: i64,
    pub after: Option<(NaiveDateTime, String)>,
}

/// The instants `[from, to)` as stored, either end open (`domain::time::Range` parsed them).
#[derive(Clone, Copy, Debug)]
pub struct TimeRange {
    pub from: Option<NaiveDateTime>,
    pub to: Option<NaiveDateTime>,
}

/// Which records of a patient a list returns.
#[derive(Clone, Debug)]
pub enum Window {
    /// Live records whose own time (taken, started, onset) falls in the range.
    Range(TimeRange),
    /// Sync: every record changed after the instant `changed_after` (a first sync) and after
    /// the position `after` (a sync on from an earlier one, or the next page), entered-in-error
    /// ones included, in the order of their change positions, and only below `horizon`: the
    /// position no transaction still in flight can commit under ([`Window::fixed`] reads it).
    Changes {
        changed_after: Option<NaiveDateTime>,
        after: Option<Position>,
        horizon: Option<i64>,
    },
}

/// A place in the order phones sync in: a change position, and the id of the last record
/// returned at it (none: past every record at it).
#[derive(Clone, Debug, PartialEq)]
pub struct Position {
    pub change_seq: i64,
    pub id: Option<String>,
}

impl Window {
    /// The window with a sync's [`horizon`] read.
    pub fn fixed(self, conn: &mut DbConnection) -> Result<Self, StoreError> {
        let Window::Changes {
            changed_after,
            after,
            horizon: None,
        } = self
        else {
            return Ok(self);
        };
        let read = horizon(conn)?;
        if after.as_ref().is_some_and(|p| p.change_seq >= read) {
            return Err(StoreError::AheadOfDatabase);
        }
        Ok(Window::Changes {
            changed_after,
            after,
            horizon: Some(read),
        })
    }
}

/// The first change position a reader may not read up to yet: on PostgreSQL the oldest
/// transaction still in flight (every change below it is committed, and every later commit
/// lands at or above it), on SQLite one past the counter (its one writer commits in counter
/// order). Read before the rows, so every change below it is visible to the statement that
/// reads them.
pub fn horizon(conn: &mut DbConnection) -> Result<i64, StoreError> {
    #[derive(QueryableByName)]
    struct Horizon {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        horizon: i64,
    }
    let query = match conn {
        DbConnection::Postgres(_) => {
            "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS horizon"
        }
        DbConnection::Sqlite(_) => "SELECT value + 1 AS horizon FROM change_counter WHERE id = 1",
    };
    let read: Horizon = diesel::sql_query(query).get_result(conn)?;
    Ok(read.horizon)
}

/// The pool and the limit on concurrent blocking work that goes with it.
#[derive(Clone)]
pub struct Db {
    pool: Pool<Manager>,
    slots: Arc<Semaphore>,
    acquire_timeout: Duration,
    /// On SQLite, a shared hold on the file for as long as the pool lives, so that a restore
    /// never replaces the file under a running server (`backup::restore`).
    _in_use: Option<Arc<std::fs::File>>,
}

/// How a transaction begins.
#[derive(Clone, Copy)]
enum Begin {
    /// Holding SQLite's write lock from the start, so concurrent writers queue.
    Write,
    /// Reading one unchanging view of the database.
    Snapshot,
}

/// Runs `work` in one write transaction on a connection already held: for work that holds one
/// connection across several transactions (the sweep of time-based flags). On SQLite it
/// takes the write lock at `BEGIN IMMEDIATE`, as [`Db::transaction`] does.
pub fn write_transaction<T, E, F>(conn: &mut DbConnection, work: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<StoreError>,
{
    in_transaction(conn, Begin::Write, work)
}

/// Runs `work` inside the transaction already open, undoing only what `work` did if it fails
/// (a savepoint): one part of a batch that fails does not take the others with it.
pub fn savepoint<T>(
    conn: &mut DbConnection,
    work: impl FnOnce(&mut DbConnection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    conn.transaction(work)
}

fn in_transaction<T, E, F>(conn: &mut DbConnection, begin: Begin, work: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<StoreError>,
{
    type Manager = <DbConnection as Connection>::TransactionManager;
    let begun = match (&mut *conn, begin) {
        (DbConnection::Sqlite(lite), Begin::Write) => {
            AnsiTransactionManager::begin_transaction_sql(lite, "BEGIN IMMEDIATE")
        }
        (DbConnection::Sqlite(lite), Begin::Snapshot) => {
            AnsiTransactionManager::begin_transaction_sql(lite, "BEGIN DEFERRED")
        }
        // Said, not left to the server's default: the writes assume it — a create whose id a
        // transaction committed after its start finds that row and replays it, where a
        // snapshot would refuse the insert (a serialization failure).
        (DbConnection::Postgres(pg), Begin::Write) => {
            AnsiTransactionManager::begin_transaction_sql(
                pg,
                "BEGIN ISOLATION LEVEL READ COMMITTED",
            )
        }
        (DbConnection::Postgres(pg), Begin::Snapshot) => {
            AnsiTransactionManager::begin_transaction_sql(
                pg,
                "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
            )
        }
    };
    begun.map_err(StoreError::from)?;
    match work(conn) {
        Ok(value) => {
            Manager::commit_transaction(conn).map_err(StoreError::from)?;
            Ok(value)
        }
        Err(err) => {
            // The error that ended the work is the one to report.
            let _ = Manager::rollback_transaction(conn);
            Err(err)
        }
    }
}

/// The pool research queries read from: a read replica when one is configured, else the
/// primary's pool.
#[derive(Clone)]
pub struct ResearchDb {
    pub db: Db,
    /// Research reads a database of its own (`KO_RESEARCH_DATABASE_URL`).
    pub replica: bool,
}

/// How long /metrics waits for the research replica to answer.
const REPLICA_PROBE: Duration = Duration::from_secs(2);

/// What the research replica says of itself, for /metrics.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ReplicaState {
    /// Research reads the primary: there is no replica to watch.
    NotConfigured,
    Unreachable,
    /// Reachable; how far its replay stands behind the primary, in seconds, when it is a
    /// streaming standby (`None`: not in recovery, or not PostgreSQL).
    Reachable {
        lag_seconds: Option<f64>,
    },
}

impl ResearchDb {
    /// The replica's state: reachable or not, and its replay lag. Zero while it streams from
    /// the primary and has replayed all it received (an idle primary sends nothing, and its
    /// last transaction's age would read as lag); else — replay behind, or the stream from
    /// the primary broken — the age of the last transaction it replayed. A replica that does
    /// not answer within [`REPLICA_PROBE`] is unreachable: a scrape must not wait on it.
    pub async fn replica_state(&self) -> ReplicaState {
        if !self.replica {
            return ReplicaState::NotConfigured;
        }
        #[derive(QueryableByName)]
        struct Lag {
            #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Double>)]
            lag: Option<f64>,
        }
        let lag = self.db.run(|conn| -> Result<Option<f64>, StoreError> {
            let DbConnection::Postgres(pg) = conn else {
                return Ok(None);
            };
            let row: Lag = diesel::sql_query(
                "SELECT CASE WHEN NOT pg_is_in_recovery() THEN NULL \
                 WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() \
                   AND EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming') \
                 THEN 0 \
                 ELSE GREATEST(0, EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())) \
                 END::float8 AS lag",
            )
            .get_result(pg)?;
            Ok(row.lag)
        });
        match tokio::time::timeout(REPLICA_PROBE, lag).await {
            Ok(Ok(lag_seconds)) => ReplicaState::Reachable { lag_seconds },
            Ok(Err(_)) | Err(_) => ReplicaState::Unreachable,
        }
    }
}

/// Pool usage, for /metrics.
pub struct PoolState {
    pub size: u32,
    pub idle: u32,
    pub max: u32,
}

impl Db {
    /// Builds the pool without connecting: the server starts (and /readyz says 503) even when
    /// the database is not there yet.
    pub fn new(url: &DatabaseUrl, size: u32, acquire_timeout: Duration) -> Self {
        Self::named(url, size, acquire_timeout, "ketamine-outcomes")
    }

    /// A pool whose PostgreSQL connections carry `application_name` (unless the URL names
    /// one), so that an operator — or the benchmark — tells its work from the requests'.
    pub fn named(
        url: &DatabaseUrl,
        size: u32,
        acquire_timeout: Duration,
        application_name: &'static str,
    ) -> Self {
        let manager = Manager(ConnectionManager::new(named(url, application_name)));
        let pool = Pool::builder()
            .max_size(size)
            .min_idle(Some(0))
            .connection_timeout(acquire_timeout)
            // A connection is tested on check-out unless its last work succeeded a moment ago
            // (`Manager`).
            .test_on_check_out(true)
            .connection_customizer(Box::new(SessionSettings))
            .build_unchecked(manager);
        let in_use = match url {
            // An in-memory database has no file to replace.
            DatabaseUrl::Sqlite(path) if path.as_os_str() == ":memory:" => None,
            DatabaseUrl::Sqlite(path) => backup::hold_shared(path)
                .inspect_err(|e| tracing::warn!(error = %e, "the database file is not held"))
                .ok()
                .map(Arc::new),
            DatabaseUrl::Postgres(_) => None,
        };
        Self {
            pool,
            slots: Arc::new(Semaphore::new(size as usize)),
            acquire_timeout,
            _in_use: in_use,
        }
    }

    /// Runs `work` with a pooled connection on a blocking thread, inside the caller's span.
    /// `work` may fail with any error a [`StoreError`] converts into, so a handler can apply
    /// its own rules inside the same connection.
    pub async fn run<T, E, F>(&self, work: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let wait = tokio::time::timeout(self.acquire_timeout, self.slots.clone().acquire_owned());
        let permit = match wait.await {
            Ok(Ok(permit)) => permit,
            _ => return Err(StoreError::Unavailable("no free database slot".into()).into()),
        };
        let pool = self.pool.clone();
        let span = tracing::Span::current();
        let result = actix_web::rt::task::spawn_blocking(move || {
            let _entered = span.enter();
            let _permit = permit;
            let mut conn = checkout(&pool)?;
            let done = work(&mut conn);
            conn.worked(done.is_ok());
            done
        })
        .await;
        result.map_err(|join| StoreError::Unavailable(Box::new(join)))?
    }

    /// Runs `work` in one transaction: all of it is committed, or none.
    ///
    /// On SQLite the transaction takes the write lock at `BEGIN IMMEDIATE`: a deferred one that
    /// reads and then writes fails outright when another writer got there first, whereas an
    /// immediate one waits its turn (busy_timeout).
    pub async fn transaction<T, E, F>(&self, work: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.transaction_begun(Begin::Write, work).await
    }

    /// Runs `work` in one read-only transaction that sees the database as it was at its first
    /// read, whatever commits meanwhile: for reads that must agree with one another (the
    /// export's census and its rows). PostgreSQL: REPEATABLE READ, READ ONLY; SQLite: a
    /// deferred transaction, whose first read fixes its view of the WAL.
    pub async fn snapshot<T, E, F>(&self, work: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.transaction_begun(Begin::Snapshot, work).await
    }

    async fn transaction_begun<T, E, F>(&self, begin: Begin, work: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.run(move |conn| in_transaction(conn, begin, work))
            .await
    }

    /// True when a connection can be had and answers a trivial query.
    pub async fn is_ready(&self) -> bool {
        self.run(|conn| -> Result<(), StoreError> {
            diesel::sql_query("SELECT 1").execute(conn)?;
            Ok(())
        })
        .await
        .is_ok()
    }

    pub fn pool_state(&self) -> PoolState {
        let state = self.pool.state();
        PoolState {
            size: state.connections,
            idle: state.idle_connections,
            max: self.pool.max_size(),
        }
    }

    /// Brings the schema up to date; safe to run from several processes at once.
    pub fn migrate(&self) -> Result<(), StoreError> {
        let mut conn = checkout(&self.pool)?;
        run_migrations(&mut conn)
    }
}

/// Work that one process at a time may do on a shared PostgreSQL database, each with its own
/// advisory-lock key.
#[derive(Clone, Copy, Debug)]
pub enum Exclusive {
    Migrations = 7_290_351,
    /// The sweep of the flags that time raises.
    Sweep = 7_290_352,
}

/// Runs `work` on `conn` unless another process is doing the same: on PostgreSQL under a
/// session-level advisory lock, released when `work` ends — or with the connection, when the
/// process holding it dies — and `None` when another session holds it. SQLite is served by
/// one process: `work` always runs.
pub fn exclusively<T>(
    conn: &mut DbConnection,
    lock: Exclusive,
    work: impl FnOnce(&mut DbConnection) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    if matches!(conn, DbConnection::Sqlite(_)) {
        return work(conn).map(Some);
    }
    #[derive(QueryableByName)]
    struct Taken {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        taken: bool,
    }
    let key = lock as i64;
    let taken: Taken = diesel::sql_query(format!("SELECT pg_try_advisory_lock({key}) AS taken"))
        .get_result(conn)?;
    if !taken.taken {
        return Ok(None);
    }
    let done = work(conn);
    let unlocked = conn.batch_execute(&format!("SELECT pg_advisory_unlock({key})"));
    // The work's own error first; an unlock that fails means the connection is gone, and
    // the lock with it.
    let done = done?;
    unlocked?;
    Ok(Some(done))
}

fn checkout(pool: &Pool<Manager>) -> Result<PooledConnection<Manager>, StoreError> {
    pool.get().map_err(|e| StoreError::Unavailable(Box::new(e)))
}

fn run_migrations(conn: &mut DbConnection) -> Result<(), StoreError> {
    let failed = |e: Box<dyn std::error::Error + Send + Sync>| StoreError::Migration(e.to_string());
    match conn {
        DbConnection::Postgres(pg) => {
            // Several API processes may start together; one migrates while the others wait.
            let key = Exclusive::Migrations as i64;
            pg.batch_execute(&format!("SELECT pg_advisory_lock({key})"))?;
            let outcome = pg.run_pending_migrations(POSTGRES_MIGRATIONS).map(drop);
            pg.batch_execute(&format!("SELECT pg_advisory_unlock({key})"))?;
            outcome.map_err(failed)
        }
        DbConnection::Sqlite(lite) => lite
            .run_pending_migrations(SQLITE_MIGRATIONS)
            .map(drop)
            .map_err(failed),
    }
}

/// The connection string, with `application_name` added to a PostgreSQL URL that does not
/// name one already (an operator's own name wins).
fn named(url: &DatabaseUrl, application_name: &str) -> String {
    let raw = url.connection_string();
    match url {
        DatabaseUrl::Postgres(_) if !raw.contains("application_name=") => {
            let joint = if raw.contains('?') { '&' } else { '?' };
            format!("{raw}{joint}application_name={application_name}")
        }
        DatabaseUrl::Postgres(_) | DatabaseUrl::Sqlite(_) => raw,
    }
}

/// Per-connection settings that SQLite does not remember between connections.
#[derive(Debug)]
struct SessionSettings;

impl CustomizeConnection<Pooled, diesel::r2d2::Error> for SessionSettings {
    fn on_acquire(&self, conn: &mut Pooled) -> Result<(), diesel::r2d2::Error> {
        let settings = match conn.connection {
            // WAL lets readers proceed during a write; FULL syncs the log at every commit, so
            // a write answered 2xx survives the machine losing power (NORMAL would keep it
            // through a process crash only; its cost is in the README); busy_timeout makes a
            // writer wait for another instead of failing at once.
            DbConnection::Sqlite(_) => {
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                 PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;"
            }
            DbConnection::Postgres(_) => "SET TIME ZONE 'UTC'",
        };
        conn.connection
            .batch_execute(settings)
            .map_err(diesel::r2d2::Error::QueryError)
    }
}

/// How long after a connection last did its work it is handed out untested: HikariCP's "alive
/// bypass window", with its default. A connection in steady use costs no `SELECT 1` round trip
/// per check-out (three of a timeline read's statements were those); one idle for longer — the
/// one a database restart or a network cut may have broken meanwhile — is tested first, and
/// replaced when the test fails. So is one whose last work failed, whatever the failure: diesel
/// marks a connection broken (and r2d2 drops it) when libpq reports it lost, but not every
/// failure of a dead connection looks like that, and one that went back to the pool trusted
/// would, under load, go out again untested, failing request after request. A connection that
/// breaks within the window fails the one request on it (503, to be retried).
const UNTESTED_AFTER_USE: Duration = Duration::from_millis(500);

/// diesel's connection manager, skipping the check-out test within [`UNTESTED_AFTER_USE`] of
/// a connection's last successful work.
#[derive(Debug)]
pub struct Manager(ConnectionManager<DbConnection>);

/// A pooled connection, and when it last did its work without an error (none: its last work
/// failed, and it is tested before it is used again).
pub struct Pooled {
    connection: DbConnection,
    answered: Option<std::time::Instant>,
}

impl Pooled {
    /// Records how the connection's work went: trusted for a moment after work that succeeded,
    /// not at all after work that failed — whatever failed it, the connection may be dead.
    fn worked(&mut self, succeeded: bool) {
        self.answered = succeeded.then(std::time::Instant::now);
    }
}

impl std::ops::Deref for Pooled {
    type Target = DbConnection;
    fn deref(&self) -> &DbConnection {
        &self.connection
    }
}

impl std::ops::DerefMut for Pooled {
    fn deref_mut(&mut self) -> &mut DbConnection {
        &mut self.connection
    }
}

impl diesel::r2d2::ManageConnection for Manager {
    type Connection = Pooled;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<Pooled, Self::Error> {
        Ok(Pooled {
            // Its session settings (`SessionSettings`) are a statement it answers next.
            connection: self.0.connect()?,
            answered: Some(std::time::Instant::now()),
        })
    }

    fn is_valid(&self, conn: &mut Pooled) -> Result<(), Self::Error> {
        if conn
            .answered
            .is_some_and(|at| at.elapsed() < UNTESTED_AFTER_USE)
        {
            return Ok(());
        }
        self.0.is_valid(&mut conn.connection)
    }

    fn has_broken(&self, conn: &mut Pooled) -> bool {
        self.0.has_broken(&mut conn.connection)
    }
}

/// A patient's clinical record as stored (a course, a session, an assessment, a side effect):
/// what every kind has, and the queries every kind answers, so that creating, reading,
/// listing and changing one is written once (`records`).
pub trait Stored: Clone + Send + 'static {
    /// What a flag on a record of this kind names as its `record_type`.
    const FLAGGED: crate::domain::flags::FlaggedRecord;
    type Id: Copy + PartialEq + std::fmt::Display + Send + 'static;
    fn id(&self) -> Self::Id;
    fn patient_id(&self) -> PatientId;
    fn version(&self) -> i32;
    /// The hash of the create request it was made from (idempotent creates).
    fn body_hash(&self) -> &str;
    /// What a range list orders by: a session's start, an assessment's time taken, a side
    /// effect's onset, a course's planning.
    fn own_time(&self) -> NaiveDateTime;
    fn updated_at(&self) -> NaiveDateTime;
    /// Where its latest change stands in the sync order.
    fn change_seq(&self) -> i64;
    fn find(conn: &mut DbConnection, scope: &Scope, id: Self::Id) -> Result<Self, StoreError>;
    /// Inserts the row unless its id is taken ([`inserted_unless_taken`]): whether it did.
    fn insert(conn: &mut DbConnection, row: &Self) -> Result<bool, StoreError>;
    /// Replaces the row when the stored version is `expected`; [`StoreError::Stale`] if not.
    fn replace(conn: &mut DbConnection, row: &Self, expected: i32) -> Result<(), StoreError>;
    fn list(
        conn: &mut DbConnection,
        patient: PatientId,
        window: &Window,
        page: &Page,
    ) -> Result<Vec<Self>, StoreError>;
}

/// A record that can be marked entered in error: kept, but excluded from every figure.
pub trait Correctable: Stored {
    fn is_entered_in_error(&self) -> bool;
    /// The record marked, with its version bumped.
    fn marked(self, reason: String, now: NaiveDateTime) -> Self;
}

macro_rules! stored {
    ($($module:ident::$row:ident: $id:ty, $time:ident, $flagged:ident);+ $(;)?) => {$(
        impl Stored for $module::$row {
            const FLAGGED: crate::domain::flags::FlaggedRecord =
                crate::domain::flags::FlaggedRecord::$flagged;
            type Id = $id;
            fn id(&self) -> $id {
                self.id
            }
            fn patient_id(&self) -> PatientId {
                self.patient_id
            }
            fn version(&self) -> i32 {
                self.version
            }
            fn body_hash(&self) -> &str {
                &self.body_hash
            }
            fn own_time(&self) -> NaiveDateTime {
                self.$time
            }
            fn updated_at(&self) -> NaiveDateTime {
                self.updated_at
            }
            fn change_seq(&self) -> i64 {
                self.change_seq
            }
            fn find(conn: &mut DbConnection, scope: &Scope, id: $id) -> Result<Self, StoreError> {
                $module::find(conn, scope, id)
            }
            fn insert(conn: &mut DbConnection, row: &Self) -> Result<bool, StoreError> {
                $module::insert(conn, row)
            }
            fn replace(conn: &mut DbConnection, row: &Self, expected: i32) -> Result<(), StoreError> {
                $module::replace(conn, row, expected)
            }
            fn list(
                conn: &mut DbConnection,
                patient: PatientId,
                window: &Window,
                page: &Page,
            ) -> Result<Vec<Self>, StoreError> {
                $module::list(conn, patient, window, page)
            }
        }
    )+};
}

stored!(
    courses::CourseRow: CourseId, created_at, Course;
    sessions::SessionRow: SessionId, started_at, Session;
    assessments::AssessmentRow: AssessmentId, taken_at, Assessment;
    side_effects::SideEffectRow: SideEffectId, onset_at, SideEffect;
);

macro_rules! correctable {
    ($($row:ty),+) => {$(
        impl Correctable for $row {
            fn is_entered_in_error(&self) -> bool {
                self.deleted_at.is_some()
            }
            fn marked(self, reason: String, now: NaiveDateTime) -> Self {
                Self {
                    deleted_at: Some(now),
                    deleted_reason: Some(reason),
                    updated_at: now,
                    version: self.version + 1,
                    ..self
                }
            }
        }
    )+};
}

correctable!(
    sessions::SessionRow,
    side_effects::SideEffectRow,
    assessments::AssessmentRow
);

#[cfg(test)]
mod tests {
    use super::*;

    /// The columns a `Selectable` reads, by name, as diesel writes its select clause.
    pub(super) fn selected<Q: diesel::query_builder::QueryFragment<diesel::sqlite::Sqlite>>(
        query: Q,
    ) -> Vec<String> {
        let sql = diesel::debug_query::<diesel::sqlite::Sqlite, _>(&query).to_string();
        let clause = sql
            .strip_prefix("SELECT ")
            .and_then(|s| s.split(" FROM ").next())
            .unwrap();
        clause
            .split(", ")
            .map(|c| {
                c.rsplit('.')
                    .next()
                    .unwrap()
                    .trim_matches('`')
                    .trim_matches('"')
                    .to_owned()
            })
            .collect()
    }

    fn postgres(url: &str) -> DatabaseUrl {
        DatabaseUrl::Postgres(crate::config::Secret::new(url.to_owned()))
    }

    #[test]
    fn a_pool_names_its_postgres_connections_unless_the_url_does() {
        let cases = [
            ("postgres://h/db", "postgres://h/db?application_name=ko"),
            (
                "postgres://h/db?sslmode=require",
                "postgres://h/db?sslmode=require&application_name=ko",
            ),
            (
                "postgres://h/db?application_name=theirs",
                "postgres://h/db?application_name=theirs",
            ),
        ];
        for (url, wanted) in cases {
            assert_eq!(named(&postgres(url), "ko"), wanted, "{url}");
        }
        let file = DatabaseUrl::Sqlite("data/ko.db".into());
        assert_eq!(named(&file, "ko"), "data/ko.db");
    }

    /// issue 20 (3): every SQLite connection syncs the log at each commit (FULL, 2), so a write
    /// acknowledged survives the machine losing power; and writes in WAL mode.
    #[test]
    fn every_sqlite_connection_syncs_each_commit() {
        #[derive(QueryableByName)]
        struct Pragma {
            #[diesel(sql_type = diesel::sql_types::Text)]
            value: String,
        }
        let dir = tempfile::tempdir().unwrap();
        let db = Db::new(
            &DatabaseUrl::Sqlite(dir.path().join("ko.db")),
            2,
            Duration::from_secs(2),
        );
        let mut conn = checkout(&db.pool).unwrap();
        let mut pragma = |name: &str| {
            let row: Pragma = diesel::sql_query(format!(
                "SELECT CAST({name} AS TEXT) AS value FROM pragma_{name}"
            ))
            .get_result(&mut **conn)
            .unwrap();
            row.value
        };
        assert_eq!(pragma("synchronous"), "2", "FULL");
        assert_eq!(pragma("journal_mode"), "wal");
    }
}
