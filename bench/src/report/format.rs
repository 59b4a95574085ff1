//! Reading numbers out of the results JSON and writing them for people (units, escaping).

use serde_json::Value;

pub(super) fn num(v: &Value, path: &[&str]) -> Option<f64> {
    path.iter()
        .try_fold(v, |v, k| v.get(k))?
        .as_f64()
        .filter(|x| x.is_finite())
}

pub(super) fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

pub(super) fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// Fixed decimals with trailing zeros dropped: 2.50 -> "2.5", 3.00 -> "3".
pub(super) fn trim(x: f64, decimals: usize) -> String {
    let s = format!("{x:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Three significant digits (at least the integer part).
pub(super) fn sig3(x: f64) -> String {
    trim(
        x,
        if x.abs() >= 100.0 {
            0
        } else if x.abs() >= 10.0 {
            1
        } else {
            2
        },
    )
}

pub(super) fn us(v: f64) -> String {
    let (div, unit) = us_unit(v.abs() * 1.0005);
    format!("{} {unit}", sig3(v / div))
}

pub(super) fn bytes(mut v: f64) -> String {
    let mut unit = 0;
    while v.abs() >= 1024.0 && unit < 4 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{} {}", sig3(v), ["B", "KiB", "MiB", "GiB", "TiB"][unit])
}

/// Thousands-grouped integer (one decimal below 100 when not integral).
pub(super) fn count(v: f64) -> String {
    if v.abs() < 100.0 && v.fract() != 0.0 {
        return trim(v, 1);
    }
    let digits = format!("{:.0}", v.abs());
    let mut o = String::from(if v < -0.5 { "-" } else { "" });
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            o.push(',');
        }
        o.push(c);
    }
    o
}

/// Axis labels: 950, 12k, 1.5M.
pub(super) fn compact(v: f64) -> String {
    match v.abs() {
        a if a < 1e3 => trim(v, 1),
        a if a < 1e6 => format!("{}k", trim(v / 1e3, 2)),
        _ => format!("{}M", trim(v / 1e6, 2)),
    }
}

pub(super) fn us_unit(top: f64) -> (f64, &'static str) {
    match top {
        t if t < 1e3 => (1.0, "µs"),
        t if t < 1e6 => (1e3, "ms"),
        _ => (1e6, "s"),
    }
}
