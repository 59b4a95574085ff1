//! coregate-bench: the bundled load generator. HTTP/1.1 closed and open loop (coordinated
//! omission corrected) and a tcp:// echo mode, thread per core on io_uring like the gateway.
//!
//! Exit status: 0 after a completed run (errors are counted, not fatal), 2 on bad arguments,
//! 1 when not a single connection could be made or the run could not start.

mod args;
mod engine;
mod http;
mod output;
mod report;
mod stats;
mod tcp;

use args::{usage_error, Args, Mode, PlanError};
use clap::Parser;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

fn fail(msg: &str) -> ExitCode {
    eprintln!("coregate-bench: {msg}");
    ExitCode::from(1)
}

/// Opens an output file before the run, so a bad path fails at once, not after the load.
fn create(path: Option<&Path>, what: &str) -> Result<Option<File>, String> {
    path.map(|p| File::create(p).map_err(|e| format!("{what} {}: {e}", p.display())))
        .transpose()
}

fn main() -> ExitCode {
    let plan = match Args::parse().plan() {
        Ok(p) => p,
        Err(PlanError::Usage(msg)) => usage_error(&msg),
        Err(PlanError::Resolve(msg)) => return fail(&msg),
    };
    let (json_file, report_file) = match (
        create(plan.json.as_deref(), "--json"),
        create(plan.report.as_deref(), "--report"),
    ) {
        (Ok(j), Ok(r)) => (j, r),
        (Err(e), _) | (_, Err(e)) => return fail(&e),
    };
    let (wire, request_len) = match &plan.mode {
        Mode::Http { request, .. } => (request.bytes.repeat(plan.pipeline), request.bytes.len()),
        Mode::Tcp { .. } => (tcp::pattern(), 0),
    };
    // Shared read-only by every thread for the whole run, and written from directly.
    let wire: &'static [u8] = Box::leak(wire.into_boxed_slice());
    let outcome = match engine::run(plan.clone(), wire, request_len) {
        Ok(o) => o,
        Err(e) => return fail(&e),
    };
    let results = output::results_json(&plan, &outcome);
    print!("{}", output::summary(&plan, &outcome, &results));
    if let Some(rate) = plan.rate() {
        let achieved = results["rate"]["achieved"].as_f64().unwrap_or(0.0);
        if let Some(w) = output::rate_warning(rate, achieved) {
            eprintln!("coregate-bench: {w}");
        }
    }
    if let Some(mut f) = json_file {
        let text = serde_json::to_string_pretty(&results).unwrap_or_default();
        if let Err(e) = f
            .write_all(text.as_bytes())
            .and_then(|()| f.write_all(b"\n"))
        {
            return fail(&format!("--json: {e}"));
        }
    }
    if let Some(mut f) = report_file {
        if let Err(e) = f.write_all(report::render_html(&results).as_bytes()) {
            return fail(&format!("--report: {e}"));
        }
    }
    if !outcome.connected {
        let why = outcome
            .last_connect_error
            .as_deref()
            .unwrap_or("connect timed out");
        return fail(&format!(
            "not a single connection could be made to {}: {why}",
            plan.addr
        ));
    }
    ExitCode::SUCCESS
}
