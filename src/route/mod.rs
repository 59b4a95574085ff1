//! Routing: which `[[route]]` serves a request, by Host and longest path prefix.
//!
//! Built once per config version; lookups borrow the request's bytes and never allocate.

use crate::config::{Config, HostMatch};
use std::collections::HashMap;

/// Longest DNS name we lower-case on the stack for a lookup; longer Host values match no name.
pub const MAX_HOST_LEN: usize = 253;

/// One listener's routes, grouped by how their host matches.
#[derive(Debug, Default)]
struct ListenerRoutes {
    /// Exact host → route indices, longest prefix first.
    exact: HashMap<String, Vec<(String, usize)>>,
    /// `.example.com` suffixes, longest suffix first; each with routes longest prefix first.
    suffix: Vec<(String, Vec<(String, usize)>)>,
    /// Routes without `host`, longest prefix first.
    any: Vec<(String, usize)>,
}

/// All listeners' routes.
#[derive(Debug, Default)]
pub struct RouteTable {
    listeners: Vec<ListenerRoutes>,
}

impl RouteTable {
    pub fn new(config: &Config) -> RouteTable {
        let mut listeners: Vec<ListenerRoutes> = (0..config.listeners.len())
            .map(|_| ListenerRoutes::default())
            .collect();
        for (i, r) in config.routes.iter().enumerate() {
            let l = &mut listeners[r.listener];
            let entry = (r.path_prefix.clone(), i);
            match &r.host {
                None => l.any.push(entry),
                Some(HostMatch::Exact(h)) => l.exact.entry(h.clone()).or_default().push(entry),
                Some(HostMatch::Suffix(s)) => match l.suffix.iter_mut().find(|(x, _)| x == s) {
                    Some((_, v)) => v.push(entry),
                    None => l.suffix.push((s.clone(), vec![entry])),
                },
            }
        }
        for l in &mut listeners {
            let by_len =
                |v: &mut Vec<(String, usize)>| v.sort_by_key(|r| std::cmp::Reverse(r.0.len()));
            l.exact.values_mut().for_each(by_len);
            l.suffix.iter_mut().for_each(|(_, v)| by_len(v));
            by_len(&mut l.any);
            l.suffix.sort_by_key(|s| std::cmp::Reverse(s.0.len()));
        }
        RouteTable { listeners }
    }

    /// The route for `host` (without port, any case) and `path` on a listener.
    ///
    /// Like nginx's server_name then location: an exact host wins over the longest wildcard,
    /// which wins over routes without a host; within that group the longest prefix wins. A group
    /// with no matching prefix falls through to the next, so a catch-all still applies.
    pub fn find(&self, listener: usize, host: &[u8], path: &[u8]) -> Option<usize> {
        let l = self.listeners.get(listener)?;
        let mut lower = [0u8; MAX_HOST_LEN];
        let host = strip_port(host);
        let host = if host.len() <= MAX_HOST_LEN {
            let h = &mut lower[..host.len()];
            h.copy_from_slice(host);
            h.make_ascii_lowercase();
            std::str::from_utf8(h).ok()
        } else {
            None
        };
        let longest = |routes: &[(String, usize)]| {
            routes
                .iter()
                .find(|(p, _)| path.starts_with(p.as_bytes()))
                .map(|(_, i)| *i)
        };
        if let Some(h) = host {
            if let Some(found) = l.exact.get(h).and_then(|r| longest(r)) {
                return Some(found);
            }
            for (suffix, routes) in &l.suffix {
                // `*.example.com` matches `a.example.com`, not `example.com` itself.
                if h.len() > suffix.len() && h.ends_with(suffix.as_str()) {
                    if let Some(found) = longest(routes) {
                        return Some(found);
                    }
                }
            }
        }
        longest(&l.any)
    }
}

/// `example.com:8080` → `example.com`; `[::1]:80` → `[::1]`.
pub fn strip_port(host: &[u8]) -> &[u8] {
    if host.first() == Some(&b'[') {
        return match host.iter().position(|&b| b == b']') {
            Some(end) => &host[..=end],
            None => host,
        };
    }
    match host.iter().rposition(|&b| b == b':') {
        Some(i) => &host[..i],
        None => host,
    }
}

/// The upstream request-target after `strip_prefix`: the rest of the path, always starting '/'.
pub fn strip_prefix<'a>(target: &'a [u8], prefix: &str) -> (&'static [u8], &'a [u8]) {
    let rest = target.get(prefix.len()..).unwrap_or_default();
    if rest.first() == Some(&b'/') {
        (b"", rest)
    } else {
        (b"/", rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> (Config, RouteTable) {
        let cfg = Config::parse(
            r#"
[[listener]]
name = "web"
bind = "127.0.0.1:1"
[[route]]
listener = "web"
upstream = "u"
[[route]]
listener = "web"
path_prefix = "/api/"
upstream = "u"
[[route]]
listener = "web"
host = "API.example.com"
path_prefix = "/v1/"
upstream = "u"
[[route]]
listener = "web"
host = "*.example.com"
upstream = "u"
[[upstream]]
name = "u"
endpoints = ["127.0.0.1:9"]
"#,
            "t",
        )
        .unwrap();
        let t = RouteTable::new(&cfg);
        (cfg, t)
    }

    #[test]
    fn host_then_longest_prefix() {
        let (_, t) = table();
        assert_eq!(t.find(0, b"other", b"/x"), Some(0));
        assert_eq!(t.find(0, b"other", b"/api/x"), Some(1));
        assert_eq!(t.find(0, b"api.EXAMPLE.com:443", b"/v1/users"), Some(2));
        // exact host without a matching prefix falls through to the wildcard
        assert_eq!(t.find(0, b"api.example.com", b"/v2"), Some(3));
        assert_eq!(t.find(0, b"www.example.com", b"/api/x"), Some(3));
        // the bare domain is not matched by *.example.com
        assert_eq!(t.find(0, b"example.com", b"/api/x"), Some(1));
        assert_eq!(t.find(0, &[b'a'; 300], b"/"), Some(0));
        assert_eq!(t.find(5, b"a", b"/"), None);
    }

    #[test]
    fn ports_and_prefix_stripping() {
        assert_eq!(strip_port(b"a.b:80"), b"a.b");
        assert_eq!(strip_port(b"[::1]:80"), b"[::1]");
        assert_eq!(strip_port(b"a.b"), b"a.b");
        assert_eq!(
            strip_prefix(b"/api/users?x=1", "/api/"),
            (&b"/"[..], &b"users?x=1"[..])
        );
        assert_eq!(
            strip_prefix(b"/api/users", "/api"),
            (&b""[..], &b"/users"[..])
        );
        assert_eq!(strip_prefix(b"/api", "/api"), (&b"/"[..], &b""[..]));
    }
}
