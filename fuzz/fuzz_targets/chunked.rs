//! Arbitrary bytes as a chunked body, split where the fuzzer says: never panic, ranges stay in
//! bounds, and the split (or feeding one octet at a time) changes nothing.

#![no_main]

use coregate::http::h1::{ChunkError, ChunkedDecoder, Event};
use libfuzzer_sys::fuzz_target;

/// What one run produced: data, trailer lines, and how it ended.
#[derive(Debug, PartialEq)]
struct Outcome {
    data: Vec<u8>,
    trailers: Vec<Vec<u8>>,
    /// `Ok(Some(consumed))` when done, `Ok(None)` when the input ran out first.
    end: Result<Option<usize>, ChunkError>,
}

/// Feeds `body` as a connection would: octets arrive up to each cut, unconsumed ones stay.
fn run(body: &[u8], cuts: impl IntoIterator<Item = usize>) -> Outcome {
    let mut cuts = cuts.into_iter().chain(std::iter::once(body.len()));
    let mut arrived = cuts.next().unwrap_or(body.len()).min(body.len());
    let (mut dec, mut used) = (ChunkedDecoder::new(), 0);
    let (mut data, mut trailers) = (Vec::new(), Vec::new());
    let end = loop {
        let buf = &body[used..arrived];
        let (n, event) = match dec.decode(buf) {
            Ok(step) => step,
            Err(e) => break Err(e),
        };
        assert!(n <= buf.len());
        match event {
            Event::Data(r) => {
                assert!(!r.is_empty() && r.end == n, "data ends the consumed span");
                data.extend_from_slice(&buf[r]);
            }
            Event::Trailer(r) => {
                assert!(r.end + 2 == n && buf[r.end..n] == *b"\r\n");
                trailers.push(buf[r].to_vec());
            }
            Event::Done => break Ok(Some(used + n)),
            Event::NeedMore if arrived == body.len() => break Ok(None),
            Event::NeedMore => {
                arrived = cuts.next().unwrap_or(body.len()).clamp(arrived, body.len())
            }
        }
        used += n;
    };
    Outcome {
        data,
        trailers,
        end,
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((cut, body)) = input.split_first_chunk::<2>() else {
        return;
    };
    let cut = usize::from(u16::from_le_bytes(*cut)) % (body.len() + 1);
    let whole = run(body, [body.len()]);
    assert!(whole.data.len() <= body.len());
    assert_eq!(run(body, [cut]), whole, "split at {cut}");
    if body.len() <= 512 {
        assert_eq!(run(body, 1..body.len()), whole, "one octet at a time");
    }
});
