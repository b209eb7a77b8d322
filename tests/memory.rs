//! Flat memory: after warm-up, the daemon's live heap returns to the same
//! number of bytes after every create/start/wait/delete/list/events cycle,
//! and its peak stays under the bound its capacities give. The daemon is a
//! build with a counting allocator (`--features heap-stats`), which shows
//! its heap in `metrics`.

use std::collections::HashMap;

use nanoctr_tests::{fields, heap_stats_daemon, Daemon, Launch, Runtime};

const CYCLES: usize = 200;
const WARM_UP: usize = 20;

/// The `metrics` gauges and counters, by name.
fn metrics(d: &Daemon) -> HashMap<String, u64> {
    let a = d.ask("metrics");
    a.ok();
    a.data
        .iter()
        .filter_map(|l| l.strip_prefix("| "))
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
        .collect()
}

/// The daemon's live heap once it is serving only the asking client.
fn live_heap(d: &Daemon) -> (u64, HashMap<String, u64>) {
    let mut m = metrics(d);
    d.eventually("the other clients to be gone", || {
        m = metrics(d);
        m["nanoctr_clients"] == 1
    });
    (m["nanoctr_heap_live_bytes"], m)
}

#[test]
fn the_heap_is_flat_across_cycles_and_under_its_bound() {
    let d = Daemon::launch(
        Runtime::Runc,
        Launch {
            daemon: Some(heap_stats_daemon().to_path_buf()),
            flags: [
                "--retain",
                "16",
                "--max-containers",
                "4",
                "--max-clients",
                "4",
                "--max-calls",
                "2",
            ]
            .map(String::from)
            .to_vec(),
            ..Launch::default()
        },
    );
    let b = d.bundle("c", &["sh", "-c", "echo cycle"]);
    let mut after = Vec::with_capacity(CYCLES);
    for _ in 0..CYCLES {
        d.ask(&format!("run c {} label.cycle=yes", b.display()))
            .ok();
        assert_eq!(d.ask("wait c").ok(), "exit=0");
        d.ask("delete c").ok();
        assert_eq!(d.ask("list").ok(), "count=0");
        // A subscriber that replays a little, follows, and leaves.
        let mut sub = d.conn();
        sub.send("events since=0 type=exit");
        assert_eq!(fields(&sub.line())["type"], "exit");
        drop(sub);
        after.push(live_heap(&d).0);
    }
    let settled = after[WARM_UP];
    for (i, live) in after.iter().enumerate().skip(WARM_UP) {
        assert_eq!(
            *live, settled,
            "live heap after cycle {i} differs from after cycle {WARM_UP}"
        );
    }
    let (_, m) = live_heap(&d);
    let (peak, bound) = (m["nanoctr_heap_peak_bytes"], m["nanoctr_heap_bound_bytes"]);
    assert!(peak < bound, "peak {peak} bytes over the bound {bound}");
    eprintln!(
        "heap: {settled} bytes live after each of cycles {WARM_UP}..{CYCLES} \
         (after cycle 1: {}), peak {peak}, bound {bound}",
        after[0]
    );
}
