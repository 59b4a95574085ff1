//! Picking an upstream by server name, from a `tcp` listener's `sni_routes` as the config stores
//! them: lower-case patterns `name`, `*.suffix` or `*`, each with an upstream index.
//!
//! The suffix rule is the one HTTP host routes use: `*.example.com` matches any name ending in
//! `.example.com` with something in front (`a.example.com`, `a.b.example.com`), never
//! `example.com` itself. Tables are a handful of entries, read once per connection.

/// The pattern that matches every name: the listener's default.
const ANY: &str = "*";
/// What starts a suffix pattern; the rest (`.example.com`) is the suffix.
const WILDCARD: char = '*';

/// The upstream for `name`: an exact match (ignoring ASCII case), else the longest matching
/// `*.suffix`, else `*`; the first entry wins among equals.
pub fn route(name: &str, routes: &[(String, usize)]) -> Option<usize> {
    let exact = routes
        .iter()
        .find(|(pattern, _)| !pattern.starts_with(WILDCARD) && pattern.eq_ignore_ascii_case(name));
    if let Some(&(_, upstream)) = exact {
        return Some(upstream);
    }
    let mut best: Option<(usize, usize)> = None;
    for (pattern, upstream) in routes {
        let Some(suffix) = pattern.strip_prefix(WILDCARD) else {
            continue;
        };
        let longer = best.map_or(true, |(len, _)| suffix.len() > len);
        if longer && suffix.starts_with('.') && ends_with(name, suffix) {
            best = Some((suffix.len(), *upstream));
        }
    }
    if let Some((_, upstream)) = best {
        return Some(upstream);
    }
    routes
        .iter()
        .find(|(pattern, _)| pattern == ANY)
        .map(|&(_, upstream)| upstream)
}

/// `name` ends with `suffix` (ignoring ASCII case) and has at least one byte before it.
fn ends_with(name: &str, suffix: &str) -> bool {
    let (name, suffix) = (name.as_bytes(), suffix.as_bytes());
    name.len() > suffix.len()
        && name
            .get(name.len() - suffix.len()..)
            .is_some_and(|tail| tail.eq_ignore_ascii_case(suffix))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(entries: &[(&str, usize)]) -> Vec<(String, usize)> {
        entries.iter().map(|&(p, i)| (p.to_owned(), i)).collect()
    }

    #[test]
    fn exact_then_longest_suffix_then_default() {
        let routes = table(&[
            ("*", 9),
            ("*.example.com", 1),
            ("*.db.example.com", 2),
            ("db.example.com", 3),
            ("a.example", 4),
        ]);
        let cases = [
            ("db.example.com", Some(3)),
            ("DB.Example.COM", Some(3)),
            ("x.db.example.com", Some(2)),
            ("X.DB.EXAMPLE.COM", Some(2)),
            ("a.example.com", Some(1)),
            ("a.b.example.com", Some(1)),
            ("example.com", Some(9)),
            (".example.com", Some(9)),
            ("a.example", Some(4)),
            ("b.a.example", Some(9)),
            ("example.org", Some(9)),
            ("", Some(9)),
            ("*", Some(9)),
        ];
        for (name, want) in cases {
            assert_eq!(route(name, &routes), want, "{name}");
        }
    }

    #[test]
    fn no_default_means_no_route() {
        let routes = table(&[("*.example.com", 1), ("a.example", 4)]);
        assert_eq!(route("example.com", &routes), None);
        assert_eq!(
            route("xexample.com", &routes),
            None,
            "the dot is part of the suffix"
        );
        assert_eq!(route("a.example.com", &routes), Some(1));
        assert_eq!(route("anything", &[]), None);
    }

    #[test]
    fn first_of_equals_wins() {
        let routes = table(&[
            ("*.example.com", 1),
            ("*.example.com", 2),
            ("*", 3),
            ("*", 4),
        ]);
        assert_eq!(route("a.example.com", &routes), Some(1));
        assert_eq!(route("other", &routes), Some(3));
        let routes = table(&[("a.example", 1), ("A.EXAMPLE", 2)]);
        assert_eq!(route("a.example", &routes), Some(1));
    }

    #[test]
    fn odd_patterns_do_not_match_by_accident() {
        // The config refuses these; route() must still not misbehave.
        let routes = table(&[("*example.com", 1), ("*.", 2), ("**", 3)]);
        assert_eq!(route("a.example.com", &routes), None);
        assert_eq!(route("aexample.com", &routes), None);
        assert_eq!(route("a.", &routes), Some(2));
        assert_eq!(
            route("é.example.com", &table(&[("*.example.com", 1)])),
            Some(1)
        );
    }
}
