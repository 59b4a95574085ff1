//! Arbitrary bytes as a request head (and as a response head): never panic, and whatever parses
//! must describe only bytes inside the head it reports.

#![no_main]

use coregate::http::h1::{Framing, HeadLimits, Method, RequestHead, ResponseHead};
use libfuzzer_sys::fuzz_target;
use std::ops::Range;

/// Small limits so the fuzzer reaches 414 / 431 paths quickly.
const LIMITS: HeadLimits = HeadLimits {
    max_head: 1024,
    max_target: 128,
    max_headers: 16,
};

fuzz_target!(|data: &[u8]| {
    request(data);
    response(data);
});

fn request(data: &[u8]) {
    let mut head = RequestHead::new();
    let Ok(Some(len)) = head.parse(data, &LIMITS) else {
        return;
    };
    assert_eq!(len, head.head_len());
    assert!(len <= data.len() && len <= LIMITS.max_head);
    assert!(data[..len].ends_with(b"\r\n\r\n"));
    let inside = |r: &Range<usize>| r.start <= r.end && r.end <= len;
    assert!(inside(&head.method_range()) && inside(&head.target()));
    assert!(!head.target().is_empty() && head.target().len() <= LIMITS.max_target);
    assert!(head.fields().len() <= LIMITS.max_headers);
    assert!(head
        .fields()
        .iter()
        .all(|f| inside(&f.name) && inside(&f.value)));
    assert!(head.host().is_none_or(|h| inside(&h)));
    assert!(head.connection().tokens().iter().all(inside));
    assert_ne!(head.framing(), Framing::CloseDelimited);
    // The head alone parses the same, and one octet short of it is merely incomplete.
    let mut again = RequestHead::new();
    assert_eq!(again.parse(&data[..len], &LIMITS), Ok(Some(len)));
    assert_eq!(again.parse(&data[..len - 1], &LIMITS), Ok(None));
}

fn response(data: &[u8]) {
    let mut head = ResponseHead::new();
    let Ok(Some(len)) = head.parse(data, &LIMITS, Method::Get) else {
        return;
    };
    assert!(len <= data.len() && len <= LIMITS.max_head);
    assert!(data[..len].ends_with(b"\r\n\r\n"));
    assert!((100..=599).contains(&head.status()));
    let inside = |r: &Range<usize>| r.start <= r.end && r.end <= len;
    assert!(inside(&head.reason()));
    assert!(head
        .fields()
        .iter()
        .all(|f| inside(&f.name) && inside(&f.value)));
    assert!(head.connection().tokens().iter().all(inside));
    let mut again = ResponseHead::new();
    assert_eq!(
        again.parse(&data[..len - 1], &LIMITS, Method::Get),
        Ok(None)
    );
}
