//! Access log lines, formatted into a reused buffer: no allocation, no `String`.
//!
//! Two formats (README, "Access log"):
//!
//! `combined` is nginx's `combined` followed by five fields of our own:
//!
//! ```text
//! $client - - [$time_local] "$request" $status $bytes "$referer" "$user_agent" $request_time $upstream $upstream_time $route $request_id
//! 127.0.0.1 - - [10/Oct/2000:13:55:36 +0000] "GET /a?b=1 HTTP/1.1" 200 5 "-" "curl/8.5.0" 0.002 127.0.0.1:9001 0.001 0 5f0c1e2d3b4a59680001000000000007
//! ```
//!
//! `json` is one object per line, keys always present and in this order:
//!
//! ```text
//! {"time":"2000-10-10T13:55:36.123Z","client":"127.0.0.1","method":"GET","target":"/a?b=1","protocol":"HTTP/1.1","status":200,"bytes":5,"duration_ms":1.523,"upstream":"127.0.0.1:9001","upstream_ms":1.204,"route":0,"request_id":"5f0c...","user_agent":"curl/8.5.0","referer":"-"}
//! ```
//!
//! TCP (L4) connections get one line each at close, in the same family:
//!
//! ```text
//! $client - - [$time_local] "TCP $listener" $end $bytes_sent $bytes_received $duration $upstream
//! {"time":...,"client":...,"listener":"db","protocol":"tcp","end":"done","bytes":3021,"bytes_received":517,"duration_ms":1204.113,"upstream":"127.0.0.1:5432"}
//! ```
//!
//! Escaping: in `combined`, `"`, `\`, control bytes and bytes ≥ 0x7f become `\xHH` (as nginx
//! does); in `json`, strings are JSON-escaped (`\"`, `\\`, `\n`, `\r`, `\t`, other control
//! characters as `\u00XX`), valid UTF-8 is kept, and a byte that is not part of valid UTF-8
//! becomes `\u00XX` (its Latin-1 reading), so every line is valid UTF-8 JSON.

use crate::config::AccessFormat;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The request as sent, raw bytes from its head; escaped when written. Empty = absent (`-`).
#[derive(Default, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a [u8],
    pub target: &'a [u8],
    pub protocol: &'a [u8],
    pub referer: &'a [u8],
    pub user_agent: &'a [u8],
}

/// Everything one HTTP line says.
pub struct HttpLine<'a> {
    pub client: IpAddr,
    pub request: Request<'a>,
    pub status: u16,
    /// Response body bytes sent to the client.
    pub bytes: u64,
    /// From the first byte of the request to the end of the response.
    pub duration: Duration,
    /// The endpoint that answered (or failed last), if one was reached.
    pub upstream: Option<SocketAddr>,
    /// From the start of that attempt to its response head.
    pub upstream_time: Option<Duration>,
    /// Index of the route in the config; `None` = no route matched (or not routed yet).
    pub route: Option<usize>,
    pub request_id: &'a [u8],
}

/// Everything one TCP line says.
pub struct TcpLine<'a> {
    pub client: IpAddr,
    pub listener: &'a str,
    /// How it ended: done, idle, client_reset, upstream_reset, no_upstream, connect_failed.
    pub end: &'a str,
    /// Bytes sent to the client (from the upstream).
    pub bytes_sent: u64,
    /// Bytes received from the client (sent on to the upstream).
    pub bytes_received: u64,
    pub duration: Duration,
    pub upstream: Option<SocketAddr>,
}

/// The wall clock, formatted once per second.
pub struct Clock {
    sec: u64,
    /// `2000-10-10T13:55:36`
    iso: [u8; 19],
    /// `10/Oct/2000:13:55:36`
    clf: [u8; 20],
}

impl Default for Clock {
    fn default() -> Self {
        Clock {
            sec: u64::MAX,
            iso: [b'0'; 19],
            clf: [b'0'; 20],
        }
    }
}

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// (year, month 1-12, day 1-31) of a day count since 1970-01-01 (H. Hinnant's civil_from_days).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn digits(out: &mut [u8], mut v: u64) {
    for slot in out.iter_mut().rev() {
        *slot = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

impl Clock {
    /// Brings the cached texts to `now`'s second; returns its milliseconds.
    fn at(&mut self, now: SystemTime) -> u32 {
        let d = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let sec = d.as_secs();
        if sec != self.sec {
            self.sec = sec;
            let (y, m, day) = civil((sec / 86_400) as i64);
            let s = sec % 86_400;
            let (hh, mm, ss) = (s / 3600, s / 60 % 60, s % 60);
            let y = y.clamp(0, 9999) as u64;
            self.iso = *b"0000-00-00T00:00:00";
            digits(&mut self.iso[0..4], y);
            digits(&mut self.iso[5..7], u64::from(m));
            digits(&mut self.iso[8..10], u64::from(day));
            digits(&mut self.iso[11..13], hh);
            digits(&mut self.iso[14..16], mm);
            digits(&mut self.iso[17..19], ss);
            self.clf = *b"00/Jan/0000:00:00:00";
            digits(&mut self.clf[0..2], u64::from(day));
            self.clf[3..6].copy_from_slice(MONTHS[(m - 1) as usize]);
            digits(&mut self.clf[7..11], y);
            self.clf[12..20].copy_from_slice(&self.iso[11..19]);
        }
        d.subsec_millis()
    }

    /// `[10/Oct/2000:13:55:36 +0000]`
    fn write_clf(&mut self, out: &mut Vec<u8>, now: SystemTime) {
        self.at(now);
        out.push(b'[');
        out.extend_from_slice(&self.clf);
        out.extend_from_slice(b" +0000]");
    }

    /// `"2000-10-10T13:55:36.123Z"` (RFC 3339, UTC, milliseconds), quoted.
    fn write_iso(&mut self, out: &mut Vec<u8>, now: SystemTime) {
        let ms = self.at(now);
        out.push(b'"');
        out.extend_from_slice(&self.iso);
        let mut frac = *b".000Z\"";
        digits(&mut frac[1..4], u64::from(ms));
        out.extend_from_slice(&frac);
    }
}

const UPPER_HEX: &[u8; 16] = b"0123456789ABCDEF";
const LOWER_HEX: &[u8; 16] = b"0123456789abcdef";

fn clf_plain(b: u8) -> bool {
    (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\'
}

/// A value inside a quoted combined field; empty is `-`.
pub fn escape_combined(out: &mut Vec<u8>, v: &[u8]) {
    if v.is_empty() {
        out.push(b'-');
        return;
    }
    if v.iter().all(|&b| clf_plain(b)) {
        out.extend_from_slice(v);
        return;
    }
    for &b in v {
        if clf_plain(b) {
            out.push(b);
        } else {
            out.extend_from_slice(&[
                b'\\',
                b'x',
                UPPER_HEX[usize::from(b >> 4)],
                UPPER_HEX[usize::from(b & 0xf)],
            ]);
        }
    }
}

fn json_plain(b: u8) -> bool {
    (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\'
}

fn json_u00(out: &mut Vec<u8>, b: u8) {
    out.extend_from_slice(&[
        b'\\',
        b'u',
        b'0',
        b'0',
        LOWER_HEX[usize::from(b >> 4)],
        LOWER_HEX[usize::from(b & 0xf)],
    ]);
}

/// A JSON string (quotes included); empty is `"-"`.
pub fn escape_json(out: &mut Vec<u8>, v: &[u8]) {
    out.push(b'"');
    if v.is_empty() {
        out.push(b'-');
    } else if v.iter().all(|&b| json_plain(b)) {
        out.extend_from_slice(v);
    } else {
        for chunk in v.utf8_chunks() {
            for &b in chunk.valid().as_bytes() {
                match b {
                    b'"' => out.extend_from_slice(b"\\\""),
                    b'\\' => out.extend_from_slice(b"\\\\"),
                    b'\n' => out.extend_from_slice(b"\\n"),
                    b'\r' => out.extend_from_slice(b"\\r"),
                    b'\t' => out.extend_from_slice(b"\\t"),
                    0..=0x1f | 0x7f => json_u00(out, b),
                    _ => out.push(b),
                }
            }
            for &b in chunk.invalid() {
                json_u00(out, b);
            }
        }
    }
    out.push(b'"');
}

/// `1.234` (three decimals) of `d` in seconds (`scale` 1) or milliseconds (`scale` 1000).
fn write_decimal(out: &mut Vec<u8>, d: Duration, millis: bool) {
    let n = if millis { d.as_micros() } else { d.as_millis() };
    let _ = write!(out, "{}.{:03}", n / 1000, n % 1000);
}

/// Appends one line (ending in `\n`) for an HTTP request.
pub fn http(
    out: &mut Vec<u8>,
    format: AccessFormat,
    clock: &mut Clock,
    now: SystemTime,
    l: &HttpLine<'_>,
) {
    let r = &l.request;
    match format {
        AccessFormat::Combined => {
            let _ = write!(out, "{} - - ", l.client);
            clock.write_clf(out, now);
            out.extend_from_slice(b" \"");
            let parts = [r.method, r.target, r.protocol];
            if parts.iter().all(|p| p.is_empty()) {
                out.push(b'-');
            }
            let mut first = true;
            for p in parts.into_iter().filter(|p| !p.is_empty()) {
                if !first {
                    out.push(b' ');
                }
                first = false;
                escape_combined(out, p);
            }
            let _ = write!(out, "\" {} {} \"", l.status, l.bytes);
            escape_combined(out, r.referer);
            out.extend_from_slice(b"\" \"");
            escape_combined(out, r.user_agent);
            out.extend_from_slice(b"\" ");
            write_decimal(out, l.duration, false);
            match l.upstream {
                Some(a) => {
                    let _ = write!(out, " {a} ");
                }
                None => out.extend_from_slice(b" - "),
            }
            match l.upstream_time {
                Some(t) => write_decimal(out, t, false),
                None => out.push(b'-'),
            }
            match l.route {
                Some(i) => {
                    let _ = write!(out, " {i} ");
                }
                None => out.extend_from_slice(b" - "),
            }
            escape_combined(out, l.request_id);
            out.push(b'\n');
        }
        AccessFormat::Json => {
            out.extend_from_slice(b"{\"time\":");
            clock.write_iso(out, now);
            let _ = write!(out, ",\"client\":\"{}\",\"method\":", l.client);
            escape_json(out, r.method);
            out.extend_from_slice(b",\"target\":");
            escape_json(out, r.target);
            out.extend_from_slice(b",\"protocol\":");
            escape_json(out, r.protocol);
            let _ = write!(
                out,
                ",\"status\":{},\"bytes\":{},\"duration_ms\":",
                l.status, l.bytes
            );
            write_decimal(out, l.duration, true);
            match l.upstream {
                Some(a) => {
                    let _ = write!(out, ",\"upstream\":\"{a}\",\"upstream_ms\":");
                }
                None => out.extend_from_slice(b",\"upstream\":\"-\",\"upstream_ms\":"),
            }
            match l.upstream_time {
                Some(t) => write_decimal(out, t, true),
                None => out.extend_from_slice(b"null"),
            }
            match l.route {
                Some(i) => {
                    let _ = write!(out, ",\"route\":{i},\"request_id\":");
                }
                None => out.extend_from_slice(b",\"route\":null,\"request_id\":"),
            }
            escape_json(out, l.request_id);
            out.extend_from_slice(b",\"user_agent\":");
            escape_json(out, r.user_agent);
            out.extend_from_slice(b",\"referer\":");
            escape_json(out, r.referer);
            out.extend_from_slice(b"}\n");
        }
    }
}

/// Appends one line (ending in `\n`) for a TCP connection.
pub fn tcp(
    out: &mut Vec<u8>,
    format: AccessFormat,
    clock: &mut Clock,
    now: SystemTime,
    l: &TcpLine<'_>,
) {
    match format {
        AccessFormat::Combined => {
            let _ = write!(out, "{} - - ", l.client);
            clock.write_clf(out, now);
            out.extend_from_slice(b" \"TCP ");
            escape_combined(out, l.listener.as_bytes());
            out.extend_from_slice(b"\" ");
            escape_combined(out, l.end.as_bytes());
            let _ = write!(out, " {} {} ", l.bytes_sent, l.bytes_received);
            write_decimal(out, l.duration, false);
            match l.upstream {
                Some(a) => {
                    let _ = writeln!(out, " {a}");
                }
                None => out.extend_from_slice(b" -\n"),
            }
        }
        AccessFormat::Json => {
            out.extend_from_slice(b"{\"time\":");
            clock.write_iso(out, now);
            let _ = write!(out, ",\"client\":\"{}\",\"listener\":", l.client);
            escape_json(out, l.listener.as_bytes());
            out.extend_from_slice(b",\"protocol\":\"tcp\",\"end\":");
            escape_json(out, l.end.as_bytes());
            let _ = write!(
                out,
                ",\"bytes\":{},\"bytes_received\":{},\"duration_ms\":",
                l.bytes_sent, l.bytes_received
            );
            write_decimal(out, l.duration, true);
            match l.upstream {
                Some(a) => {
                    let _ = writeln!(out, ",\"upstream\":\"{a}\"}}");
                }
                None => out.extend_from_slice(b",\"upstream\":\"-\"}\n"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64, ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(ms)
    }

    #[test]
    fn clock_formats_utc() {
        let mut c = Clock::default();
        let mut out = Vec::new();
        // 2000-10-10T13:55:36Z (nginx's documentation example, in UTC).
        c.write_clf(&mut out, at(971_186_136, 0));
        out.push(b' ');
        c.write_iso(&mut out, at(971_186_136, 7));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "[10/Oct/2000:13:55:36 +0000] \"2000-10-10T13:55:36.007Z\""
        );
        for (secs, want) in [
            (0, "1970-01-01T00:00:00"),
            (951_782_400, "2000-02-29T00:00:00"),
            (1_709_251_199, "2024-02-29T23:59:59"),
            (4_102_444_800, "2100-01-01T00:00:00"),
        ] {
            let mut out = Vec::new();
            c.write_iso(&mut out, at(secs, 999));
            assert_eq!(
                String::from_utf8(out).unwrap(),
                format!("\"{want}.999Z\""),
                "{secs}"
            );
        }
    }

    #[test]
    fn combined_escapes_like_nginx() {
        let mut out = Vec::new();
        escape_combined(&mut out, b"a\"b\\c\x01d\x7f\xc3\xa9 e");
        assert_eq!(out, b"a\\x22b\\x5Cc\\x01d\\x7F\\xC3\\xA9 e");
        out.clear();
        escape_combined(&mut out, b"");
        assert_eq!(out, b"-");
    }

    #[test]
    fn json_escapes_and_stays_valid() {
        let mut out = Vec::new();
        escape_json(&mut out, "q\"b\\s\n\r\t\x01\x7f é".as_bytes());
        let s = String::from_utf8(out.clone()).unwrap();
        assert_eq!(s, "\"q\\\"b\\\\s\\n\\r\\t\\u0001\\u007f é\"");
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v, "q\"b\\s\n\r\t\x01\x7f é");
        out.clear();
        escape_json(&mut out, b"bad\xff\xc3");
        let s = String::from_utf8(out).unwrap();
        assert_eq!(s, "\"bad\\u00ff\\u00c3\"");
        assert_eq!(
            serde_json::from_str::<String>(&s).unwrap(),
            "bad\u{ff}\u{c3}"
        );
    }

    fn sample(route: Option<usize>, upstream: bool) -> HttpLine<'static> {
        HttpLine {
            client: "127.0.0.1".parse().unwrap(),
            request: Request {
                method: b"GET",
                target: b"/a?b=\"1\"",
                protocol: b"HTTP/1.1",
                referer: b"",
                user_agent: b"curl/8",
            },
            status: 200,
            bytes: 5,
            duration: Duration::from_micros(1523),
            upstream: upstream.then(|| "127.0.0.1:9001".parse().unwrap()),
            upstream_time: upstream.then(|| Duration::from_micros(1204)),
            route,
            request_id: b"abc",
        }
    }

    #[test]
    fn combined_line() {
        let mut out = Vec::new();
        let mut c = Clock::default();
        http(
            &mut out,
            AccessFormat::Combined,
            &mut c,
            at(971_186_136, 0),
            &sample(Some(0), true),
        );
        http(
            &mut out,
            AccessFormat::Combined,
            &mut c,
            at(971_186_136, 0),
            &sample(None, false),
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "127.0.0.1 - - [10/Oct/2000:13:55:36 +0000] \"GET /a?b=\\x221\\x22 HTTP/1.1\" 200 5 \"-\" \"curl/8\" 0.001 127.0.0.1:9001 0.001 0 abc\n\
             127.0.0.1 - - [10/Oct/2000:13:55:36 +0000] \"GET /a?b=\\x221\\x22 HTTP/1.1\" 200 5 \"-\" \"curl/8\" 0.001 - - - abc\n"
        );
    }

    #[test]
    fn combined_line_without_a_request() {
        let mut out = Vec::new();
        let mut l = sample(None, false);
        l.request = Request::default();
        l.status = 408;
        http(
            &mut out,
            AccessFormat::Combined,
            &mut Clock::default(),
            at(0, 0),
            &l,
        );
        assert!(String::from_utf8(out)
            .unwrap()
            .contains("] \"-\" 408 5 \"-\" \"-\" "));
    }

    #[test]
    fn json_line() {
        let mut out = Vec::new();
        let mut c = Clock::default();
        http(
            &mut out,
            AccessFormat::Json,
            &mut c,
            at(971_186_136, 42),
            &sample(Some(3), true),
        );
        http(
            &mut out,
            AccessFormat::Json,
            &mut c,
            at(971_186_136, 42),
            &sample(None, false),
        );
        let text = String::from_utf8(out).unwrap();
        let mut lines = text.lines();
        let a: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
        assert_eq!(a["time"], "2000-10-10T13:55:36.042Z");
        assert_eq!(a["target"], "/a?b=\"1\"");
        assert_eq!(a["status"], 200);
        assert_eq!(a["duration_ms"], 1.523);
        assert_eq!(a["upstream"], "127.0.0.1:9001");
        assert_eq!(a["upstream_ms"], 1.204);
        assert_eq!(a["route"], 3);
        assert_eq!(a["referer"], "-");
        let b: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
        assert_eq!(b["upstream"], "-");
        assert!(b["upstream_ms"].is_null() && b["route"].is_null());
        let keys: Vec<&str> = a.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        let mut want = vec![
            "time",
            "client",
            "method",
            "target",
            "protocol",
            "status",
            "bytes",
            "duration_ms",
            "upstream",
            "upstream_ms",
            "route",
            "request_id",
            "user_agent",
            "referer",
        ];
        want.sort_unstable();
        let mut keys = keys.clone();
        keys.sort_unstable();
        assert_eq!(keys, want);
    }

    #[test]
    fn tcp_lines() {
        let l = TcpLine {
            client: "::1".parse().unwrap(),
            listener: "db",
            end: "done",
            bytes_sent: 3021,
            bytes_received: 517,
            duration: Duration::from_millis(1204),
            upstream: Some("[::1]:5432".parse().unwrap()),
        };
        let mut out = Vec::new();
        let mut c = Clock::default();
        tcp(&mut out, AccessFormat::Combined, &mut c, at(0, 0), &l);
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "::1 - - [01/Jan/1970:00:00:00 +0000] \"TCP db\" done 3021 517 1.204 [::1]:5432\n"
        );
        out.clear();
        tcp(&mut out, AccessFormat::Json, &mut c, at(0, 0), &l);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["bytes"], 3021);
        assert_eq!(v["bytes_received"], 517);
        assert_eq!(v["duration_ms"], 1204.0);
        assert_eq!(v["upstream"], "[::1]:5432");
        assert_eq!(v["end"], "done");
    }
}
