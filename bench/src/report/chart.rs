//! The two inline SVG charts: latency by percentile (HdrHistogram style) and the per-second timeline.

use super::format::*;
use serde_json::Value;
use std::fmt::Write;

pub(super) const W: f64 = 1000.0;
pub(super) const H: f64 = 330.0;
pub(super) const MT: f64 = 14.0;
pub(super) const MB: f64 = 44.0;

pub(super) fn percentile_chart(r: &Value) -> Option<String> {
    let pair = |e: &Value| Some((num(e, &["percentile"])?, num(e, &["latency_us"])?));
    let arr = r.get("latency_percentiles").and_then(Value::as_array);
    let mut pts: Vec<(f64, f64)> = arr
        .map(|a| a.iter().filter_map(pair).collect())
        .unwrap_or_default();
    if pts.is_empty() {
        let keys = [
            (0.0, "min"),
            (50.0, "p50"),
            (90.0, "p90"),
            (99.0, "p99"),
            (99.9, "p999"),
        ];
        let keys = keys.into_iter().chain([(99.99, "p9999"), (100.0, "max")]);
        pts = keys
            .filter_map(|(p, k)| Some((p, num(r, &["latency_us", k])?)))
            .collect();
    }
    pts.retain(|&(p, v)| (0.0..=100.0).contains(&p) && v >= 0.0);
    if pts.is_empty() {
        return None;
    }
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    let lx = |p: f64| {
        if p < 100.0 {
            (100.0 / (100.0 - p)).log10()
        } else {
            f64::INFINITY
        }
    };
    let data_x = pts
        .iter()
        .map(|p| lx(p.0))
        .filter(|x| x.is_finite())
        .fold(0.0, f64::max);
    let xmax = (data_x - 1e-6).ceil().clamp(5.0, 7.0);
    let (ml, mr) = (70.0, 24.0);
    let (pw, ph) = (W - ml - mr, H - MT - MB);
    let ticks = nice_ticks(pts.iter().map(|p| p.1).fold(0.0, f64::max));
    let top = *ticks.last()?;
    let (div, unit) = us_unit(top);
    let sx = |p: f64| ml + lx(p).min(xmax) / xmax * pw;
    let sy = |v: f64| MT + ph - v / top * ph;
    let mut s = svg_open("latency by percentile");
    for t in &ticks {
        let y = sy(*t);
        let _ = write!(
            s,
            "<line class=\"gl\" x1=\"{ml}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/>",
            W - mr
        );
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{} {unit}</text>",
            ml - 6.0,
            y + 4.0,
            trim(t / div, 3)
        );
    }
    for k in 0..=(xmax as usize) {
        let x = ml + k as f64 / xmax * pw;
        let label = match k {
            0 => "0%".to_string(),
            1 => "90%".to_string(),
            2 => "99%".to_string(),
            k => format!("99.{}%", "9".repeat(k - 2)),
        };
        let _ = write!(
            s,
            "<line class=\"gl\" x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{MT}\" y2=\"{}\"/>",
            MT + ph
        );
        let _ = write!(
            s,
            "<text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{label}</text>",
            MT + ph + 18.0
        );
    }
    axes(&mut s, ml, W - mr, MT + ph);
    let _ = write!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">percentile</text>",
        ml + pw / 2.0,
        H - 4.0
    );
    let line: Vec<String> = pts
        .iter()
        .map(|&(p, v)| format!("{:.1},{:.1}", sx(p), sy(v)))
        .collect();
    let _ = write!(
        s,
        "<polyline fill=\"none\" stroke=\"#2f6fdf\" stroke-width=\"2\" points=\"{}\"/>",
        line.join(" ")
    );
    for &(p, v) in &pts {
        let _ = write!(s, "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"#2f6fdf\" fill-opacity=\"0.35\"><title>p{}: {}</title></circle>", sx(p), sy(v), trim(p, 5), us(v));
    }
    s.push_str("</svg>");
    Some(s)
}

pub(super) fn timeline_chart(r: &Value) -> Option<String> {
    let row = |(i, e): (usize, &Value)| {
        let t = num(e, &["t_s"]).unwrap_or(i as f64 + 1.0);
        let n = |k| num(e, &[k]).unwrap_or(0.0).max(0.0);
        (
            t,
            n("requests"),
            n("errors"),
            num(e, &["p99_us"]).filter(|v| *v >= 0.0),
        )
    };
    let rows: Vec<_> = r
        .get("timeline")?
        .as_array()?
        .iter()
        .enumerate()
        .map(row)
        .collect();
    if rows.is_empty() {
        return None;
    }
    let (ml, mr) = (70.0, 70.0);
    let (pw, ph) = (W - ml - mr, H - MT - MB);
    let ticks = nice_ticks(rows.iter().map(|r| r.1.max(r.2)).fold(0.0, f64::max));
    let top = *ticks.last()?;
    let sy = |v: f64| MT + ph - v / top * ph;
    let mut s = svg_open("requests per second");
    for t in &ticks {
        let y = sy(*t);
        let _ = write!(
            s,
            "<line class=\"gl\" x1=\"{ml}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/>",
            W - mr
        );
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            ml - 6.0,
            y + 4.0,
            compact(*t)
        );
    }
    let bw = pw / rows.len() as f64;
    let step = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600]
        .into_iter()
        .find(|s| rows.len() / s <= 12)
        .unwrap_or(rows.len());
    let mut p99 = Vec::new();
    for (i, &(t, n, e, p)) in rows.iter().enumerate() {
        let x = ml + i as f64 * bw;
        let pt = p.map(|p| format!(", p99 {}", us(p))).unwrap_or_default();
        let tip = format!(
            "<title>{} s: {} requests, {} errors{pt}</title>",
            trim(t, 2),
            count(n),
            count(e)
        );
        let _ = write!(s, "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#2f6fdf\" fill-opacity=\"0.75\">{tip}</rect>", x + bw * 0.1, sy(n), (bw * 0.8).max(0.5), MT + ph - sy(n));
        if e > 0.0 {
            let eh = (MT + ph - sy(e)).max(2.0);
            let _ = write!(s, "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{eh:.1}\" fill=\"#d93025\">{tip}</rect>", x + bw * 0.1, MT + ph - eh, (bw * 0.8).max(0.5));
        }
        if step == 1 || (t.round() as i64).rem_euclid(step as i64) == 0 {
            let _ = write!(
                s,
                "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                x + bw / 2.0,
                MT + ph + 18.0,
                trim(t, 2)
            );
        }
        if let Some(p) = p {
            p99.push((x + bw / 2.0, p));
        }
    }
    axes(&mut s, ml, W - mr, MT + ph);
    let _ = write!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">time (s)</text>",
        ml + pw / 2.0,
        H - 4.0
    );
    let ticks2 = nice_ticks(p99.iter().map(|p| p.1).fold(0.0, f64::max));
    let (top2, (div, unit)) = (
        ticks2.last().copied().unwrap_or(1.0),
        us_unit(ticks2.last().copied().unwrap_or(1.0)),
    );
    if !p99.is_empty() {
        let sy2 = |v: f64| MT + ph - v / top2 * ph;
        for t in &ticks2 {
            let _ = write!(s, "<text x=\"{}\" y=\"{:.1}\" fill=\"#e8710a\" style=\"fill:#e8710a\">{} {unit}</text>", W - mr + 6.0, sy2(*t) + 4.0, trim(t / div, 3));
        }
        let pts: Vec<String> = p99
            .iter()
            .map(|&(x, p)| format!("{x:.1},{:.1}", sy2(p)))
            .collect();
        let _ = write!(
            s,
            "<polyline fill=\"none\" stroke=\"#e8710a\" stroke-width=\"2\" points=\"{}\"/>",
            pts.join(" ")
        );
    }
    s.push_str("</svg>");
    let mut lg = String::from("<div class=\"lg\"><i style=\"background:#2f6fdf\"></i>requests/s");
    if rows.iter().any(|r| r.2 > 0.0) {
        lg.push_str("<i style=\"background:#d93025\"></i>errors/s");
    }
    if !p99.is_empty() {
        lg.push_str("<i style=\"background:#e8710a\"></i>p99 latency (right axis)");
    }
    Some(format!("{lg}</div>{s}"))
}

pub(super) fn svg_open(label: &str) -> String {
    format!("<svg viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{label}\" xmlns=\"http://www.w3.org/2000/svg\">")
}

pub(super) fn axes(s: &mut String, x0: f64, x1: f64, y: f64) {
    let _ = write!(s, "<line class=\"ax\" x1=\"{x0}\" x2=\"{x1}\" y1=\"{y}\" y2=\"{y}\"/><line class=\"ax\" x1=\"{x0}\" x2=\"{x0}\" y1=\"{MT}\" y2=\"{y}\"/>");
}

/// 0, step, .., top: a 1/2/2.5/5 × 10^k step, top >= max, about five steps.
pub(super) fn nice_ticks(max: f64) -> Vec<f64> {
    let max = if max.is_finite() && max > 0.0 {
        max
    } else {
        1.0
    };
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw * (1.0 - 1e-9));
    let step = step.unwrap_or(10.0 * mag);
    let n = (max / step - 1e-9).ceil().clamp(1.0, 20.0) as usize;
    (0..=n).map(|i| i as f64 * step).collect()
}
