//! Counters behind `metrics`, rendered in the Prometheus text exposition
//! format (version 0.0.4). The protocol carries each line as `| text`; the
//! client prints the text, which is then a valid exposition.

use std::fmt::Write;
use std::time::Duration;

/// Runtime calls, by what they do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallVerb {
    Create,
    Start,
    Kill,
    Delete,
    Exec,
    Pause,
    Resume,
    Update,
    Checkpoint,
}

const VERBS: [(CallVerb, &str); 9] = [
    (CallVerb::Create, "create"),
    (CallVerb::Start, "start"),
    (CallVerb::Kill, "kill"),
    (CallVerb::Delete, "delete"),
    (CallVerb::Exec, "exec"),
    (CallVerb::Pause, "pause"),
    (CallVerb::Resume, "resume"),
    (CallVerb::Update, "update"),
    (CallVerb::Checkpoint, "checkpoint"),
];

/// Upper bounds of the start-latency buckets: as shown, and in
/// microseconds. Integers throughout keep float formatting (and its code)
/// out of the daemon.
const BUCKETS: [(&str, u64); 10] = [
    ("0.01", 10_000),
    ("0.025", 25_000),
    ("0.05", 50_000),
    ("0.1", 100_000),
    ("0.25", 250_000),
    ("0.5", 500_000),
    ("1", 1_000_000),
    ("2.5", 2_500_000),
    ("5", 5_000_000),
    ("10", 10_000_000),
];

#[derive(Debug, Default, Clone)]
pub struct Metrics {
    calls: [u64; VERBS.len()],
    failures: [u64; VERBS.len()],
    /// Start latency: `start` or `run` request to `started`.
    start_buckets: [u64; BUCKETS.len()],
    start_sum_us: u64,
    start_count: u64,
    pub events: u64,
    pub event_log_errors: u64,
    /// Quiet clients closed to make room for a new one.
    pub clients_made_room: u64,
    /// Clients closed for asking nothing for `--client-timeout`.
    pub clients_timed_out: u64,
    /// `wait`, `events` or `logs follow` refused: no follower's place.
    pub followers_refused: u64,
}

impl Metrics {
    /// Counts a finished runtime call.
    pub fn call(&mut self, verb: CallVerb, ok: bool) {
        let i = VERBS.iter().position(|v| v.0 == verb).unwrap_or(0);
        self.calls[i] += 1;
        if !ok {
            self.failures[i] += 1;
        }
    }

    pub fn started(&mut self, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        for ((_, bound), count) in BUCKETS.iter().zip(&mut self.start_buckets) {
            if us <= *bound {
                *count += 1;
            }
        }
        self.start_sum_us = self.start_sum_us.saturating_add(us);
        self.start_count += 1;
    }
}

/// What is measured at the moment of rendering.
pub struct Gauges<'a> {
    /// Containers per status word, every status listed.
    pub containers: &'a [(&'static str, usize)],
    pub max_containers: usize,
    pub subscribers: usize,
    pub clients: usize,
    /// Clients by place in the table (request, follower, tty), with the
    /// bound of each.
    pub places: [(&'static str, usize, usize); 3],
    pub resident_bytes: u64,
    /// Live and peak heap bytes and their bound, in a `heap-stats` build.
    pub heap: Option<(usize, usize, usize)>,
    /// With a watchdog: its pets, and whether petting goes on.
    pub watchdog: Option<(u64, bool)>,
    /// Addresses held on bridges by the containers.
    pub bridge_addresses: usize,
}

pub fn render(m: &Metrics, g: &Gauges) -> String {
    let mut out = String::new();
    let head = |out: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    head(
        &mut out,
        "nanoctr_containers",
        "gauge",
        "Containers by status.",
    );
    for (status, n) in g.containers {
        let _ = writeln!(out, "nanoctr_containers{{status=\"{status}\"}} {n}");
    }
    head(
        &mut out,
        "nanoctr_containers_max",
        "gauge",
        "Size of the container table.",
    );
    let _ = writeln!(out, "nanoctr_containers_max {}", g.max_containers);
    head(
        &mut out,
        "nanoctr_runtime_calls_total",
        "counter",
        "Runtime calls finished, by verb.",
    );
    for (i, (_, verb)) in VERBS.iter().enumerate() {
        let _ = writeln!(
            out,
            "nanoctr_runtime_calls_total{{verb=\"{verb}\"}} {}",
            m.calls[i]
        );
    }
    head(
        &mut out,
        "nanoctr_runtime_call_failures_total",
        "counter",
        "Runtime calls that failed, by verb.",
    );
    for (i, (_, verb)) in VERBS.iter().enumerate() {
        let _ = writeln!(
            out,
            "nanoctr_runtime_call_failures_total{{verb=\"{verb}\"}} {}",
            m.failures[i]
        );
    }
    head(
        &mut out,
        "nanoctr_start_duration_seconds",
        "histogram",
        "Time from a start or run request to the container running.",
    );
    for ((bound, _), count) in BUCKETS.iter().zip(&m.start_buckets) {
        let _ = writeln!(
            out,
            "nanoctr_start_duration_seconds_bucket{{le=\"{bound}\"}} {count}"
        );
    }
    let _ = writeln!(
        out,
        "nanoctr_start_duration_seconds_bucket{{le=\"+Inf\"}} {}",
        m.start_count
    );
    let (secs, us) = (m.start_sum_us / 1_000_000, m.start_sum_us % 1_000_000);
    let _ = writeln!(out, "nanoctr_start_duration_seconds_sum {secs}.{us:06}");

    let _ = writeln!(
        out,
        "nanoctr_start_duration_seconds_count {}",
        m.start_count
    );
    head(
        &mut out,
        "nanoctr_events_total",
        "counter",
        "Events emitted.",
    );
    let _ = writeln!(out, "nanoctr_events_total {}", m.events);
    head(
        &mut out,
        "nanoctr_event_log_write_errors_total",
        "counter",
        "Events that could not be written to the state dir.",
    );
    let _ = writeln!(
        out,
        "nanoctr_event_log_write_errors_total {}",
        m.event_log_errors
    );
    head(
        &mut out,
        "nanoctr_event_subscribers",
        "gauge",
        "Clients following the event stream.",
    );
    let _ = writeln!(out, "nanoctr_event_subscribers {}", g.subscribers);
    head(&mut out, "nanoctr_clients", "gauge", "Client connections.");
    let _ = writeln!(out, "nanoctr_clients {}", g.clients);
    head(
        &mut out,
        "nanoctr_client_places",
        "gauge",
        "Clients by place: request, follower, tty.",
    );
    for (place, n, _) in &g.places {
        let _ = writeln!(out, "nanoctr_client_places{{place=\"{place}\"}} {n}");
    }
    head(
        &mut out,
        "nanoctr_client_places_max",
        "gauge",
        "Places of each kind.",
    );
    for (place, _, max) in &g.places {
        let _ = writeln!(out, "nanoctr_client_places_max{{place=\"{place}\"}} {max}");
    }
    head(
        &mut out,
        "nanoctr_clients_closed_total",
        "counter",
        "Idle clients closed, to make room or past --client-timeout.",
    );
    let _ = writeln!(
        out,
        "nanoctr_clients_closed_total{{why=\"room\"}} {}",
        m.clients_made_room
    );
    let _ = writeln!(
        out,
        "nanoctr_clients_closed_total{{why=\"idle\"}} {}",
        m.clients_timed_out
    );
    head(
        &mut out,
        "nanoctr_followers_refused_total",
        "counter",
        "Followers refused: no place.",
    );
    let _ = writeln!(
        out,
        "nanoctr_followers_refused_total {}",
        m.followers_refused
    );
    head(
        &mut out,
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory of nanoctrd in bytes.",
    );
    let _ = writeln!(out, "process_resident_memory_bytes {}", g.resident_bytes);
    head(
        &mut out,
        "nanoctr_bridge_addresses",
        "gauge",
        "Addresses held on bridges by containers (net=bridge).",
    );
    let _ = writeln!(out, "nanoctr_bridge_addresses {}", g.bridge_addresses);
    if let Some((pets, petting)) = g.watchdog {
        head(
            &mut out,
            "nanoctr_watchdog_pets_total",
            "counter",
            "Pets of the hardware watchdog.",
        );
        let _ = writeln!(out, "nanoctr_watchdog_pets_total {pets}");
        head(
            &mut out,
            "nanoctr_watchdog_petting",
            "gauge",
            "1 while the watchdog is petted.",
        );
        let _ = writeln!(out, "nanoctr_watchdog_petting {}", u8::from(petting));
    }
    if let Some((live, peak, bound)) = g.heap {
        for (name, help, v) in [
            ("nanoctr_heap_live_bytes", "Heap bytes in use.", live),
            (
                "nanoctr_heap_peak_bytes",
                "Most heap bytes ever in use.",
                peak,
            ),
            (
                "nanoctr_heap_bound_bytes",
                "Bound on the heap from the capacities.",
                bound,
            ),
        ] {
            head(&mut out, name, "gauge", help);
            let _ = writeln!(out, "{name} {v}");
        }
    }
    out
}

/// The daemon's resident memory, from `/proc/self/status`.
pub fn resident_bytes() -> u64 {
    crate::files::read_kernel_text("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative() {
        let mut m = Metrics::default();
        m.started(Duration::from_millis(40));
        m.started(Duration::from_millis(300));
        m.started(Duration::from_secs(60));
        assert_eq!(m.start_buckets[..3], [0, 0, 1]);
        assert_eq!(m.start_buckets[5..], [2, 2, 2, 2, 2]);
        assert_eq!(m.start_count, 3);
    }

    #[test]
    fn renders_every_family_with_help_and_type() {
        let mut m = Metrics::default();
        m.call(CallVerb::Kill, false);
        let g = Gauges {
            containers: &[("running", 2), ("stopped", 0)],
            max_containers: 64,
            subscribers: 1,
            clients: 3,
            places: [("request", 2, 16), ("follower", 1, 32), ("tty", 0, 1)],
            resident_bytes: resident_bytes(),
            heap: None,
            bridge_addresses: 1,
            watchdog: Some((7, false)),
        };

        let text = render(&m, &g);
        assert!(text.contains("nanoctr_watchdog_pets_total 7\n"));
        assert!(text.contains("nanoctr_watchdog_petting 0\n"));
        assert!(text.contains("nanoctr_bridge_addresses 1\n"));
        assert!(text.contains("nanoctr_containers{status=\"running\"} 2\n"));
        assert!(text.contains("nanoctr_runtime_call_failures_total{verb=\"kill\"} 1\n"));
        assert!(text.contains("nanoctr_start_duration_seconds_bucket{le=\"+Inf\"} 0\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            let family = name
                .trim_end_matches("_bucket")
                .trim_end_matches("_sum")
                .trim_end_matches("_count");
            assert!(text.contains(&format!("# TYPE {family} ")), "{line}");
        }
        assert!(g.resident_bytes > 0);
    }
}
