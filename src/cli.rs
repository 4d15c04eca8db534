//! The command line: `serve` (the default), `migrate`, `openapi`.

use clap::{Parser, Subcommand};

use std::path::PathBuf;

use crate::config::{DatabaseUrl, Settings};
use crate::startup::{self, Application};
use crate::store::backup;
use crate::{accounts, demo, openapi, telemetry};

#[derive(Parser)]
#[command(name = "ketamine-outcomes", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print the OpenAPI document.
    Openapi,
    /// Fill the database with a deterministic synthetic clinic and print a sign-in for each role.
    Demo {
        /// The same seed gives the same clinic.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Consenting patients of the research cohort, over three clinics.
        #[arg(long, default_value_t = demo::COHORT)]
        cohort: usize,
    },
    /// Copy the embedded (SQLite) database to a new file while the server goes on serving.
    Backup {
        /// The file to write; refused if it exists.
        #[arg(long)]
        to: PathBuf,
    },
    /// Replace the embedded (SQLite) database with a backup: refused while a server uses the
    /// database, and for a file that fails its integrity check or comes from a newer release.
    /// The database replaced is kept beside it.
    Restore {
        #[arg(long)]
        from: PathBuf,
    },
    /// Manage accounts.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create an account. The password is read from standard input (or a prompt on a
    /// terminal), never from an argument, so it stays out of shell history and `ps`.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long, value_parser = ["admin", "clinician", "researcher"])]
        role: String,
        /// The clinic of a clinician.
        #[arg(long)]
        clinic: Option<uuid::Uuid>,
    },
}

/// Runs the chosen command; the error is printed as one line by `main`.
pub fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    let command = cli.command.unwrap_or(Command::Serve);
    if let Command::Openapi = command {
        print!("{}", openapi::document());
        return Ok(());
    }
    let settings = Settings::from_env()?;
    telemetry::init(settings.log_format);
    match command {
        Command::Serve => serve(&settings),
        Command::Migrate => {
            startup::open_database(&settings, &settings.database_url)?.migrate()?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::User {
            command:
                UserCommand::Create {
                    email,
                    role,
                    clinic,
                },
        } => {
            let password = read_password()?;
            let db = startup::open_database(&settings, &settings.database_url)?;
            db.migrate()?;
            let id =
                accounts::create_staff_account(&db, &settings, &email, &role, clinic, &password)?;
            println!("created {role} account {id} for {email}");
            Ok(())
        }
        Command::Demo { seed, cohort } => {
            let sign_ins = demo::run(&settings, seed, cohort)?;
            println!("Demo clinic written (seed {seed}). Sign in with:");
            for s in sign_ins {
                println!("  {:<10} {:<32} {}", s.role, s.email, s.password);
            }
            Ok(())
        }
        Command::Backup { to } => {
            let db = sqlite_file(&settings)?;
            let migrations = backup::backup(&db, &to)?;
            println!(
                "backed up {} to {} (checked; {migrations} migrations)",
                db.display(),
                to.display()
            );
            Ok(())
        }
        Command::Restore { from } => {
            let db = sqlite_file(&settings)?;
            let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
            let kept = backup::restore(&db, &from, &stamp)?;
            println!("restored {} from {}", db.display(), from.display());
            if let Some(kept) = kept {
                println!("the database it replaced is kept as {}", kept.display());
            }
            Ok(())
        }
        Command::Openapi => unreachable!("handled before settings are read"),
    }
}

fn serve(settings: &Settings) -> Result<(), Box<dyn std::error::Error>> {
    actix_web::rt::System::new().block_on(async {
        let app = Application::build(settings)?;
        app.run_until_stopped().await?;
        tracing::info!("stopped");
        Ok(())
    })
}

/// The embedded database's file: backup and restore here are SQLite's.
fn sqlite_file(settings: &Settings) -> Result<PathBuf, Box<dyn std::error::Error>> {
    match &settings.database_url {
        DatabaseUrl::Sqlite(path) => Ok(path.clone()),
        DatabaseUrl::Postgres(_) => {
            Err("backup and restore are for the embedded SQLite database; \
            on PostgreSQL use pg_dump and pg_restore (README, Operations)"
                .into())
        }
    }
}

fn read_password() -> std::io::Result<String> {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        rpassword::prompt_password("Password (12-128 characters): ")
    } else {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    }
}
