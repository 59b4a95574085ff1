//! Logging: the process log with `tracing` (text for people, JSON for log shippers, on
//! stderr), and the access log (`access`: one line per request or TCP connection, written by
//! its own thread, `writer`), with the request ids it shares with upstreams (`request_id`).

pub mod access;
pub mod format;
pub mod request_id;
pub mod writer;

use tracing_subscriber::EnvFilter;

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the global subscriber; the level comes from `--log-level`, else `RUST_LOG`, else config.
pub fn init(cli_level: Option<&str>, config_level: &str, format: LogFormat) -> Result<(), String> {
    let directive = match (
        cli_level,
        std::env::var("RUST_LOG").ok().filter(|s| !s.is_empty()),
    ) {
        (Some(l), _) => l.to_string(),
        (None, Some(env)) => env,
        (None, None) => config_level.to_string(),
    };
    let filter = EnvFilter::builder()
        .parse(&directive)
        .map_err(|e| format!("invalid log level {directive:?}: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    result.map_err(|e| format!("cannot install the logger: {e}"))
}
