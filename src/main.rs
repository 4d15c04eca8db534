use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = ketamine_outcomes::cli::Cli::parse();
    match ketamine_outcomes::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("ketamine-outcomes: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}
