//! The results: JSON (schema in bench/README.md) and the text summary on stdout.

use crate::args::{Mode, Plan};
use crate::engine::Outcome;
use crate::stats::ERROR_NAMES;
use serde_json::{json, Map, Value};
use std::fmt::Write as _;

/// Achieved open-loop rate below this share of the requested one earns a warning.
pub const RATE_WARN: f64 = 0.97;

/// Steps per halving of the distance to 100% in `latency_percentiles`.
const TICKS_PER_HALF: u32 = 5;

/// `95us`, `1.23ms`, `2.50s`.
pub fn fmt_us(us: u64) -> String {
    if us < 1000 {
        format!("{us}us")
    } else if us < 1_000_000 {
        format!("{:.2}ms", us as f64 / 1e3)
    } else {
        format!("{:.2}s", us as f64 / 1e6)
    }
}

/// `512B`, `1.50KB`, `12.34MB` (powers of 1024, as wrk prints).
pub fn fmt_bytes(b: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = b;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{v:.0}B")
    } else {
        format!("{v:.2}{}", UNITS[i])
    }
}

fn per_sec(n: f64, secs: f64) -> f64 {
    if secs > 0.0 {
        n / secs
    } else {
        0.0
    }
}

/// The results as JSON.
pub fn results_json(plan: &Plan, o: &Outcome) -> Value {
    let h = &o.hist;
    let secs = o.duration.as_secs_f64();
    let rps = per_sec(o.requests as f64, secs);
    let q = |x: f64| h.value_at_quantile(x);
    let latency = json!({
        "min": h.min(),
        "mean": h.mean(),
        "stdev": h.stdev(),
        "p50": q(0.5),
        "p90": q(0.9),
        "p99": q(0.99),
        "p999": q(0.999),
        "p9999": q(0.9999),
        "max": h.max(),
    });
    let percentiles: Vec<Value> = if h.is_empty() {
        Vec::new()
    } else {
        h.iter_quantiles(TICKS_PER_HALF)
            .map(|v| {
                json!({
                    "percentile": v.quantile_iterated_to() * 100.0,
                    "latency_us": v.value_iterated_to(),
                })
            })
            .collect()
    };
    let timeline: Vec<Value> = o
        .timeline
        .iter()
        .map(|s| {
            json!({
                "t_s": s.t_s,
                "requests": s.requests,
                "errors": s.errors,
                "p99_us": s.p99_us,
                "bytes": s.bytes,
            })
        })
        .collect();
    let mut status = Map::new();
    // Slot 0 counts tcp:// rounds, which have no status.
    for (code, &n) in o.status.iter().enumerate().skip(100) {
        if n > 0 {
            status.insert(code.to_string(), json!(n));
        }
    }
    let mut errors = Map::new();
    for (name, &n) in ERROR_NAMES.iter().zip(&o.errors) {
        errors.insert((*name).to_string(), json!(n));
    }
    let mut out = json!({
        "url": plan.url,
        "mode": plan.mode_name(),
        "driver": o.driver.driver.to_string(),
        "threads": plan.threads,
        "connections": plan.connections,
        "pipeline": plan.pipeline,
        "warmup_s": plan.warmup.as_secs_f64(),
        "requests": o.requests,
        "duration_s": secs,
        "requests_per_sec": rps,
        "bytes_per_sec": per_sec(o.bytes as f64, secs),
        "latency_us": latency,
        "latency_percentiles": percentiles,
        "timeline": timeline,
        "status": status,
        "errors": errors,
        "cpu": {
            "user_s": o.cpu_user,
            "sys_s": o.cpu_sys,
            "us_per_request": if o.requests > 0 {
                (o.cpu_user + o.cpu_sys) * 1e6 / o.requests as f64
            } else {
                0.0
            },
        },
    });
    if let Some(rate) = plan.rate() {
        out["rate"] = json!({ "requested": rate, "achieved": rps });
    }
    if let Mode::Tcp { size } = plan.mode {
        out["tcp"] = json!({
            "size": size,
            "conns_done": o.requests,
            "bytes_per_sec": per_sec(o.bytes as f64, secs),
            "conn_time_us": { "p50": q(0.5), "p99": q(0.99), "max": h.max() },
        });
    }
    out
}

/// The text summary, wrk style.
pub fn summary(plan: &Plan, o: &Outcome, j: &Value) -> String {
    let mut s = String::new();
    let h = &o.hist;
    let secs = o.duration.as_secs_f64();
    let mode = match plan.mode_name() {
        "closed" => "closed loop",
        "open" => "open loop",
        _ => "tcp echo",
    };
    let _ = writeln!(
        s,
        "coregate-bench {} {} ({mode}, {})",
        env!("CARGO_PKG_VERSION"),
        plan.url,
        o.driver.driver
    );
    let mut shape = format!(
        "  {} threads, {} connections",
        plan.threads, plan.connections
    );
    if plan.pipeline > 1 {
        let _ = write!(shape, ", pipeline {}", plan.pipeline);
    }
    if let Mode::Tcp { size } = plan.mode {
        let _ = write!(shape, ", {} per connection", fmt_bytes(size as f64));
    }
    let _ = write!(shape, ", {secs:.2}s measured");
    if !plan.warmup.is_zero() {
        let _ = write!(shape, " after {:.2}s warm-up", plan.warmup.as_secs_f64());
    }
    let _ = writeln!(s, "{shape}\n");
    let what = if matches!(plan.mode, Mode::Tcp { .. }) {
        "Conn time"
    } else {
        "Latency"
    };
    let _ = writeln!(
        s,
        "  {what:<10}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}",
        "p50", "p90", "p99", "p99.9", "p99.99", "max", "mean", "stdev"
    );
    let q = |x: f64| fmt_us(h.value_at_quantile(x));
    let _ = writeln!(
        s,
        "  {:<10}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}\n",
        "",
        q(0.5),
        q(0.9),
        q(0.99),
        q(0.999),
        q(0.9999),
        fmt_us(h.max()),
        fmt_us(h.mean().round() as u64),
        fmt_us(h.stdev().round() as u64)
    );
    let unit = if matches!(plan.mode, Mode::Tcp { .. }) {
        "connections"
    } else {
        "requests"
    };
    let _ = writeln!(
        s,
        "  {} {unit} in {secs:.2}s, {} read",
        o.requests,
        fmt_bytes(o.bytes as f64)
    );
    let label = if matches!(plan.mode, Mode::Tcp { .. }) {
        "Conns/sec"
    } else {
        "Requests/sec"
    };
    let _ = writeln!(s, "  {label}: {:>12.2}", per_sec(o.requests as f64, secs));
    let _ = writeln!(
        s,
        "  Transfer/sec: {:>12}",
        fmt_bytes(per_sec(o.bytes as f64, secs))
    );
    if !matches!(plan.mode, Mode::Tcp { .. }) {
        let codes: Vec<String> = o
            .status
            .iter()
            .enumerate()
            .filter(|(_, &n)| n > 0)
            .map(|(c, n)| format!("{c}: {n}"))
            .collect();
        let codes = if codes.is_empty() {
            "none".to_string()
        } else {
            codes.join(", ")
        };
        let _ = writeln!(s, "  Status:       {codes}");
    }
    let errs: Vec<String> = ERROR_NAMES
        .iter()
        .zip(&o.errors)
        .map(|(n, c)| format!("{n} {c}"))
        .collect();
    let _ = writeln!(s, "  Errors:       {}", errs.join(", "));
    if let Some(rate) = plan.rate() {
        let achieved = j["rate"]["achieved"].as_f64().unwrap_or(0.0);
        let _ = writeln!(
            s,
            "  Rate:         requested {rate:.0}/s, achieved {achieved:.0}/s ({:.1}%)",
            100.0 * achieved / rate
        );
        if let Some(w) = rate_warning(rate, achieved) {
            let _ = writeln!(s, "  {w}");
        }
    }
    let cpu = o.cpu_user + o.cpu_sys;
    let _ = write!(
        s,
        "  CPU:          user {:.2}s, sys {:.2}s",
        o.cpu_user, o.cpu_sys
    );
    if o.requests > 0 {
        let _ = write!(
            s,
            " ({:.2}us per {})",
            cpu * 1e6 / o.requests as f64,
            &unit[..unit.len() - 1]
        );
    }
    s.push('\n');
    s
}

/// The warning when an open-loop run fell short of its rate.
pub fn rate_warning(requested: f64, achieved: f64) -> Option<String> {
    (achieved < RATE_WARN * requested).then(|| {
        format!(
            "WARNING: achieved rate {achieved:.0}/s is below {:.0}% of the requested {requested:.0}/s: \
             the target (or this generator) could not keep up; latencies include the backlog",
            RATE_WARN * 100.0
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(fmt_us(95), "95us");
        assert_eq!(fmt_us(1234), "1.23ms");
        assert_eq!(fmt_us(2_500_000), "2.50s");
        assert_eq!(fmt_bytes(512.0), "512B");
        assert_eq!(fmt_bytes(1536.0), "1.50KB");
        assert!(rate_warning(1000.0, 960.0).is_some());
        assert!(rate_warning(1000.0, 975.0).is_none());
    }
}
