use clap::Parser;

/// mimalloc, not glibc's malloc: glibc gives a thread that meets a busy arena one of its own, up
/// to eight per core, and an arena keeps what it once held; the research reads — a few MiB
/// each, on whichever blocking thread runs them — grew the server by 186 MiB over a 10-minute
/// soak (`bench/RESULTS.md`), a growth that stopped with the arenas capped at two.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
