//! The embedded database's online backup and its restore (issue 20, part 4). A backup is
//! SQLite's `VACUUM INTO` from a read transaction: one consistent view, taken while the
//! server goes on serving (in WAL mode a reader never blocks a writer). A restore refuses a
//! database a server is using — every pool of the file holds a shared lock on `{file}.lock`,
//! which a restore must take alone — and a file that fails SQLite's integrity check or was
//! migrated by a release this one does not know; the database it replaces is kept beside it.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use diesel::connection::SimpleConnection;
use diesel::migration::MigrationSource;
use diesel::prelude::*;
use diesel::sql_types::Text;
use diesel::sqlite::SqliteConnection;

use super::SQLITE_MIGRATIONS;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0}")]
    Refused(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Database {
        path: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn database<E: std::error::Error + Send + Sync + 'static>(
    path: &Path,
) -> impl FnOnce(E) -> BackupError + '_ {
    move |source| BackupError::Database {
        path: path.display().to_string(),
        source: Box::new(source),
    }
}

/// The lock file every pool of the database file `db` shares while it is open.
fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

fn open_lock(db: &Path) -> Result<File, BackupError> {
    let path = lock_path(db);
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(io(&path))
}

/// A shared hold on the database file `db`, kept by every pool while it lives: a restore
/// cannot replace the file under it.
pub fn hold_shared(db: &Path) -> Result<File, BackupError> {
    let lock = open_lock(db)?;
    lock.lock_shared().map_err(io(&lock_path(db)))?;
    Ok(lock)
}

fn connect(path: &Path) -> Result<SqliteConnection, BackupError> {
    let url = path
        .to_str()
        .ok_or_else(|| BackupError::Refused(format!("{}: not a UTF-8 path", path.display())))?;
    let mut conn = SqliteConnection::establish(url).map_err(database(path))?;
    conn.batch_execute("PRAGMA busy_timeout = 5000;")
        .map_err(database(path))?;
    Ok(conn)
}

#[derive(QueryableByName)]
struct Line {
    #[diesel(sql_type = Text)]
    line: String,
}

/// SQLite's integrity check of the file, and the migrations it has run: refused when either
/// fails, or when a migration is one this release does not know (a newer release's file).
fn check(conn: &mut SqliteConnection, path: &Path) -> Result<usize, BackupError> {
    let verdict: Vec<Line> =
        diesel::sql_query("SELECT integrity_check AS line FROM pragma_integrity_check")
            .load(conn)
            .map_err(|_| {
                BackupError::Refused(format!("{}: not an SQLite database", path.display()))
            })?;
    if verdict.len() != 1 || verdict[0].line != "ok" {
        let said: Vec<_> = verdict.into_iter().take(3).map(|l| l.line).collect();
        return Err(BackupError::Refused(format!(
            "{}: fails SQLite's integrity check: {}",
            path.display(),
            said.join("; ")
        )));
    }
    let applied: Vec<Line> =
        diesel::sql_query("SELECT version AS line FROM __diesel_schema_migrations")
            .load(conn)
            .map_err(|_| {
                BackupError::Refused(format!(
                    "{}: not a ketamine-outcomes database (no migrations)",
                    path.display()
                ))
            })?;
    let known: Vec<String> =
        MigrationSource::<diesel::sqlite::Sqlite>::migrations(&SQLITE_MIGRATIONS)
            .map_err(|source| BackupError::Database {
                path: path.display().to_string(),
                source,
            })?
            .iter()
            .map(|m| m.name().version().to_string())
            .collect();
    if let Some(newer) = applied.iter().find(|v| !known.contains(&v.line)) {
        return Err(BackupError::Refused(format!(
            "{}: was migrated by a release this one does not know ({}): restore it with that release",
            path.display(),
            newer.line
        )));
    }
    Ok(applied.len())
}

/// Writes a consistent copy of the live database `db` to `to` (a new file, mode 0600), while
/// the server goes on serving, and checks it; the migrations it holds.
pub fn backup(db: &Path, to: &Path) -> Result<usize, BackupError> {
    if to.exists() {
        return Err(BackupError::Refused(format!(
            "{}: exists already",
            to.display()
        )));
    }
    let target = to
        .to_str()
        .ok_or_else(|| BackupError::Refused(format!("{}: not a UTF-8 path", to.display())))?;
    let mut live = connect(db)?;
    diesel::sql_query("VACUUM INTO ?")
        .bind::<Text, _>(target)
        .execute(&mut live)
        .map_err(database(db))?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o600)).map_err(io(to))?;
    check(&mut connect(to)?, to)
}

/// Replaces the database `db` with the backup `from`, once no server uses it and the backup
/// passes its checks; the database replaced (and its WAL) is kept as
/// `{db}.before-restore-{stamp}`. Returns where it was kept, if there was one.
pub fn restore(db: &Path, from: &Path, stamp: &str) -> Result<Option<PathBuf>, BackupError> {
    if !from.is_file() {
        return Err(BackupError::Refused(format!(
            "{}: no such file",
            from.display()
        )));
    }
    let lock = open_lock(db)?;
    if lock.try_lock().is_err() {
        return Err(BackupError::Refused(format!(
            "{}: a server is using this database: stop every process that serves it first",
            db.display()
        )));
    }
    check(&mut connect(from)?, from)?;
    let staged = with_suffix(db, ".restoring");
    std::fs::copy(from, &staged).map_err(io(&staged))?;
    std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600))
        .map_err(io(&staged))?;
    File::open(&staged)
        .and_then(|f| f.sync_all())
        .map_err(io(&staged))?;
    let kept = db
        .exists()
        .then(|| with_suffix(db, &format!(".before-restore-{stamp}")));
    if let Some(kept) = &kept {
        for suffix in ["", "-wal", "-shm"] {
            let (file, aside) = (with_suffix(db, suffix), with_suffix(kept, suffix));
            if file.exists() {
                std::fs::rename(&file, &aside).map_err(io(&file))?;
            }
        }
    }
    std::fs::rename(&staged, db).map_err(io(db))?;
    drop(lock);
    Ok(kept)
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}
