//! The report's two charts, hand-written SVG: latency by percentile (x on a log scale of
//! 1/(1-p), like HdrHistogram plots) and the per-second timeline.

use super::format::{compact, count, num, trim, us, us_unit};
use serde_json::Value;
use std::fmt::Write;

const W: f64 = 1000.0;
const H: f64 = 330.0;
const TOP: f64 = 14.0;
const AXIS: f64 = H - 44.0; // y of the x axis
const BLUE: &str = "#2f6fdf";
const RED: &str = "#d93025";
const ORANGE: &str = "#e8710a";

/// An SVG being written, with the plot area between x `l` and `r`.
struct Chart {
    s: String,
    l: f64,
    r: f64,
}

impl Chart {
    fn new(label: &str, l: f64, right_margin: f64) -> Self {
        let s = format!(
            "<svg viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{label}\" \
             xmlns=\"http://www.w3.org/2000/svg\">"
        );
        let r = W - right_margin;
        Chart { s, l, r }
    }

    fn line(&mut self, class: &str, (x1, y1): (f64, f64), (x2, y2): (f64, f64)) {
        let _ = write!(
            self.s,
            "<line class=\"{class}\" x1=\"{x1:.1}\" y1=\"{y1:.1}\" x2=\"{x2:.1}\" y2=\"{y2:.1}\"/>"
        );
    }

    fn text(&mut self, (x, y): (f64, f64), anchor: &str, color: Option<&str>, t: &str) {
        let style = color
            .map(|c| format!(" style=\"fill:{c}\""))
            .unwrap_or_default();
        let _ = write!(
            self.s,
            "<text x=\"{x:.1}\" y=\"{y:.1}\" text-anchor=\"{anchor}\"{style}>{t}</text>"
        );
    }

    fn polyline(&mut self, color: &str, pts: &[(f64, f64)], extra: &str) {
        let pts: Vec<String> = pts.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
        let _ = write!(
            self.s,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"{extra} points=\"{}\"/>",
            pts.join(" ")
        );
    }

    /// Grid lines with labels on the left, or labels only on the right (a secondary axis).
    fn y_ticks(&mut self, ticks: &[f64], right: Option<&str>, label: impl Fn(f64) -> String) {
        let top = ticks.last().copied().unwrap_or(1.0);
        for &t in ticks {
            let y = y_of(t, top);
            match right {
                None => {
                    self.line("gl", (self.l, y), (self.r, y));
                    self.text((self.l - 6.0, y + 4.0), "end", None, &label(t));
                }
                Some(c) => self.text((self.r + 6.0, y + 4.0), "start", Some(c), &label(t)),
            }
        }
    }

    fn finish(mut self, x_title: &str) -> String {
        self.line("ax", (self.l, AXIS), (self.r, AXIS));
        self.line("ax", (self.l, TOP), (self.l, AXIS));
        self.text(((self.l + self.r) / 2.0, H - 4.0), "middle", None, x_title);
        self.s.push_str("</svg>");
        self.s
    }
}

fn y_of(v: f64, top: f64) -> f64 {
    AXIS - v / top * (AXIS - TOP)
}

/// Latency against percentile; the 100% point (the maximum) sits on the right edge, joined by
/// a dashed segment.
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
    let lx = |p: f64| (100.0 / (100.0 - p)).log10();
    let finite = pts.iter().filter(|p| p.0 < 100.0);
    let data_x = finite.map(|p| lx(p.0)).fold(0.0, f64::max);
    let xmax = (data_x - 1e-6).ceil().clamp(5.0, 7.0);
    let ticks = nice_ticks(pts.iter().map(|p| p.1).fold(0.0, f64::max));
    let top = *ticks.last()?;
    let (div, unit) = us_unit(top);
    let mut c = Chart::new("latency by percentile", 70.0, 40.0);
    c.y_ticks(&ticks, None, |t| format!("{} {unit}", trim(t / div, 3)));
    let (l, w) = (c.l, c.r - c.l);
    for k in 0..=(xmax as usize) {
        let x = l + k as f64 / xmax * w;
        let label = match k {
            0 => "0%".to_string(),
            1 => "90%".to_string(),
            k => format!("99{}{}%", if k > 2 { "." } else { "" }, "9".repeat(k - 2)),
        };
        c.line("gl", (x, TOP), (x, AXIS));
        c.text((x, AXIS + 18.0), "middle", None, &label);
    }
    let xy = |&(p, v): &(f64, f64)| {
        (
            l + if p < 100.0 {
                lx(p).min(xmax) / xmax
            } else {
                1.0
            } * w,
            y_of(v, top),
        )
    };
    let line: Vec<(f64, f64)> = pts.iter().filter(|p| p.0 < 100.0).map(xy).collect();
    c.polyline(BLUE, &line, "");
    if let (Some(last), Some(max)) = (line.last(), pts.last().filter(|p| p.0 >= 100.0)) {
        let (x, y) = xy(max);
        c.polyline(BLUE, &[*last, (x, y)], " stroke-dasharray=\"4 4\"");
        c.text(
            (x - 6.0, y - 8.0),
            "end",
            None,
            &format!("max {}", us(max.1)),
        );
    }
    for pt in &pts {
        let (x, y) = xy(pt);
        let name = if pt.0 >= 100.0 {
            "max".to_string()
        } else {
            format!("p{}", trim(pt.0, 5))
        };
        let _ = write!(
            c.s,
            "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"3\" fill=\"{BLUE}\" fill-opacity=\"0.35\">\
             <title>{name}: {}</title></circle>",
            us(pt.1)
        );
    }
    Some(c.finish("percentile (log scale of 1/(1-p))"))
}

/// Per-second requests as bars, errors as red bars over them, p99 as a line on a right axis.
pub(super) fn timeline_chart(r: &Value) -> Option<String> {
    let row = |(i, e): (usize, &Value)| {
        let t = num(e, &["t_s"]).unwrap_or(i as f64 + 1.0);
        let n = |k| num(e, &[k]).unwrap_or(0.0).max(0.0);
        // A second that completed nothing has no p99 (it reports 0): a gap, not a dip to 0.
        let p99 = num(e, &["p99_us"]).filter(|v| *v >= 0.0 && n("requests") > 0.0);
        (t, n("requests"), n("errors"), p99)
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
    let ticks = nice_ticks(rows.iter().map(|r| r.1.max(r.2)).fold(0.0, f64::max));
    let top = *ticks.last()?;
    let mut c = Chart::new("requests per second", 70.0, 70.0);
    c.y_ticks(&ticks, None, compact);
    let bw = (c.r - c.l) / rows.len() as f64;
    let steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600];
    let step = steps
        .into_iter()
        .find(|s| rows.len() / s <= 12)
        .unwrap_or(rows.len());
    let mut p99 = Vec::new();
    for (i, &(t, n, e, p)) in rows.iter().enumerate() {
        let x = c.l + i as f64 * bw;
        let pt = p.map(|p| format!(", p99 {}", us(p))).unwrap_or_default();
        let tip = format!(
            "<title>{} s: {} requests, {} errors{pt}</title>",
            trim(t, 2),
            count(n),
            count(e)
        );
        let (bx, bwid) = (x + bw * 0.1, (bw * 0.8).max(0.5));
        for (v, color, min_h) in [(n, BLUE, 0.0), (e, RED, 2.0)] {
            if v > 0.0 || color == BLUE {
                let h = (AXIS - y_of(v, top)).max(min_h);
                let _ = write!(
                    c.s,
                    "<rect x=\"{bx:.1}\" y=\"{:.1}\" width=\"{bwid:.1}\" height=\"{h:.1}\" \
                     fill=\"{color}\" fill-opacity=\"0.8\">{tip}</rect>",
                    AXIS - h
                );
            }
        }
        if step == 1 || (t.round() as i64).rem_euclid(step as i64) == 0 {
            c.text((x + bw / 2.0, AXIS + 18.0), "middle", None, &trim(t, 2));
        }
        if let Some(p) = p {
            p99.push((x + bw / 2.0, p));
        }
    }
    let mut legend = format!("<div class=\"lg\"><i style=\"background:{BLUE}\"></i>requests/s");
    if rows.iter().any(|r| r.2 > 0.0) {
        let _ = write!(legend, "<i style=\"background:{RED}\"></i>errors/s");
    }
    if !p99.is_empty() {
        let ticks2 = nice_ticks(p99.iter().map(|p| p.1).fold(0.0, f64::max));
        let top2 = ticks2.last().copied().unwrap_or(1.0);
        let (div, unit) = us_unit(top2);
        c.y_ticks(&ticks2, Some(ORANGE), |t| {
            format!("{} {unit}", trim(t / div, 3))
        });
        let line: Vec<(f64, f64)> = p99.iter().map(|&(x, p)| (x, y_of(p, top2))).collect();
        c.polyline(ORANGE, &line, "");
        let _ = write!(
            legend,
            "<i style=\"background:{ORANGE}\"></i>p99 latency (right axis)"
        );
    }
    Some(format!("{legend}</div>{}", c.finish("time (s)")))
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
