//! The command line: `serve` (the default), `migrate`, `openapi`.

use clap::{Parser, Subcommand};

use crate::config::Settings;
use crate::startup::{self, Application};
use crate::{openapi, telemetry};

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
        Command::Openapi => unreachable!("handled before settings are read"),
    }
}

fn serve(settings: &Settings) -> Result<(), Box<dyn std::error::Error>> {
    actix_web::rt::System::new().block_on(async {
        let app = Application::build(settings)?;
        tracing::info!(address = %settings.bind_address.ip(), port = app.port(), "serving");
        app.run_until_stopped().await?;
        tracing::info!("stopped");
        Ok(())
    })
}
