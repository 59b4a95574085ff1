//! The HTML report: one self-contained page (inline CSS and SVG, no network assets) rendered
//! from the results JSON written with `--json`; the raw results are embedded in the page too.
//! Every field may be missing, null or of the wrong type: what is present is rendered.

mod chart;
mod format;

use chart::{percentile_chart, timeline_chart};
use format::*;
use serde_json::Value;
use std::fmt::Write;

const CSS: &str = ":root{--fg:#1d2330;--mu:#5b6577;--ln:#dde2ea;--bg:#f6f7f9;--blue:#2f6fdf;\
--red:#d93025;--amb:#b06000;--org:#e8710a}*{box-sizing:border-box}body{margin:0 auto;\
max-width:1100px;padding:24px;color:var(--fg);background:#fff;font:14px/1.45 system-ui,\
-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif}h1{font-size:22px;margin:0 0 2px}\
h2{font-size:16px;margin:28px 0 8px;padding-bottom:4px;border-bottom:1px solid var(--ln)}\
h3{font-size:14px;margin:12px 0 4px}code,.url{font-family:ui-monospace,Menlo,Consolas,monospace}\
.url{color:var(--mu);word-break:break-all}.meta span{margin-right:16px}.badge{padding:1px 8px;\
border-radius:10px;background:#e8effc;color:var(--blue);font-weight:600}.cards{display:grid;\
grid-template-columns:repeat(auto-fill,minmax(165px,1fr));gap:10px;margin-top:16px}\
.card{border:1px solid var(--ln);border-radius:8px;padding:8px 12px;background:var(--bg)}\
.card .k{font-size:11px;color:var(--mu);text-transform:uppercase;letter-spacing:.05em}\
.card .v{font-size:21px;font-weight:600;font-variant-numeric:tabular-nums;white-space:nowrap}\
.card .s{font-size:12px;color:var(--mu)}.bad{border-color:var(--red)!important;background:#fdecea\
!important}.bad .v,tr.bad td{color:var(--red)}.warn{border-color:var(--amb)!important;\
background:#fff4e0!important}.warn .v,tr.warn td{color:var(--amb)}.banner{margin-top:12px;\
padding:8px 12px;border:1px solid;border-radius:8px}svg{display:block;width:100%;height:auto}\
svg text{font-size:12px;fill:var(--mu)}.gl{stroke:var(--ln)}.ax{stroke:#8a93a3}\
.lg{font-size:12px;color:var(--mu)}.lg i{display:inline-block;width:12px;height:12px;\
margin:0 4px 0 14px;vertical-align:-2px;border-radius:2px}.tables{display:grid;\
grid-template-columns:repeat(auto-fit,minmax(300px,1fr));gap:4px 28px}table{width:100%;\
border-collapse:collapse;font-variant-numeric:tabular-nums}th,td{padding:3px 8px;\
text-align:left;border-bottom:1px solid var(--ln)}th{color:var(--mu);font-weight:600}\
td+td,th+th{text-align:right}footer{margin-top:28px;font-size:12px;color:var(--mu)}\
@media print{body{max-width:none;padding:0}section,.card,table{break-inside:avoid}\
*{-webkit-print-color-adjust:exact;print-color-adjust:exact}}";

/// Renders a self-contained HTML report (no network assets: inline CSS, inline SVG/JS) from the
/// results JSON the tool writes with --json.
pub fn render_html(results: &Value) -> String {
    // A run that completed nothing reports zero latencies: leave them out rather than draw 0 µs.
    let mut view = Value::Null;
    let r = if has_latency(results) {
        results
    } else {
        view.clone_from(results);
        if let Some(o) = view.as_object_mut() {
            o.remove("latency_us");
            o.remove("latency_percentiles");
        }
        &view
    };
    let mut h = String::with_capacity(64 * 1024);
    let url = esc(&text(r.get("url")).unwrap_or_default());
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" \
         content=\"width=device-width,initial-scale=1\"><title>coregate-bench {url}</title>\
         <style>{CSS}</style></head><body><header><h1>coregate-bench report</h1>\
         <div class=\"url\">{url}</div><div class=\"meta\">"
    );
    if let Some(m) = text(r.get("mode")) {
        let m = match m.as_str() {
            "closed" => "closed loop".to_string(),
            "open" => "open loop".to_string(),
            "tcp" => "tcp connections".to_string(),
            _ => esc(&m),
        };
        let _ = write!(h, "<span class=\"badge\">{m}</span>");
    }
    if let Some(d) = text(r.get("driver")) {
        let _ = write!(h, "<span>driver <b>{}</b></span>", esc(&d));
    }
    for k in ["threads", "connections"] {
        if let Some(v) = num(r, &[k]) {
            let _ = write!(h, "<span><b>{}</b> {k}</span>", count(v));
        }
    }
    let meta = [("pipeline", "pipeline", ""), ("warmup_s", "warm-up", " s")];
    for (k, label, unit) in meta.into_iter().chain([("duration_s", "duration", " s")]) {
        if let Some(v) = num(r, &[k]) {
            let _ = write!(h, "<span>{label} <b>{}{unit}</b></span>", trim(v, 2));
        }
    }
    h.push_str("</div></header>");
    cards(&mut h, r);
    if let Some(svg) = percentile_chart(r) {
        let _ = write!(h, "<section><h2>Latency by percentile</h2>{svg}</section>");
    }
    if let Some(svg) = timeline_chart(r) {
        let _ = write!(h, "<section><h2>Requests per second</h2>{svg}</section>");
    }
    tables(&mut h, r);
    // `<` escaped (and `>`, `&`) so that nothing in a string can close the script element.
    let json = serde_json::to_string(results).unwrap_or_default();
    let json = json
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026");
    let _ = writeln!(
        h,
        "<footer>Generated by coregate-bench. The raw results are embedded in this file as \
         <code>script#results</code>.</footer><script type=\"application/json\" \
         id=\"results\">{json}</script></body></html>"
    );
    h
}

fn has_latency(r: &Value) -> bool {
    let positive = |v: Option<f64>| v.is_some_and(|v| v > 0.0);
    let summary = r.get("latency_us").and_then(Value::as_object);
    let points = r.get("latency_percentiles").and_then(Value::as_array);
    summary.is_some_and(|m| m.values().any(|v| positive(v.as_f64())))
        || points.is_some_and(|a| a.iter().any(|e| positive(num(e, &["latency_us"]))))
}

/// The summary cards, and the open-loop banner when the achieved rate is under 97%.
fn cards(h: &mut String, r: &Value) {
    let mut c: Vec<(&str, String, String, &str)> = Vec::new(); // label, value, note, class
    let mut add = |label, v: Option<String>, note: &str, class| {
        if let Some(v) = v {
            c.push((label, v, note.to_string(), class));
        }
    };
    let duration = num(r, &["duration_s"]).filter(|d| *d > 0.0);
    let conns = num(r, &["tcp", "conns_done"]);
    add(
        "requests/s",
        num(r, &["requests_per_sec"]).map(count),
        "",
        "",
    );
    add(
        "connections/s",
        conns.zip(duration).map(|(n, d)| count(n / d)),
        "",
        "",
    );
    let bps = num(r, &["bytes_per_sec"]).or(num(r, &["tcp", "bytes_per_sec"]));
    add("throughput", bps.map(|v| format!("{}/s", bytes(v))), "", "");
    for (k, label) in [
        ("p50", "p50"),
        ("p99", "p99"),
        ("p999", "p99.9"),
        ("max", "max"),
    ] {
        add(label, num(r, &["latency_us", k]).map(us), "latency", "");
    }
    add("requests", num(r, &["requests"]).map(count), "", "");
    if let Some(e) = r.get("errors").and_then(Value::as_object) {
        let n: f64 = e.values().filter_map(Value::as_f64).sum();
        let (note, class) = if n > 0.0 {
            ("see errors by kind", "bad")
        } else {
            ("", "")
        };
        add("errors", Some(count(n)), note, class);
    }
    let not_ok: f64 = status_rows(r).iter().filter(|s| !s.2).map(|s| s.1).sum();
    if not_ok > 0.0 {
        add("non-2xx/3xx", Some(count(not_ok)), "responses", "warn");
    }
    let mut banner = String::new();
    if let Some(a) = num(r, &["rate", "achieved"]) {
        let q = num(r, &["rate", "requested"]).filter(|q| *q > 0.0);
        let pct = q.map(|q| a / q * 100.0);
        let low = pct.is_some_and(|p| p < 97.0);
        let note = q
            .zip(pct)
            .map(|(q, p)| format!("{}% of {} requested", trim(p, 1), count(q)));
        let note = note.unwrap_or_default();
        add(
            "achieved rate/s",
            Some(count(a)),
            &note,
            if low { "warn" } else { "" },
        );
        if low {
            banner = format!(
                "<div class=\"banner warn\"><b>Open loop fell behind:</b> achieved {}/s, {note} \
                 (below 97%). The server or the generator could not keep up, so this run did not \
                 measure the requested load.</div>",
                count(a)
            );
        }
    }
    h.push_str("<div class=\"cards\">");
    for (k, v, s, class) in c {
        let _ = write!(
            h,
            "<div class=\"card {class}\"><div class=\"k\">{k}</div><div class=\"v\">{v}</div>\
             <div class=\"s\">{s}&nbsp;</div></div>"
        );
    }
    h.push_str("</div>");
    h.push_str(&banner);
}

/// (escaped code, count, is 2xx/3xx), sorted by code.
fn status_rows(r: &Value) -> Vec<(String, f64, bool)> {
    let Some(m) = r.get("status").and_then(Value::as_object) else {
        return Vec::new();
    };
    let mut v: Vec<_> = m
        .iter()
        .filter_map(|(k, n)| Some((k.clone(), n.as_f64()?)))
        .collect();
    v.sort_by(|a, b| (a.0.len(), &a.0).cmp(&(b.0.len(), &b.0)));
    let ok = |k: &str| k.len() == 3 && (k.starts_with('2') || k.starts_with('3'));
    v.into_iter().map(|(k, n)| (esc(&k), n, ok(&k))).collect()
}

/// A table of rows (row class, cells already escaped); nothing when there are no rows.
fn table(out: &mut String, title: &str, head: [&str; 2], rows: Vec<(&str, String, String)>) {
    if !rows.is_empty() {
        let _ = write!(
            out,
            "<div><h3>{title}</h3><table><tr><th>{}</th><th>{}</th></tr>",
            head[0], head[1]
        );
        for (class, k, v) in rows {
            let _ = write!(out, "<tr class=\"{class}\"><td>{k}</td><td>{v}</td></tr>");
        }
        out.push_str("</table></div>");
    }
}

/// Rows for the values that are present.
fn present<'a>(rows: &[(&str, Option<String>)]) -> Vec<(&'a str, String, String)> {
    rows.iter()
        .filter_map(|(k, v)| Some(("", k.to_string(), v.clone()?)))
        .collect()
}

fn tables(h: &mut String, r: &Value) {
    let mut out = String::new();
    let names = [
        ("min", "min"),
        ("mean", "mean"),
        ("stdev", "stdev"),
        ("p50", "p50"),
    ];
    let names = names
        .into_iter()
        .chain([("p90", "p90"), ("p99", "p99"), ("p999", "p99.9")]);
    let names = names.chain([("p9999", "p99.99"), ("max", "max")]);
    let rows: Vec<_> = names
        .map(|(k, l)| (l, num(r, &["latency_us", k]).map(us)))
        .collect();
    table(
        &mut out,
        "Latency",
        ["statistic", "latency"],
        present(&rows),
    );
    let st = status_rows(r);
    let total: f64 = st.iter().map(|s| s.1).sum();
    let rows = st.into_iter().map(|(k, n, ok)| {
        let class = if ok {
            ""
        } else if k.starts_with('4') {
            "warn"
        } else {
            "bad"
        };
        let share = if total > 0.0 { n / total * 100.0 } else { 0.0 };
        (class, k, format!("{} ({}%)", count(n), trim(share, 2)))
    });
    table(
        &mut out,
        "Status codes",
        ["status", "responses"],
        rows.collect(),
    );
    let mut errs: Vec<(String, f64)> = Vec::new();
    if let Some(m) = r.get("errors").and_then(Value::as_object) {
        errs = m
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.as_f64()?)))
            .collect();
        let known = ["connect", "timeout", "reset", "parse"];
        errs.sort_by_key(|(k, _)| known.iter().position(|o| o == k).unwrap_or(known.len()));
    }
    let rows = errs
        .into_iter()
        .map(|(k, n)| (if n > 0.0 { "bad" } else { "" }, esc(&k), count(n)));
    table(
        &mut out,
        "Errors by kind",
        ["kind", "count"],
        rows.collect(),
    );
    let t = |k: &[&str]| num(r, &[&["tcp"], k].concat());
    let duration = num(r, &["duration_s"]).filter(|d| *d > 0.0);
    let none_done = t(&["conns_done"]) == Some(0.0);
    let conn_time = |k| t(&["conn_time_us", k]).filter(|_| !none_done).map(us);
    let rows = [
        ("payload size", t(&["size"]).map(bytes)),
        ("connections done", t(&["conns_done"]).map(count)),
        (
            "connections/s",
            t(&["conns_done"]).zip(duration).map(|(n, d)| count(n / d)),
        ),
        (
            "throughput",
            t(&["bytes_per_sec"]).map(|v| format!("{}/s", bytes(v))),
        ),
        ("connection time p50", conn_time("p50")),
        ("connection time p99", conn_time("p99")),
        ("connection time max", conn_time("max")),
    ];
    table(&mut out, "TCP", ["metric", "value"], present(&rows));
    let (u, s) = (num(r, &["cpu", "user_s"]), num(r, &["cpu", "sys_s"]));
    let total = u.zip(s).map(|(u, s)| u + s);
    let requests = num(r, &["requests"]).filter(|n| *n > 0.0);
    let per_req = total.zip(requests).map(|(c, n)| c / n * 1e6);
    let per_req = num(r, &["cpu", "us_per_request"])
        .filter(|v| *v > 0.0)
        .or(per_req);
    let secs = |v: f64| format!("{} s", trim(v, 3));
    let rows = [
        ("user", u.map(secs)),
        ("system", s.map(secs)),
        ("total", total.map(secs)),
        ("per request", per_req.map(us)),
        (
            "cores busy (total / duration)",
            total.zip(duration).map(|(c, d)| trim(c / d, 2)),
        ),
    ];
    table(&mut out, "Generator CPU", ["cpu", "value"], present(&rows));
    if !out.is_empty() {
        let _ = write!(
            h,
            "<section><h2>Details</h2><div class=\"tables\">{out}</div></section>"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::chart::nice_ticks;
    use super::*;
    use serde_json::json;

    fn sample() -> Value {
        // Like an HdrHistogram percentile iteration: 5 ticks per half distance, then 100.
        let mut pct: Vec<Value> = (0..=85)
            .map(|k| {
                let p = 100.0 * (1.0 - 0.5f64.powf(k as f64 / 5.0));
                let us = (90.0 * (100.0 / (100.0 - p)).powf(0.27)).round();
                json!({ "percentile": p, "latency_us": us })
            })
            .collect();
        pct.push(json!({ "percentile": 100.0, "latency_us": 2710 }));
        let timeline: Vec<Value> = (1..=10)
            .map(|t| {
                let errors = if t == 4 || t == 5 { 28 } else { 0 };
                let p99 = 380 + (t * 37) % 90;
                json!({ "t_s": t as f64, "requests": 12340 - (t * 131) % 700, "errors": errors, "p99_us": p99 })
            })
            .collect();
        json!({
            "url": "http://127.0.0.1:8080/<script>alert(1)</script>?a=1&b=2",
            "mode": "closed", "threads": 2, "connections": 64, "pipeline": 1, "warmup_s": 2,
            "requests": 123456, "duration_s": 10.0, "requests_per_sec": 12345.6,
            "bytes_per_sec": 2_470_000.0,
            "latency_us": { "min": 41, "mean": 118.4, "stdev": 52.1, "p50": 108, "p90": 168,
                "p99": 312, "p999": 592, "p9999": 1110, "max": 2710 },
            "latency_percentiles": pct,
            "timeline": timeline,
            "status": { "200": 123400, "503": 56 },
            "errors": { "connect": 0, "timeout": 3, "reset": 0, "parse": 0 },
            "cpu": { "user_s": 3.21, "sys_s": 5.4 }
        })
    }

    #[test]
    fn renders_full_sample() {
        let h = render_html(&sample());
        assert!(h.starts_with("<!DOCTYPE html>") && h.ends_with("</html>\n"));
        assert_eq!(h.matches("<svg").count(), 2);
        for tick in [">0%<", ">90%<", ">99%<", ">99.9%<", ">99.99%<", ">99.999%<"] {
            assert!(h.contains(tick), "missing tick {tick}");
        }
        // The url is escaped everywhere, in the page and in the embedded JSON.
        assert!(
            h.contains("http://127.0.0.1:8080/&lt;script&gt;alert(1)&lt;/script&gt;?a=1&amp;b=2")
        );
        assert!(!h.contains("<script>alert"));
        assert_eq!(h.matches("</script>").count(), 1);
        let start = h.find("id=\"results\">").unwrap() + "id=\"results\">".len();
        let json = &h[start..h.rfind("</script>").unwrap()];
        assert!(json.contains("\\u003cscript\\u003e") && json.contains("123400"));
        let back: Value = serde_json::from_str(json).unwrap();
        assert_eq!(back["url"], sample()["url"]);
        assert_eq!(back["status"]["200"], 123400);
        assert_eq!(back["latency_percentiles"].as_array().unwrap().len(), 87);
        for s in [
            "12,346",
            "2.36 MiB/s",
            "108 µs",
            "592 µs",
            "2.71 ms",
            "123,456",
            "503",
        ] {
            assert!(h.contains(s), "missing {s}");
        }
        assert!(h.contains("card bad")); // 3 timeouts
        assert!(h.contains("Generator CPU") && h.contains("69.7 µs")); // 8.61 s / 123456
        assert!(!h.contains("class=\"banner"));
    }

    #[test]
    fn renders_empty_and_malformed_without_panicking() {
        let h = render_html(&json!({}));
        assert!(h.contains("</html>") && !h.contains("<svg"));
        for v in [
            Value::Null,
            json!([1, 2]),
            json!("x"),
            json!({ "url": null, "mode": 3, "latency_us": "x", "latency_percentiles": [null, {"percentile": "a"}],
                "timeline": [null, 1, { "t_s": "a", "requests": -5 }], "status": [], "errors": { "x": "y" },
                "rate": { "requested": 0, "achieved": 0 }, "tcp": 1, "cpu": { "user_s": 1 } }),
            json!({ "latency_percentiles": [{ "percentile": 100.0, "latency_us": 0 }], "timeline": [{}],
                "latency_us": { "p50": 1e300, "max": -1 } }),
        ] {
            let h = render_html(&v);
            assert!(h.ends_with("</html>\n"));
            assert!(!h.contains("NaN") && !h.contains("inf"), "{h}");
        }
    }

    #[test]
    fn renders_summary_when_no_percentile_array() {
        let mut v = sample();
        v.as_object_mut().unwrap().remove("latency_percentiles");
        let h = render_html(&v);
        assert!(
            h.contains("Latency by percentile") && h.contains("<title>p99.99: 1.11 ms</title>")
        );
    }

    #[test]
    fn renders_tcp_mode() {
        let v = json!({ "url": "tcp://127.0.0.1:9000", "mode": "tcp", "connections": 32, "duration_s": 5,
            "tcp": { "size": 65536, "conns_done": 50000, "bytes_per_sec": 655_360_000.0,
                "conn_time_us": { "p50": 210, "p99": 1450, "max": 9800 } },
            "errors": { "connect": 2, "timeout": 0, "reset": 1, "parse": 0 } });
        let h = render_html(&v);
        assert!(h.contains("tcp connections") && h.contains("<h3>TCP</h3>"));
        for s in [
            "64 KiB",
            "50,000",
            "10,000",
            "625 MiB/s",
            "210 µs",
            "1.45 ms",
            "9.8 ms",
        ] {
            assert!(h.contains(s), "missing {s}");
        }
        assert!(h.contains("card bad") && !h.contains("<svg"));
    }

    #[test]
    fn a_run_that_completed_nothing_draws_no_latency() {
        // The shape of a real tcp:// run against an HTTP server: every connection failed.
        let zero = json!({ "min": 0, "mean": 0.0, "stdev": 0.0, "p50": 0, "p90": 0, "p99": 0,
            "p999": 0, "p9999": 0, "max": 0 });
        let v = json!({ "mode": "tcp", "driver": "io_<b>", "requests": 0, "latency_us": zero,
            "latency_percentiles": [], "timeline": [{ "t_s": 1.0, "requests": 0, "errors": 10297,
            "p99_us": 0 }], "tcp": { "size": 16384, "conns_done": 0,
            "conn_time_us": { "p50": 0, "p99": 0, "max": 0 } }, "errors": { "parse": 10297 } });
        let h = render_html(&v);
        assert!(!h.contains("0 µs") && !h.contains("Latency by percentile"));
        assert!(h.contains("Requests per second") && !h.contains("right axis"));
        assert!(h.contains("driver <b>io_&lt;b&gt;</b>") && h.contains("10,297"));
        assert!(h.contains("\"p99\":0"), "the embedded results stay whole");
    }

    #[test]
    fn open_loop_warns_below_97_percent() {
        let run = |achieved: f64| {
            render_html(
                &json!({ "mode": "open", "rate": { "requested": 20000, "achieved": achieved } }),
            )
        };
        let low = run(19000.0);
        assert!(
            low.contains("open loop")
                && low.contains("class=\"banner warn")
                && low.contains("95% of 20,000")
        );
        assert!(low.contains("card warn"));
        let ok = run(19980.0);
        assert!(
            !ok.contains("class=\"banner")
                && !ok.contains("card warn")
                && ok.contains("99.9% of 20,000")
        );
    }

    #[test]
    fn units_and_ticks() {
        assert_eq!(us(950.0), "950 µs");
        assert_eq!(us(999.9), "1 ms");
        assert_eq!(us(1234.0), "1.23 ms");
        assert_eq!(us(2_500_000.0), "2.5 s");
        assert_eq!(bytes(1536.0), "1.5 KiB");
        assert_eq!(count(1234567.0), "1,234,567");
        assert_eq!(count(12.5), "12.5");
        assert_eq!(
            nice_ticks(401.0),
            vec![0.0, 100.0, 200.0, 300.0, 400.0, 500.0]
        );
        assert_eq!(
            nice_ticks(0.0),
            vec![0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]
        );
        assert_eq!(compact(12500.0), "12.5k");
    }

    #[test]
    #[ignore = "writes the sample report to /tmp/report-sample.html for a look"]
    fn write_sample() {
        std::fs::write("/tmp/report-sample.html", render_html(&sample())).unwrap();
    }
}
