//! The `coregate` command line (see docs/contract in shared/ and the README).

use clap::{Parser, Subcommand};
use coregate::config::Config;
use coregate::log::LogFormat;
use std::path::PathBuf;
use std::process::ExitCode;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "coregate",
    version,
    about = "Thread-per-core HTTP/1.1 and TCP edge gateway"
)]
struct Cli {
    /// Log level or filter (trace, debug, info, warn, error; or RUST_LOG syntax).
    #[arg(long, global = true, value_name = "LEVEL")]
    log_level: Option<String>,
    /// Log line format.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway in the foreground.
    Run {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a config file and exit, like `nginx -t`.
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Check this host against a config (default: the embedded demo config): io_uring, open
    /// files, accept queues, ephemeral ports, TIME_WAIT, CPUs, tuning drift. Exit 1 on a FAIL.
    Doctor {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Run on the embedded default config: 127.0.0.1:8080, until Ctrl-C.
    Demo {
        /// Run a 5-second load through the demo with coregate-bench, print its summary, and stop.
        #[arg(long)]
        bench: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => {
            match Config::load(&config) {
                Ok(c) => {
                    for key in c.not_yet_enforced() {
                        eprintln!("coregate: warning: {}: {key} is accepted but not enforced by this build", c.source);
                    }
                    println!("coregate: {}: configuration is valid", c.source);
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&e.to_string()),
            }
        }
        Command::Run { config } => match Config::load(&config) {
            Ok(c) => serve(&cli.log_level, cli.log_format, c),
            Err(e) => fail(&e.to_string()),
        },
        Command::Doctor { config } => {
            let loaded = match &config {
                Some(p) => Config::load(p),
                None => Config::parse(coregate::demo::DEMO_CONFIG, coregate::demo::DEMO_SOURCE),
            };
            match loaded {
                Ok(c) => {
                    let mut checks =
                        coregate::doctor::diagnose(&c, &coregate::doctor::Host::read());
                    checks.push(coregate::doctor::tuning_drift());
                    print!("{}", coregate::doctor::render(&checks));
                    let worst = checks.iter().map(|c| c.verdict).max();
                    if worst == Some(coregate::doctor::Verdict::Fail) {
                        ExitCode::FAILURE
                    } else {
                        ExitCode::SUCCESS
                    }
                }
                Err(e) => fail(&e.to_string()),
            }
        }
        Command::Demo { bench } => {
            match Config::parse(coregate::demo::DEMO_CONFIG, coregate::demo::DEMO_SOURCE) {
                Ok(c) => {
                    if let Err(e) = coregate::demo::start_upstreams() {
                        return fail(&e);
                    }
                    if !bench {
                        print!("{}", coregate::demo::banner());
                        return serve(&cli.log_level, cli.log_format, c);
                    }
                    let outcome = match coregate::demo::start_bench() {
                        Ok(outcome) => outcome,
                        Err(e) => return fail(&e),
                    };
                    let served = serve(&cli.log_level, cli.log_format, c);
                    match outcome.join() {
                        Ok(Ok(())) => served,
                        Ok(Err(e)) => fail(&e),
                        Err(_) => fail("the demo bench thread failed"),
                    }
                }
                Err(e) => fail(&format!("embedded demo config is invalid: {e}")),
            }
        }
    }
}

fn serve(level: &Option<String>, format: LogFormat, config: Config) -> ExitCode {
    let missing = config.not_yet_enforced();
    if !missing.is_empty() {
        return fail(&format!(
            "{}: this build does not enforce {} yet; refusing to run rather than ignore it",
            config.source,
            missing.join(", ")
        ));
    }
    if let Err(e) = coregate::log::init(level.as_deref(), &config.log.level, format) {
        return fail(&e);
    }
    match coregate::runtime::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("coregate: error: {msg}");
    ExitCode::FAILURE
}
