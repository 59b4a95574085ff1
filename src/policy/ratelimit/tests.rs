//! Deterministic tests under a fake clock, including the multi-worker accuracy simulations whose
//! printed figures (`cargo test --lib policy -- --nocapture`) are in docs/rate-limiting.md.

use std::time::{Duration, Instant};

use super::bucket::Bucket;
use super::{keyed::Keyed, Limiter, RateShared, MAX_KEYS, REBALANCE_INTERVAL};
use crate::config::{RateLimit, RequestKey};

fn limit(rps: f64, burst: f64, key: RequestKey) -> RateLimit {
    RateLimit { rps, burst, key }
}

fn at(t0: Instant, secs: f64) -> Instant {
    t0 + Duration::from_secs_f64(secs)
}

// ---------------------------------------------------------------- one worker

#[test]
fn one_worker_admits_the_burst_then_rps_per_second() {
    let t0 = Instant::now();
    let (rps, burst) = (100.0, 50.0);
    let mut l = Limiter::new(
        &limit(rps, burst, RequestKey::Global),
        RateShared::new(1),
        0,
        t0,
    );
    // 1000 requests/s, one every millisecond, for 5 s; rebalancing changes nothing alone.
    let mut admitted_by = Vec::new();
    let mut admitted = 0u64;
    for ms in 0..5000u64 {
        let now = t0 + Duration::from_millis(ms);
        if ms % 50 == 0 {
            l.rebalance(now);
        }
        if l.check(None, now).is_ok() {
            admitted += 1;
        }
        if ms % 1000 == 999 {
            admitted_by.push(admitted);
        }
    }
    for (s, &n) in admitted_by.iter().enumerate() {
        // By the end of second s+1: the burst plus what rps earned in (s+1) s, to the request.
        let expected = burst + rps * (s as f64 + 0.999);
        assert!(
            (n as f64 - expected).abs() <= 1.0,
            "after {} s: {n}, expected {expected}",
            s + 1
        );
    }
    let per_second: Vec<u64> = admitted_by.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(per_second.iter().all(|&n| n == 100), "{per_second:?}");
}

#[test]
fn retry_after_is_the_wait_for_one_token_and_at_least_one() {
    let t0 = Instant::now();
    // 100/s: a token every 10 ms, so "1".
    let mut fast = Limiter::new(
        &limit(100.0, 1.0, RequestKey::Global),
        RateShared::new(1),
        0,
        t0,
    );
    assert_eq!(fast.check(None, t0), Ok(()));
    assert_eq!(fast.check(None, t0), Err(1));
    // 0.2/s: a token every 5 s.
    let mut slow = Limiter::new(
        &limit(0.2, 1.0, RequestKey::Global),
        RateShared::new(1),
        0,
        t0,
    );
    assert_eq!(slow.check(None, t0), Ok(()));
    assert_eq!(slow.check(None, t0), Err(5));
    assert_eq!(slow.check(None, at(t0, 1.5)), Err(4)); // 3.5 s left, rounded up
    assert_eq!(slow.check(None, at(t0, 4.9)), Err(1));
    assert_eq!(slow.check(None, at(t0, 5.0)), Ok(()));
    // Keyed: the same per key.
    let mut keyed = Limiter::new(
        &limit(0.5, 1.0, RequestKey::ClientIp),
        RateShared::new(1),
        0,
        t0,
    );
    assert_eq!(keyed.check(Some(b"a"), t0), Ok(()));
    assert_eq!(keyed.check(Some(b"a"), t0), Err(2));
    assert_eq!(keyed.check(Some(b"b"), t0), Ok(()));
}

#[test]
fn a_starved_worker_quotes_the_wait_at_an_equal_split_not_at_its_floor() {
    let t0 = Instant::now();
    let shared = RateShared::new(2);
    let cfg = limit(2.0, 2.0, RequestKey::Global);
    let mut busy = Limiter::new(&cfg, shared.clone(), 0, t0);
    let mut idle = Limiter::new(&cfg, shared, 1, t0);
    for i in 1..=20 {
        let now = at(t0, i as f64 * 0.05);
        for _ in 0..5 {
            let _ = busy.check(None, now);
        }
        busy.rebalance(now);
        idle.rebalance(now);
    }
    // The idle worker holds the floor (2.5% of 2/s: a token every 20 s) but says 1 s, the wait at
    // 1/s, since its share grows as soon as its demand is published.
    let now = at(t0, 1.0);
    let _ = idle.check(None, now);
    assert_eq!(idle.check(None, now), Err(1));
}

// ------------------------------------------------------------ simulations

/// How requests arrive at a worker offered `rate` per second.
#[derive(Clone, Copy, Debug)]
enum Arrivals {
    /// Evenly spaced.
    Even,
    /// A Poisson process (seeded, so still deterministic).
    Poisson(u64),
}

/// xorshift64*: a tiny deterministic generator for Poisson arrivals.
struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        ((x >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
}

/// Workers under a fake clock, each with its own arrivals and its own rebalance timer.
struct Sim {
    workers: usize,
    rps: f64,
    burst: f64,
    key: RequestKey,
    secs: f64,
    /// Worker i rebalances at `(offsets[i] + k) × interval`.
    offsets: Vec<f64>,
    interval: f64,
    arrivals: Arrivals,
}

/// What a run admitted, per second.
struct Outcome {
    /// `admitted[s][c]`: requests of class c admitted during second s.
    admitted: Vec<Vec<u64>>,
    /// What one process-wide bucket (the thing being approximated) admits of the same arrivals.
    ideal: Vec<u64>,
}

/// Idle workers, and Poisson gaps longer than this, are looked at again after it.
const POLL: f64 = 0.001;

impl Sim {
    fn new(workers: usize, rps: f64) -> Sim {
        Sim {
            workers,
            rps,
            burst: rps,
            key: RequestKey::Global,
            secs: 20.0,
            offsets: (0..workers).map(|i| i as f64 * 0.37 % 1.0).collect(),
            interval: REBALANCE_INTERVAL.as_secs_f64(),
            arrivals: Arrivals::Even,
        }
    }

    /// Runs the workers with `rate(worker, t)` requests/s offered to each; request n of worker w
    /// carries `key(w, n)` and is counted in class `class(w, n)`.
    fn run(
        &self,
        rate: &dyn Fn(usize, f64) -> f64,
        key: &dyn Fn(usize, u64) -> Option<Vec<u8>>,
        class: &dyn Fn(usize, u64) -> usize,
        classes: usize,
    ) -> Outcome {
        let t0 = Instant::now();
        let shared = RateShared::new(self.workers);
        let cfg = limit(self.rps, self.burst, self.key.clone());
        let mut limiters: Vec<Limiter> = (0..self.workers)
            .map(|w| Limiter::new(&cfg, shared.clone(), w, t0))
            .collect();
        let mut ideal_bucket = Bucket::full(self.burst, 0);
        let mut rng: Vec<Rng> = (0..self.workers)
            .map(|w| match self.arrivals {
                Arrivals::Poisson(seed) => Rng(seed.wrapping_mul(2 * w as u64 + 1) | 1),
                Arrivals::Even => Rng(1),
            })
            .collect();
        let mut next_arrival = vec![0.0; self.workers];
        let mut pending: Vec<bool> = (0..self.workers).map(|w| rate(w, 0.0) > 0.0).collect();
        let mut next_rebalance: Vec<f64> =
            (self.offsets.iter()).map(|o| o * self.interval).collect();
        let mut count = vec![0u64; self.workers];
        let seconds = self.secs.ceil() as usize;
        let mut out = Outcome {
            admitted: vec![vec![0; classes]; seconds],
            ideal: vec![0; seconds],
        };
        loop {
            let (w, t, is_rebalance) = (0..self.workers)
                .flat_map(|w| [(w, next_arrival[w], false), (w, next_rebalance[w], true)])
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .unwrap();
            if t >= self.secs {
                return out;
            }
            let now = at(t0, t);
            if is_rebalance {
                limiters[w].rebalance(now);
                next_rebalance[w] += self.interval;
                continue;
            }
            if pending[w] {
                let n = count[w];
                count[w] += 1;
                let k = key(w, n);
                if limiters[w].check(k.as_deref(), now).is_ok() {
                    out.admitted[t as usize][class(w, n)] += 1;
                }
                let nanos = (t * 1e9) as u64;
                if ideal_bucket
                    .take(nanos, self.rps, self.burst, self.rps)
                    .is_ok()
                {
                    out.ideal[t as usize] += 1;
                }
            }
            let r = rate(w, t);
            let gap = match self.arrivals {
                _ if r <= 0.0 => f64::INFINITY,
                Arrivals::Even => 1.0 / r,
                Arrivals::Poisson(_) => -rng[w].uniform().ln() / r,
            };
            // Poisson arrivals are memoryless: a long gap may be redrawn at the poll, so that a
            // change of rate takes effect at once. Even arrivals keep their spacing.
            let redraw = gap > POLL && !matches!(self.arrivals, Arrivals::Even) || r <= 0.0;
            pending[w] = !redraw;
            next_arrival[w] = t + if redraw { POLL } else { gap };
        }
    }

    fn run_global(&self, rate: &dyn Fn(usize, f64) -> f64) -> Outcome {
        self.run(rate, &|_, _| None, &|_, _| 0, 1)
    }
}

/// Accuracy of one run over seconds `warmup..`, as fractions (+ = too many admitted).
#[derive(Debug, Clone, Copy, Default)]
struct Accuracy {
    /// Worst second against `rps`: what the issue bounds by ±10%.
    worst: f64,
    /// The second it happened in.
    at: usize,
    /// Worst second from the second one on against one process-wide bucket fed the same
    /// arrivals: the cost of splitting the bucket, without the bucket's own second-to-second
    /// jitter (which dominates at low rates) and without the start (a split burst drains
    /// differently from a whole one).
    worst_vs_ideal: f64,
    /// All those seconds together against `rps`.
    mean: f64,
}

fn accuracy(per_second: &[u64], ideal: &[u64], rps: f64, warmup: usize) -> Accuracy {
    let mut a = Accuracy::default();
    for s in warmup..per_second.len() {
        let e = (per_second[s] as f64 - rps) / rps;
        if e.abs() > a.worst.abs() {
            (a.worst, a.at) = (e, s);
        }
        let e = (per_second[s] as f64 - ideal[s] as f64) / rps;
        if s > warmup && e.abs() > a.worst_vs_ideal.abs() {
            a.worst_vs_ideal = e;
        }
    }
    let total: u64 = per_second[warmup..].iter().sum();
    a.mean = total as f64 / ((per_second.len() - warmup) as f64 * rps) - 1.0;
    a
}

fn global_accuracy(outcome: &Outcome, rps: f64) -> Accuracy {
    let per_second: Vec<u64> = outcome.admitted.iter().map(|c| c[0]).collect();
    accuracy(&per_second, &outcome.ideal, rps, 1)
}

/// Keeps the worse of two accuracies, field by field.
fn worse(a: Accuracy, b: Accuracy) -> Accuracy {
    let pick = |x: f64, y: f64| if y.abs() > x.abs() { y } else { x };
    Accuracy {
        worst: pick(a.worst, b.worst),
        at: if b.worst.abs() > a.worst.abs() {
            b.at
        } else {
            a.at
        },
        worst_vs_ideal: pick(a.worst_vs_ideal, b.worst_vs_ideal),
        mean: pick(a.mean, b.mean),
    }
}

/// Offered load in the three scenarios of the issue, 2 × rps in total.
fn scenario(name: &str, rps: f64) -> Box<dyn Fn(usize, f64) -> f64> {
    let offered = 2.0 * rps;
    match name {
        "all on worker 0" => Box::new(move |w, _| if w == 0 { offered } else { 0.0 }),
        "50/50" => Box::new(move |_, _| offered / 2.0),
        "90/10 → 10/90 at 10 s" => Box::new(move |w, t| {
            let first = if t < 10.0 { 0.9 } else { 0.1 };
            offered * if w == 0 { first } else { 1.0 - first }
        }),
        _ => unreachable!(),
    }
}

const SCENARIOS: [&str; 3] = ["all on worker 0", "50/50", "90/10 → 10/90 at 10 s"];

/// Seeds of the Poisson runs; each case is run with evenly spaced arrivals and with these.
const SEEDS: [u64; 3] = [
    0x9e37_79b9_7f4a_7c15,
    0xd1b5_4a32_d192_ed03,
    0x8cb9_2ba7_2f3d_8dd7,
];

/// The bound: every second after the first within ±10% of rps.
const TOLERANCE: f64 = 0.10;

/// Worst case of one scenario over the arrival patterns and two rebalance phasings (worker 1
/// 0.37 of an interval after worker 0, and both at once).
fn worst_case(name: &str, rps: f64, interval: f64) -> Accuracy {
    let mut acc = Accuracy::default();
    let patterns = [Arrivals::Even]
        .into_iter()
        .chain(SEEDS.map(Arrivals::Poisson));
    for arrivals in patterns {
        for offsets in [[0.0, 0.37], [0.0, 0.0]] {
            let mut sim = Sim::new(2, rps);
            sim.arrivals = arrivals;
            sim.offsets = offsets.to_vec();
            sim.interval = interval;
            acc = worse(
                acc,
                global_accuracy(&sim.run_global(&*scenario(name, rps)), rps),
            );
        }
    }
    acc
}

fn pct(x: f64) -> String {
    format!("{:+.1}%", x * 100.0)
}

#[test]
fn two_workers_admit_rps_within_ten_percent_wherever_traffic_lands() {
    let interval = REBALANCE_INTERVAL.as_secs_f64();
    let mut table = String::from(
        "| scenario | rps | worst second vs rps (which) | worst second vs one ideal bucket (from s 2) | 19 s together |\n|---|---|---|---|---|\n",
    );
    for name in SCENARIOS {
        for rps in [100.0, 1_000.0, 10_000.0] {
            let a = worst_case(name, rps, interval);
            table += &format!(
                "| {name} | {rps} | {} (s {}) | {} | {} |\n",
                pct(a.worst),
                a.at,
                pct(a.worst_vs_ideal),
                pct(a.mean)
            );
            assert!(a.worst.abs() <= TOLERANCE, "{name} at {rps} rps: {a:?}");
        }
    }
    println!("two workers, 2 × rps offered, 20 s, seconds 1 to 19, worst of 8 runs:\n{table}");
}

#[test]
fn accuracy_by_rate_and_rebalance_interval() {
    // The trade-off behind REBALANCE_INTERVAL, and where per-second accuracy runs out at low
    // rates; only the chosen interval at 100 rps and above is held to the bound.
    let mut table = String::from(
        "| interval | rps | all on worker 0 | 50/50 | 90/10 → 10/90 |\n|---|---|---|---|---|\n",
    );
    for interval_ms in [25.0, 50.0, 100.0, 200.0] {
        for rps in [10.0, 20.0, 100.0, 1_000.0] {
            let mut row = format!("| {interval_ms} ms | {rps} |");
            for name in SCENARIOS {
                let a = worst_case(name, rps, interval_ms / 1e3);
                row += &format!(" {} (vs ideal {}) |", pct(a.worst), pct(a.worst_vs_ideal));
                if interval_ms / 1e3 == REBALANCE_INTERVAL.as_secs_f64() && rps >= 100.0 {
                    assert!(a.worst.abs() <= TOLERANCE, "{name} at {rps} rps: {a:?}");
                }
            }
            table += &row;
            table += "\n";
        }
    }
    println!("worst second, two workers, 2 × rps offered:\n{table}");
}

#[test]
fn more_workers_with_a_moving_hot_spot_stay_within_ten_percent() {
    // Eight workers, each rebalancing at its own phase; all 2 × rps lands on one worker at a
    // time, moving every 2.5 s; then the same load spread evenly.
    let rps = 1_000.0;
    let sim = Sim::new(8, rps);
    let hot = move |w: usize, t: f64| {
        if w == (t / 2.5) as usize % 8 {
            2.0 * rps
        } else {
            0.0
        }
    };
    let moving = global_accuracy(&sim.run_global(&hot), rps);
    let even = global_accuracy(&sim.run_global(&move |_, _| 2.0 * rps / 8.0), rps);
    println!(
        "eight workers, rps 1000: hot spot moving every 2.5 s: worst {} (s {}); spread evenly: worst {} (s {})",
        pct(moving.worst),
        moving.at,
        pct(even.worst),
        even.at
    );
    assert!(moving.worst.abs() <= TOLERANCE, "{moving:?}");
    assert!(even.worst.abs() <= TOLERANCE, "{even:?}");
}

// ------------------------------------------------------------------- keys

#[test]
fn each_key_gets_its_own_rps_on_one_worker() {
    let t0 = Instant::now();
    let (rps, burst) = (10.0, 10.0);
    let mut l = Limiter::new(
        &limit(rps, burst, RequestKey::ClientIp),
        RateShared::new(1),
        0,
        t0,
    );
    let mut admitted = [0u64; 2];
    // Both keys at 100/s for 5 s, interleaved.
    for ms in 0..5000u64 {
        let now = t0 + Duration::from_millis(ms);
        if ms % 50 == 0 {
            l.rebalance(now);
        }
        for (i, key) in [&[10u8, 0, 0, 1][..], &[10, 0, 0, 2]]
            .into_iter()
            .enumerate()
        {
            if ms % 10 == 0 && l.check(Some(key), now).is_ok() {
                admitted[i] += 1;
            }
        }
    }
    for n in admitted {
        assert!(
            (n as f64 - (burst + rps * 4.99)).abs() <= 1.0,
            "{admitted:?}"
        );
    }
    // A header-keyed route with the header absent: all such requests share one bucket.
    let mut h = Limiter::new(
        &limit(1.0, 1.0, RequestKey::Header("x-api-key".into())),
        RateShared::new(1),
        0,
        t0,
    );
    assert!(h.check(None, t0).is_ok());
    assert!(h.check(None, t0).is_err());
    assert!(h.check(Some(b"k"), t0).is_ok());
}

/// Per-second admitted requests of class `c`.
fn class(outcome: &Outcome, c: usize) -> Vec<u64> {
    outcome.admitted.iter().map(|s| s[c]).collect()
}

#[test]
fn keys_on_different_workers_each_get_their_full_rps() {
    // Two clients, one connection each, on different workers: each must get rps, not rps / 2
    // (which a per-key rate of rps × the worker's route share would give).
    let rps = 100.0;
    let mut sim = Sim::new(2, rps);
    sim.key = RequestKey::ClientIp;
    let key = |w: usize, _| Some(vec![10, 0, 0, w as u8]);
    let outcome = sim.run(&|_, _| 3.0 * rps, &key, &|w, _| w, 2);
    for k in 0..2 {
        let per_second = class(&outcome, k);
        let a = accuracy(&per_second, &per_second, rps, 1);
        println!(
            "client alone on worker {k}, 3 × rps: worst {} (s {})",
            pct(a.worst),
            a.at
        );
        assert!(a.worst.abs() <= TOLERANCE, "{per_second:?}");
    }
}

#[test]
fn a_key_spread_over_workers_gets_rps_in_total() {
    // One API key whose requests arrive on both workers (many clients share it). A key new to two
    // workers at once has a whole burst on each until the first rebalance pairs them up, which
    // spills into second 1 at 2 × rps; the bound is held from second 2.
    let rps = 100.0;
    for split in [0.5, 0.9] {
        let mut acc = Accuracy::default();
        for arrivals in [Arrivals::Even]
            .into_iter()
            .chain(SEEDS.map(Arrivals::Poisson))
        {
            let mut sim = Sim::new(2, rps);
            sim.key = RequestKey::Header("x-api-key".into());
            sim.arrivals = arrivals;
            let rate = move |w: usize, _| 2.0 * rps * if w == 0 { split } else { 1.0 - split };
            let outcome = sim.run(&rate, &|_, _| Some(b"team-a".to_vec()), &|_, _| 0, 1);
            let per_second = class(&outcome, 0);
            acc = worse(acc, accuracy(&per_second, &outcome.ideal, rps, 2));
        }
        println!(
            "one key spread {:.0}/{:.0} over two workers, 2 × rps: worst {} (s {}), vs ideal {}",
            split * 100.0,
            (1.0 - split) * 100.0,
            pct(acc.worst),
            acc.at,
            pct(acc.worst_vs_ideal)
        );
        assert!(acc.worst.abs() <= TOLERANCE, "{acc:?}");
    }
}

#[test]
fn a_flood_on_one_worker_does_not_shrink_other_keys_limits() {
    // Worker 1 carries 50 000 requests/s from 1000 rotating keys; worker 0 one client at 2 × rps.
    let rps = 100.0;
    let mut sim = Sim::new(2, rps);
    sim.key = RequestKey::ClientIp;
    sim.secs = 5.0;
    let rate = |w: usize, _| if w == 0 { 2.0 * rps } else { 50_000.0 };
    let key = |w: usize, n: u64| {
        Some(if w == 0 {
            b"client".to_vec()
        } else {
            (n % 1000).to_le_bytes().to_vec()
        })
    };
    let outcome = sim.run(&rate, &key, &|w, _| w, 2);
    let client = class(&outcome, 0);
    let a = accuracy(&client, &client, rps, 1);
    println!(
        "a client next to a flood on the other worker: worst {} (s {})",
        pct(a.worst),
        a.at
    );
    assert!(a.worst.abs() <= TOLERANCE, "{client:?}");
}

#[test]
fn the_key_table_stays_bounded_and_an_active_key_keeps_its_state_under_a_flood() {
    let (rps, burst) = (10.0, 10.0);
    let mut k = Keyed::new(rps, burst, RateShared::new(1), 0);
    let active = b"active client".as_slice();
    let mut active_admitted = 0u64;
    // 1 000 000 distinct keys over 10 s (100 000 new keys/s, a revolution of the table every
    // 0.66 s); the active key sends 20/s, twice its limit.
    let flood = 1_000_000u64;
    let secs = 10.0;
    for i in 0..flood {
        let t = i as f64 * secs / flood as f64;
        let now = (t * 1e9) as u64;
        let _ = k.check(&i.to_le_bytes(), now);
        if i % (flood / (secs as u64 * 20)) == 0 {
            if k.check(active, now).is_ok() {
                active_admitted += 1;
            }
            assert!(k.share_of(active).is_some(), "active key evicted at {t} s");
        }
        if i % 5000 == 0 {
            k.rebalance(now, 0.05);
        }
        assert!(k.len() <= MAX_KEYS);
    }
    assert_eq!(k.len(), MAX_KEYS);
    assert_eq!(k.index_len(), MAX_KEYS);
    // Had its state been evicted, it would have had a fresh burst: burst + rps × 10 s at most.
    let bound = burst + rps * secs;
    println!("active key under a 1 M-key flood: admitted {active_admitted} (limit {bound})");
    assert!(active_admitted as f64 <= bound + 1.0, "{active_admitted}");
    assert!(active_admitted as f64 >= bound - 2.0, "{active_admitted}");
}

#[test]
fn eviction_takes_full_buckets_first_then_the_least_recently_used() {
    let sec = 1_000_000_000u64;
    // 0.1/s, burst 2: a drained bucket is full again after 20 s.
    let mut k = Keyed::with_max_keys(0.1, 2.0, RateShared::new(1), 0, 3);
    for key in [b"a", b"b", b"c"] {
        let _ = k.check(key, 0);
        let _ = k.check(key, 0); // drained, and used twice: referenced
    }
    for key in [b"a", b"c"] {
        let _ = k.check(key, 15 * sec); // 1.5 tokens → 0.5: not full at 20 s
    }
    // At 20 s b is full again. The hand spares a (used, not full) and evicts b, though b was
    // used as recently as c: a full bucket holds nothing a fresh one would not.
    let _ = k.check(b"d", 20 * sec);
    assert!(k.share_of(b"b").is_none(), "the full bucket goes first");
    assert!(k.share_of(b"a").is_some() && k.share_of(b"c").is_some());
    // Nothing is full now. a is used again; d was seen once. The next newcomer: the hand spares c
    // and a (used since it last passed) and takes d, seen only once since it came in.
    let now = 20 * sec + sec / 10;
    let _ = k.check(b"a", now);
    let _ = k.check(b"e", now);
    assert!(k.share_of(b"d").is_none(), "the once-seen key goes next");
    assert!(k.share_of(b"a").is_some() && k.share_of(b"c").is_some());
    assert_eq!(k.len(), 3);
}

#[test]
fn checking_an_existing_key_never_grows_a_container() {
    // The lib's test binary already has its global allocator (src/auth/tests.rs counts
    // allocations) and a second one is refused, so this checks the means instead: after
    // warm-up, neither `check` on known keys nor a steady-state rebalance grows any container.
    // The rest of the path is a SipHash on the stack, a map lookup and arithmetic.
    let shared = RateShared::new(2);
    let mut keyed = Keyed::new(1e6, 1e6, shared.clone(), 0);
    let mut other = Keyed::new(1e6, 1e6, shared, 1);
    let keys: Vec<[u8; 4]> = (0..1000u32).map(|i| i.to_be_bytes()).collect();
    let mut round = |from: u64, check_only: bool| {
        for r in 0..4u64 {
            let now = from + r * 50_000_000;
            for k in &keys {
                let _ = keyed.check(k, now);
                let _ = other.check(k, now);
            }
            if !check_only {
                keyed.rebalance(now, 0.05);
                other.rebalance(now, 0.05);
            }
        }
        (keyed.capacities(), other.capacities())
    };
    let warm = round(0, false);
    assert_eq!(round(1_000_000_000, true), warm, "check grew a container");
    assert_eq!(
        round(2_000_000_000, false),
        warm,
        "rebalance grew a container"
    );
}
