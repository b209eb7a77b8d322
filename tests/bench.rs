//! nanoctr-bench: nanoctr and plain runc side by side, in one run, on the
//! same busybox bundle. Prints a table, then the same figures as
//! `name: value` lines so two runs can be compared.
//!
//! Usage: nanoctr-bench [--runs N] [--cycles N]   (defaults 30 and 1000)
//!
//! runc and nanoctr alternate run by run, so a change in the speed of this
//! shared machine falls on both alike. Latency is wall time; CPU is
//! user+system time of every process involved, from
//! `getrusage(RUSAGE_CHILDREN)`: each runc's as it is reaped, nanoctr's as
//! the rest of the phase, which ends by reaping its own daemon (so the
//! daemon, its shims and its runtime calls are all counted). Memory is read
//! from /proc (`status`, `smaps_rollup`). The daemons keep their state dir
//! on a tmpfs, as `/run` is on a device. Figures are what this machine gave
//! in this run: compare ratios, not absolute numbers.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nanoctr_tests::{bin, sys::children_cpu, Daemon, Launch, Runtime};

/// A daemon as on a device: its state dir on a tmpfs (`/run`), where the
/// fsync of atomic writes costs nothing.
fn daemon() -> Daemon {
    Daemon::launch(
        Runtime::Runc,
        Launch {
            state_tmpfs_kib: Some(16 * 1024),
            ..Launch::default()
        },
    )
}

struct Report {
    rows: Vec<(String, String)>,
}

impl Report {
    fn put(&mut self, name: &str, value: impl std::fmt::Display) {
        self.rows.push((name.to_string(), value.to_string()));
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median_p90(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    let median = if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    };
    let p90 = v[((v.len() as f64 * 0.9).ceil() as usize)
        .saturating_sub(1)
        .min(v.len() - 1)];
    (median, p90)
}

/// Runs a command to its end, quietly. Its stderr goes to a file, not a
/// pipe: a detached container inherits it and would hold a pipe open.
fn run_quiet(cmd: &mut Command) {
    let log = std::env::temp_dir().join(format!("nanoctr-bench-{}.err", std::process::id()));
    let err = std::fs::File::create(&log).expect("stderr file");
    let status = cmd.stdout(Stdio::null()).stderr(err).status().expect("run");
    assert!(
        status.success(),
        "{cmd:?}: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

fn nanoctr(d: &Daemon, args: &[&str]) -> Command {
    let mut cmd = Command::new(bin("nanoctr"));
    cmd.args(args).env("NANOCTR_SOCKET", &d.socket);
    cmd
}

/// The daemon `m` idle, then with 64 running containers, and its shims;
/// every key starts with `prefix`. The containers are deleted after.
fn sixty_four(r: &mut Report, prefix: &str, m: &Daemon, sleeper: &Path) {
    std::thread::sleep(Duration::from_millis(200));
    let (rss, pss, _) = memory(m.pid());
    r.put(&format!("{prefix}daemon_idle_rss_kib"), rss);
    r.put(&format!("{prefix}daemon_idle_pss_kib"), pss);
    for i in 0..64 {
        run_quiet(&mut nanoctr(
            m,
            &["run", &format!("m{i}"), sleeper.to_str().unwrap()],
        ));
    }
    let (rss, pss, _) = memory(m.pid());
    r.put(&format!("{prefix}daemon_64_containers_rss_kib"), rss);
    r.put(&format!("{prefix}daemon_64_containers_pss_kib"), pss);
    let shims: Vec<(u64, u64, u64)> = m.shims().iter().map(|(_, pid)| memory(*pid)).collect();
    let avg = |f: fn(&(u64, u64, u64)) -> u64| {
        shims.iter().map(f).sum::<u64>() as f64 / shims.len() as f64
    };
    r.put(&format!("{prefix}shims_measured"), shims.len());
    r.put(
        &format!("{prefix}shim_rss_kib"),
        format!("{:.1}", avg(|s| s.0)),
    );
    r.put(
        &format!("{prefix}shim_pss_kib"),
        format!("{:.1}", avg(|s| s.1)),
    );
    r.put(
        &format!("{prefix}shim_anon_kib"),
        format!("{:.1}", avg(|s| s.2)),
    );
    for i in 0..64 {
        run_quiet(&mut nanoctr(m, &["delete", &format!("m{i}"), "force"]));
    }
}

/// (RSS, PSS, anonymous) in KiB, from /proc/PID/smaps_rollup.
fn memory(pid: u32) -> (u64, u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (get("Rss:"), get("Pss:"), get("Anonymous:"))
}

fn main() {
    let mut runs = 30;
    let mut cycles = 1000;
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let n = pair.get(1).and_then(|v| v.parse().ok());
        match (pair[0].as_str(), n) {
            ("--runs", Some(n)) if n > 0 => runs = n,
            ("--cycles", Some(n)) => cycles = n,
            _ => {
                eprintln!("usage: nanoctr-bench [--runs N] [--cycles N]");
                std::process::exit(2);
            }
        }
    }
    let mut r = Report { rows: Vec::new() };

    // Sizes of what ships: the one program (nanoctrd is a link to it) and
    // the shim, stripped of section headers as cross/build.sh ships them.
    for name in ["nanoctr", "nanoctr-shim"] {
        let shipped = std::env::temp_dir().join(format!("nanoctr-bench-{name}"));
        let stripped = Command::new("llvm-strip")
            .args(["--strip-all", "--strip-sections", "-o"])
            .arg(&shipped)
            .arg(bin(name))
            .status()
            .expect("llvm-strip (tests/setup.sh installs llvm)");
        assert!(stripped.success(), "llvm-strip {name}: {stripped}");
        let size = std::fs::metadata(&shipped).expect("stripped copy").len();
        let _ = std::fs::remove_file(&shipped);
        r.put(&format!("size_{}_bytes", name.replace('-', "_")), size);
    }

    // Run to exit: `runc run` against `nanoctr run` + `nanoctr wait`.
    let scratch = Daemon::start();
    let echo = scratch.bundle("echo", &["echo", "hi"]);
    let sleeper = scratch.bundle("sleep", &["sleep", "100000"]);
    let rt = scratch.dir.join("plain-runc");
    let runc = |args: &[&str]| {
        let mut cmd = Command::new("runc");
        cmd.arg("--root").arg(&rt).args(args);
        cmd
    };
    // The two alternate, run by run, so that a change in the machine's
    // speed (it is shared) falls on both alike. Each runc's CPU is counted
    // when it is reaped; nanoctr's is what is left of the phase's total,
    // which ends by reaping its daemon (and so its shims and runtime calls).
    let phase = children_cpu();
    let mut d = daemon();
    let (mut plain, mut ours, mut plain_cpu) = (Vec::new(), Vec::new(), Duration::ZERO);
    for i in 0..runs {
        let (cpu, t) = (children_cpu(), Instant::now());
        run_quiet(&mut runc(&[
            "run",
            "--bundle",
            echo.to_str().unwrap(),
            &format!("p{i}"),
        ]));
        plain.push(ms(t.elapsed()));
        plain_cpu += children_cpu() - cpu;
        let id = format!("n{i}");
        let t = Instant::now();
        run_quiet(&mut nanoctr(&d, &["run", &id, echo.to_str().unwrap()]));
        run_quiet(&mut nanoctr(&d, &["wait", &id]));
        ours.push(ms(t.elapsed()));
        run_quiet(&mut nanoctr(&d, &["delete", &id]));
    }
    d.stop();
    let ours_cpu = (children_cpu() - phase - plain_cpu) / runs as u32;
    let plain_cpu = plain_cpu / runs as u32;
    let (pm, p9) = median_p90(plain);
    let (om, o9) = median_p90(ours);
    r.put("runs", runs);
    r.put("runc_run_median_ms", format!("{pm:.1}"));
    r.put("runc_run_p90_ms", format!("{p9:.1}"));
    r.put("nanoctr_run_wait_median_ms", format!("{om:.1}"));
    r.put("nanoctr_run_wait_p90_ms", format!("{o9:.1}"));
    r.put("run_to_exit_ratio", format!("{:.2}", om / pm));
    r.put("runc_cpu_per_run_ms", format!("{:.1}", ms(plain_cpu)));
    r.put("nanoctr_cpu_per_run_ms", format!("{:.1}", ms(ours_cpu)));
    r.put(
        "cpu_per_run_extra_ms",
        format!("{:.1}", ms(ours_cpu) - ms(plain_cpu)),
    );

    // Twenty detached starts, alternating as above.
    let d20 = daemon();
    let (mut plain20, mut ours20) = (0.0, 0.0);
    for i in 0..20 {
        let t = Instant::now();
        run_quiet(&mut runc(&[
            "run",
            "-d",
            "--bundle",
            sleeper.to_str().unwrap(),
            &format!("d{i}"),
        ]));
        plain20 += ms(t.elapsed());
        let t = Instant::now();
        run_quiet(&mut nanoctr(
            &d20,
            &["run", &format!("d{i}"), sleeper.to_str().unwrap()],
        ));
        ours20 += ms(t.elapsed());
    }
    // Killed first: a forced delete of a running container can find its
    // cgroups still busy.
    for i in 0..20 {
        run_quiet(&mut runc(&["kill", &format!("d{i}"), "KILL"]));
    }
    for i in 0..20 {
        let id = format!("d{i}");
        while runc(&["state", &id])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("\"running\""))
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        run_quiet(&mut runc(&["delete", "--force", &id]));
    }
    r.put("runc_20_detached_ms", format!("{plain20:.0}"));
    r.put("nanoctr_20_detached_ms", format!("{ours20:.0}"));
    r.put("detached_20_ratio", format!("{:.2}", ours20 / plain20));

    // A burst: twenty clients at once.
    let t = Instant::now();
    let children: Vec<_> = (0..20)
        .map(|i| {
            let c = nanoctr(&d20, &["run", &format!("b{i}"), sleeper.to_str().unwrap()])
                .stdout(Stdio::null())
                .spawn()
                .expect("spawn nanoctr");
            (Instant::now(), c)
        })
        .collect();
    let mut slowest = 0.0f64;
    for (began, mut c) in children {
        assert!(c.wait().unwrap().success(), "a burst run failed");
        slowest = slowest.max(ms(began.elapsed()));
    }
    r.put("burst_20_total_ms", format!("{:.0}", ms(t.elapsed())));
    r.put("burst_20_slowest_ms", format!("{slowest:.0}"));
    drop(d20);

    // Memory: idle, with 64 running containers, after many cycles; and
    // the firmware build's (cross/build.sh --firmware) idle and with 64.
    if let Some(dir) = std::env::var_os("NANOCTR_FIRMWARE_DIR").map(PathBuf::from) {
        let fw = Daemon::launch(
            Runtime::Runc,
            Launch {
                state_tmpfs_kib: Some(16 * 1024),
                daemon: Some(dir.join("nanoctrd")),
                shim: Some(dir.join("nanoctr-shim")),
                ..Launch::default()
            },
        );
        sixty_four(&mut r, "firmware_", &fw, &sleeper);
    }
    let m = daemon();
    sixty_four(&mut r, "", &m, &sleeper);
    let cycle = |i: usize| {
        run_quiet(&mut nanoctr(
            &m,
            &["create", &format!("c{i}"), sleeper.to_str().unwrap()],
        ));
        run_quiet(&mut nanoctr(&m, &["delete", &format!("c{i}")]));
    };
    // Warm-up fills the fixed tables (the ring of 512 retained events takes
    // 256 cycles of two events), so what follows shows growth, if any.
    let warm = cycles.min(300);

    (0..warm).for_each(cycle);
    let (before, _, _) = memory(m.pid());
    (warm..cycles).for_each(cycle);
    let (after, pss, _) = memory(m.pid());
    r.put("cycles", cycles);
    r.put("daemon_rss_before_cycles_kib", before);
    r.put("daemon_rss_after_cycles_kib", after);
    r.put("daemon_pss_after_cycles_kib", pss);
    r.put("daemon_rss_growth_kib", after as i64 - before as i64);

    print_table(&r);
    println!();
    for (k, v) in &r.rows {
        println!("{k}: {v}");
    }
}

fn print_table(r: &Report) {
    let get = |k: &str| {
        r.rows
            .iter()
            .find(|(n, _)| n == k)
            .map_or("-", |(_, v)| v.as_str())
    };
    let runs = get("runs");
    println!("nanoctr benchmark: same busybox bundle, same machine, one run");
    println!("{:<44} {:>10} {:>10} {:>8}", "", "runc", "nanoctr", "ratio");
    println!(
        "{:<44} {:>10} {:>10} {:>8}",
        format!("run to exit of `echo hi`, median (ms, n={runs})"),
        get("runc_run_median_ms"),
        get("nanoctr_run_wait_median_ms"),
        get("run_to_exit_ratio")
    );
    println!(
        "{:<44} {:>10} {:>10}",
        "run to exit, p90 (ms)",
        get("runc_run_p90_ms"),
        get("nanoctr_run_wait_p90_ms")
    );
    println!(
        "{:<44} {:>10} {:>10} {:>8}",
        "CPU per run, all processes (ms)",
        get("runc_cpu_per_run_ms"),
        get("nanoctr_cpu_per_run_ms"),
        format!("+{}", get("cpu_per_run_extra_ms"))
    );
    println!(
        "{:<44} {:>10} {:>10} {:>8}",
        "20 detached starts, one after another (ms)",
        get("runc_20_detached_ms"),
        get("nanoctr_20_detached_ms"),
        get("detached_20_ratio")
    );
    println!(
        "20 concurrent `nanoctr run`: {} ms in all, slowest {} ms",
        get("burst_20_total_ms"),
        get("burst_20_slowest_ms")
    );
    println!(
        "daemon RSS/PSS (KiB): idle {}/{}, with 64 containers {}/{}, after {} create/delete cycles {}/{} ({:+} KiB)",
        get("daemon_idle_rss_kib"),
        get("daemon_idle_pss_kib"),
        get("daemon_64_containers_rss_kib"),
        get("daemon_64_containers_pss_kib"),
        get("cycles"),
        get("daemon_rss_after_cycles_kib"),
        get("daemon_pss_after_cycles_kib"),
        get("daemon_rss_growth_kib").parse::<i64>().unwrap_or(0)
    );
    println!(
        "shim per running container (KiB, mean of {}): RSS {}, PSS {}, anonymous {}",
        get("shims_measured"),
        get("shim_rss_kib"),
        get("shim_pss_kib"),
        get("shim_anon_kib")
    );
    if get("firmware_daemon_idle_pss_kib") != "-" {
        println!(
            "firmware build: daemon RSS/PSS (KiB) idle {}/{}, with 64 containers {}/{}; shim RSS {}, PSS {}, anonymous {} (mean of {})",
            get("firmware_daemon_idle_rss_kib"),
            get("firmware_daemon_idle_pss_kib"),
            get("firmware_daemon_64_containers_rss_kib"),
            get("firmware_daemon_64_containers_pss_kib"),
            get("firmware_shim_rss_kib"),
            get("firmware_shim_pss_kib"),
            get("firmware_shim_anon_kib"),
            get("firmware_shims_measured"),
        );
    }
    println!(
        "sizes as shipped (bytes): nanoctr (daemon and client) {}, nanoctr-shim {}",
        get("size_nanoctr_bytes"),
        get("size_nanoctr_shim_bytes")
    );
}
