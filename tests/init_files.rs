//! The boot integration files (`init/`) and the example configuration
//! (`configs/`): every shell script parses (`sh -n` and busybox's `sh -n`)
//! and passes shellcheck; the inittab lines are busybox entries; the
//! systemd unit keeps the settings that let containers outlive the daemon
//! and passes `systemd-analyze verify`; the procd script has procd's shape;
//! and the flags and configuration keys these files use are nanoctrd's.
//! Needs neither the binaries nor root, but busybox, shellcheck and
//! systemd-analyze (`tests/setup.sh` installs them): a check whose tool is
//! missing fails, rather than pass having checked nothing.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use nanoctr_tests::workspace;

/// nanoctrd's flags, each also a configuration key (but `config`), with its
/// default where it has one. Kept by hand: it is the interface these files
/// are written against, and a change to it must be made here too.
const DAEMON_KEYS: &[(&str, Option<&str>)] = &[
    ("socket", Some("/run/nanoctr/nanoctr.sock")),
    ("state-dir", Some("/run/nanoctr")),
    ("image-store", Some("/var/lib/nanoctr/images")),
    ("update-dir", Some("/var/lib/nanoctr/updates")),
    ("runtime", Some("runc")),
    ("runtime-root", None),
    ("shim", None),
    ("max-containers", Some("64")),
    ("max-execs", Some("32")),
    ("max-clients", Some("16")),
    ("max-followers", Some("32")),
    ("client-timeout", Some("60")),
    ("max-calls", Some("8")),
    ("retain", Some("512")),
    ("start-timeout", Some("30")),
    ("oom-score-adj", Some("-500")),
    ("shim-oom-score-adj", Some("-500")),
    ("restart-delay", Some("100")),
    ("restart-max-delay", Some("30000")),
    ("restart-window", Some("10")),
    ("containers-dir", Some("/etc/nanoctr/containers.d")),
    ("log", Some("stderr")),
    ("log-level", Some("info")),
    ("syslog-socket", Some("/dev/log")),
    ("control-tty", None),
    ("notify-fd", None),
    ("pidfile", None),
    ("net-dir", Some("/var/lib/nanoctr/net")),
    ("bridge-subnet", Some("10.88.0.0/24")),
    ("net-hook", None),
    ("cni-conf-dir", Some("/etc/cni/net.d")),
    ("cni-bin-dir", None),
    ("watchdog", None),
    ("watchdog-interval", None),
    ("watchdog-timeout", None),
];

const NUMERIC_KEYS: &[&str] = &[
    "max-containers",
    "max-execs",
    "max-clients",
    "max-followers",
    "client-timeout",
    "max-calls",
    "retain",
    "start-timeout",
    "oom-score-adj",
    "shim-oom-score-adj",
    "restart-delay",
    "restart-max-delay",
    "restart-window",
    "notify-fd",
    "watchdog-interval",
    "watchdog-timeout",
];

const PATH_KEYS: &[&str] = &[
    "socket",
    "state-dir",
    "image-store",
    "update-dir",
    "runtime-root",
    "shim",
    "containers-dir",
    "syslog-socket",
    "control-tty",
    "pidfile",
    "watchdog",
];

const CONTAINER_KEYS: &[&str] = &[
    "bundle",
    "runtime",
    "restart",
    "overlay",
    "overlay-size",
    "health-cmd",
    "health-interval",
    "health-timeout",
    "health-retries",
    "health-start",
    "critical",
    "net",
    "ip",
    "publish",
    "after",
    "ready",
    "options",
];

/// busybox init's actions (init/init.c).
const INITTAB_ACTIONS: &[&str] = &[
    "sysinit",
    "wait",
    "once",
    "respawn",
    "askfirst",
    "shutdown",
    "restart",
    "ctrlaltdel",
];

fn read(rel: &str) -> String {
    let path = workspace().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// The shell scripts in init/, configs/, cross/ and tests/: `*.sh`, and files whose first
/// line is `#!/bin/sh` (with or without an argument, as procd's
/// `#!/bin/sh /etc/rc.common`).
fn shell_scripts() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in ["init", "configs", "cross", "tests"] {
        files_under(&workspace().join(dir), &mut files);
    }
    let mut scripts: Vec<PathBuf> = files
        .into_iter()
        .filter(|p| {
            let first = std::fs::read_to_string(p)
                .ok()
                .and_then(|s| s.lines().next().map(str::to_owned))
                .unwrap_or_default();
            p.extension().is_some_and(|e| e == "sh")
                || first == "#!/bin/sh"
                || first.starts_with("#!/bin/sh ")
        })
        .collect();
    scripts.sort();
    for expected in [
        "init/nanoctrd.init",
        "init/nanoctrd.procd",
        "configs/demo.sh",
        "configs/bundles/busybox/mkrootfs.sh",
    ] {
        assert!(
            scripts.contains(&workspace().join(expected)),
            "{expected} was not found among the shell scripts: {scripts:?}"
        );
    }
    scripts
}

fn rel(path: &Path) -> String {
    path.strip_prefix(workspace())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// procd init scripts are sourced by /etc/rc.common, which reads their
/// variables and calls their functions.
fn is_rc_common(path: &Path) -> bool {
    std::fs::read_to_string(path)
        .map(|s| s.starts_with("#!/bin/sh /etc/rc.common"))
        .unwrap_or(false)
}

/// Runs a program on `file`: `Err` with what it said if it fails.
fn run(program: &str, args: &[&str], file: &Path) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{program} {} {}: {}\n{}{}",
        args.join(" "),
        rel(file),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

/// Fails the test unless `program version_arg` runs and succeeds: a check
/// that cannot run has checked nothing. `package` is the Debian package
/// that provides it.
fn require(program: &str, version_arg: &str, package: &str) {
    let ran = Command::new(program).arg(version_arg).output();
    let ok = ran.as_ref().is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "{program} is needed for this check but `{program} {version_arg}` did not run ({}): \
         install Debian's {package} (`sh tests/setup.sh` does)",
        match &ran {
            Ok(o) => o.status.to_string(),
            Err(e) => e.to_string(),
        }
    );
}

fn assert_none_failed(failures: Vec<String>) {
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn shell_scripts_parse() {
    // busybox's ash is the shell on the devices these scripts are for.
    require("busybox", "--list", "busybox-static");
    let mut failures = Vec::new();
    for script in shell_scripts() {
        failures.extend(run("sh", &["-n"], &script).err());
        failures.extend(run("busybox", &["sh", "-n"], &script).err());
    }
    assert_none_failed(failures);
}

#[test]
fn shell_scripts_pass_shellcheck() {
    require("shellcheck", "--version", "shellcheck");
    let mut failures = Vec::new();
    for script in shell_scripts() {
        let mut args = vec!["-s", "sh"];
        if is_rc_common(&script) {
            // SC2034 (assigned but not used): START, STOP and USE_PROCD are
            // read by /etc/rc.common, which sources the script.
            args.extend(["-e", "SC2034"]);
        }
        failures.extend(run("shellcheck", &args, &script).err());
    }
    assert_none_failed(failures);
}

/// `ID:RUNLEVELS:ACTION:PROCESS`, busybox's way: the action and process.
fn inittab_entry(line: &str) -> Result<(&str, &str), String> {
    let fields: Vec<&str> = line.splitn(4, ':').collect();
    let [id, _runlevels, action, process] = fields[..] else {
        return Err("not ID:RUNLEVELS:ACTION:PROCESS".into());
    };
    if id.contains(char::is_whitespace) {
        return Err(format!("ID {id:?} is not a tty name"));
    }
    if !INITTAB_ACTIONS.contains(&action) {
        return Err(format!("unknown action {action:?}"));
    }
    let program = process.split_whitespace().next().unwrap_or("");
    if !program.starts_with('/') {
        return Err(format!(
            "process {process:?} does not start with an absolute path"
        ));
    }
    Ok((action, process))
}

#[test]
fn inittab_lines_are_busybox_entries() {
    let text = read("init/inittab");
    let mut failures = Vec::new();
    let mut daemon_respawn = 0;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end();
        // Commented-out entries (`#::shutdown:...`, `#ttyS1::respawn:...`)
        // are examples to uncomment: they must be entries too. A comment's
        // prose starts with "# ".
        let (entry, commented) = match line.strip_prefix('#') {
            None if line.trim().is_empty() => continue,
            None => (line, false),
            Some(rest) if rest.is_empty() || rest.starts_with(' ') => continue,
            Some(rest) => (rest, true),
        };
        match inittab_entry(entry) {
            Ok((action, process)) => {
                let program = process.split_whitespace().next().unwrap();
                if !commented && action == "respawn" && program == "/usr/sbin/nanoctrd" {
                    daemon_respawn += 1;
                }
            }
            Err(e) => failures.push(format!("init/inittab:{}: {e}: {line}", n + 1)),
        }
    }
    if daemon_respawn != 1 {
        failures.push(format!(
            "init/inittab: {daemon_respawn} respawn lines run /usr/sbin/nanoctrd, not 1"
        ));
    }
    assert_none_failed(failures);
}

/// The `[Service]` section's `Key=Value` lines.
fn unit_service_keys(text: &str) -> Vec<(String, String)> {
    let mut section = "";
    let mut keys = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') {
            section = line;
            continue;
        }
        if section == "[Service]" {
            let (k, v) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("nanoctrd.service: not Key=Value: {line}"));
            keys.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    keys
}

#[test]
fn systemd_unit_lets_containers_outlive_the_daemon() {
    let text = read("init/nanoctrd.service");
    let keys = unit_service_keys(&text);
    let get = |k: &str| -> Vec<&str> {
        keys.iter()
            .filter(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    // nanoctrd sends READY=1 once its socket listens.
    assert_eq!(get("Type"), ["notify"]);
    // Only the daemon is signalled on stop: shims (and, on cgroup v1, the
    // containers) live in the unit's cgroup and must survive.
    assert_eq!(get("KillMode"), ["process"]);
    assert_eq!(get("Restart"), ["always"]);
    let exec = get("ExecStart");
    assert_eq!(exec.len(), 1, "one ExecStart: {exec:?}");
    assert!(
        exec[0].starts_with("/usr/sbin/nanoctrd "),
        "ExecStart runs {}",
        exec[0]
    );
    // systemd removes a RuntimeDirectory when the unit stops: the state dir
    // of every running container.
    assert!(get("RuntimeDirectory").is_empty());

    // systemd's own check: unknown keys and bad values. It wants
    // ExecStart's program to exist, so a copy runs /bin/true instead.
    require("systemd-analyze", "--version", "systemd");
    let dir = std::env::temp_dir().join(format!("nct-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let unit = dir.join("nanoctrd.service");
    std::fs::write(
        &unit,
        text.replace("ExecStart=/usr/sbin/nanoctrd ", "ExecStart=/bin/true "),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .expect("run systemd-analyze");
    let _ = std::fs::remove_dir_all(&dir);
    let said =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    let about_unit: Vec<&str> = said
        .lines()
        .filter(|l| l.contains("nanoctrd.service"))
        .collect();
    assert!(
        out.status.success() && about_unit.is_empty(),
        "systemd-analyze verify: {}\n{said}",
        out.status
    );
}

#[test]
fn procd_script_has_procds_shape() {
    let text = read("init/nanoctrd.procd");
    assert!(text.starts_with("#!/bin/sh /etc/rc.common\n"));
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    for needed in [
        "USE_PROCD=1",
        "start_service() {",
        "procd_open_instance",
        "procd_close_instance",
    ] {
        assert!(lines.contains(&needed), "no line {needed:?}");
    }
    for prefix in [
        "START=",
        "STOP=",
        "PROG=/usr/sbin/nanoctrd",
        "procd_set_param command \"$PROG\"",
        "procd_set_param respawn",
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(prefix)),
            "no line starting {prefix:?}"
        );
    }
}

/// The `--flag` words on the lines (not comments) of the init files.
#[test]
fn init_files_use_only_daemon_flags() {
    let known: HashSet<&str> = DAEMON_KEYS
        .iter()
        .map(|(k, _)| *k)
        .chain(["config", "check-config"])
        .collect();
    let mut failures = Vec::new();
    for file in [
        "init/inittab",
        "init/nanoctrd.init",
        "init/nanoctrd.procd",
        "init/nanoctrd.service",
    ] {
        for (n, line) in read(file).lines().enumerate() {
            if line.trim_start().starts_with('#') {
                continue;
            }
            for word in line.split(|c: char| c.is_whitespace() || c == '"' || c == '\'') {
                let Some(flag) = word.strip_prefix("--") else {
                    continue;
                };
                let flag = flag.split('=').next().unwrap();
                // `--` alone ends start-stop-daemon's options.
                if flag.is_empty() {
                    continue;
                }
                if !known.contains(flag) {
                    failures.push(format!("{file}:{}: --{flag} is not a nanoctrd flag", n + 1));
                }
            }
        }
    }
    assert_none_failed(failures);
}

/// A configuration line: a section header or `key = value`.
enum Setting<'a> {
    Section(&'a str),
    Key(&'a str, &'a str),
}

fn setting(line: &str) -> Result<Setting<'_>, String> {
    if let Some(rest) = line.strip_prefix('[') {
        let inner = rest.strip_suffix(']').ok_or("section without ]")?;
        let id = inner
            .strip_prefix("container ")
            .ok_or("not [container ID]")?;
        return if valid_id(id) {
            Ok(Setting::Section(id))
        } else {
            Err(format!("bad container id {id:?}"))
        };
    }
    let (k, v) = line.split_once('=').ok_or("not key = value")?;
    let (k, v) = (k.trim(), v.trim());
    if k.is_empty() || !k.chars().all(|c| c.is_ascii_lowercase() || c == '-') {
        return Err(format!("bad key {k:?}"));
    }
    if v.is_empty() {
        return Err(format!("{k}: empty value"));
    }
    // Comments are whole lines only: this would be part of the value.
    if v.contains(" #") {
        return Err(format!(
            "{k}: `#` in the value (comments are whole lines only)"
        ));
    }
    Ok(Setting::Key(k, v))
}

/// `[A-Za-z0-9][A-Za-z0-9_.-]{0,63}` without `..`.
fn valid_id(id: &str) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        && id.len() <= 64
        && !id.contains("..")
}

fn check_daemon_value(key: &str, value: &str) -> Result<(), String> {
    if NUMERIC_KEYS.contains(&key) && value.parse::<i64>().is_err() {
        return Err(format!("{key}: {value:?} is not a number"));
    }
    if PATH_KEYS.contains(&key) && !value.starts_with('/') {
        return Err(format!("{key}: {value:?} is not an absolute path"));
    }
    match key {
        "log" if !["stderr", "syslog"].contains(&value) => Err(format!("log: {value:?}")),
        "log-level" if !["error", "warn", "info", "debug"].contains(&value) => {
            Err(format!("log-level: {value:?}"))
        }
        _ => Ok(()),
    }
}

fn check_container_value(key: &str, value: &str) -> Result<(), String> {
    let ok = match key {
        "bundle" => value.starts_with('/'),
        "runtime" => !value.contains(char::is_whitespace),
        "restart" => match value {
            "no" | "on-failure" | "always" | "unless-stopped" => true,
            _ => value
                .strip_prefix("on-failure:")
                .is_some_and(|n| n.parse::<u32>().is_ok()),
        },
        "overlay" => ["tmpfs", "none"].contains(&value) || value.starts_with('/'),
        "overlay-size" => valid_create_option(&format!("overlay-size={value}")),
        "health-cmd" => !value.trim().is_empty(),
        "health-interval" | "health-timeout" | "health-start" => duration(value),
        "health-retries" => value.parse::<u32>().is_ok_and(|n| n > 0),
        "critical" => ["yes", "no"].contains(&value),
        "net" => {
            ["host", "none", "bridge"].contains(&value)
                || ["ns:/", "bridge:", "cni:"]
                    .iter()
                    .any(|p| value.starts_with(p))
        }
        "ip" => value.parse::<std::net::Ipv4Addr>().is_ok(),
        "publish" => value.split_whitespace().all(|p| {
            let ports = p.split_once('/').map_or(p, |(ports, _)| ports);
            ports.split_once(':').is_some_and(|(h, c)| {
                h.parse::<u16>().is_ok_and(|n| n > 0) && c.parse::<u16>().is_ok_and(|n| n > 0)
            })
        }),
        "after" => value.split_whitespace().all(valid_id),
        "ready" => {
            ["started", "exited0"].contains(&value)
                || value
                    .strip_prefix("file:")
                    .is_some_and(|p| p.starts_with('/'))
        }
        "options" => value.split_whitespace().all(valid_create_option),
        _ => return Err(format!("{key}: not a container key")),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("{key}: bad value {value:?}"))
    }
}

/// A health check's duration: `500ms`, `10s`, `2m`, `1h`, or seconds.
fn duration(v: &str) -> bool {
    let digits = v.trim_end_matches(['m', 's', 'h']);
    let unit = &v[digits.len()..];
    !digits.is_empty() && digits.parse::<u64>().is_ok() && ["", "ms", "s", "m", "h"].contains(&unit)
}

/// What `nanoctr create` takes after ID and BUNDLE, but `runtime=` (a
/// section has its own `runtime` key).
fn valid_create_option(word: &str) -> bool {
    let (k, v) = word.split_once('=').unwrap_or((word, ""));
    let number = |v: &str| {
        let digits = v.trim_end_matches(['k', 'K', 'm', 'M', 'g', 'G']);
        !digits.is_empty() && digits.parse::<u64>().is_ok()
    };
    match k {
        "stdin" | "stdout" | "stderr" => v.starts_with('/'),
        "terminal" => v.is_empty() || v == "no",
        "critical" => v.is_empty(),
        "interactive" => v.is_empty(),
        "cols" | "rows" => v.parse::<u16>().is_ok(),
        "log-size" | "overlay-size" => number(v),
        "overlay" => ["tmpfs", "none"].contains(&v) || v.starts_with('/'),
        _ => k.strip_prefix("label.").is_some_and(|l| !l.is_empty()) && !v.is_empty(),
    }
}

/// Checks one configuration file; returns the daemon keys it mentions,
/// set or commented out. A commented-out setting is `#` directly followed
/// by the setting (`#max-calls = 8`, `#[container x]`); prose comments
/// start with "# ". Both kinds of setting are checked alike.
fn check_config(file: &str, failures: &mut Vec<String>) -> HashSet<String> {
    let known: HashSet<&str> = DAEMON_KEYS.iter().map(|(k, _)| *k).collect();
    let mut mentioned = HashSet::new();
    let mut in_section: Option<(String, HashSet<String>, bool)> = None;
    let end_section = |s: Option<(String, HashSet<String>, bool)>, failures: &mut Vec<String>| {
        if let Some((id, keys, commented)) = s {
            if !keys.contains("bundle") && !commented {
                failures.push(format!("{file}: [container {id}] has no bundle"));
            }
        }
    };
    for (n, raw) in read(file).lines().enumerate() {
        let at = format!("{file}:{}", n + 1);
        let line = raw.trim();
        let (text, commented) = match line.strip_prefix('#') {
            None if line.is_empty() => continue,
            None => (line, false),
            Some(rest) if rest.is_empty() || rest.starts_with(' ') => continue,
            Some(rest) => (rest, true),
        };
        match setting(text) {
            Err(e) => failures.push(format!("{at}: {e}")),
            Ok(Setting::Section(id)) => {
                end_section(in_section.take(), failures);
                in_section = Some((id.to_string(), HashSet::new(), commented));
            }
            Ok(Setting::Key(k, v)) => match &mut in_section {
                Some((_, keys, _)) => {
                    if !CONTAINER_KEYS.contains(&k) {
                        failures.push(format!("{at}: {k} is not a container key"));
                    } else if !keys.insert(k.to_string()) {
                        failures.push(format!("{at}: {k} twice in one section"));
                    }
                    if let Err(e) = check_container_value(k, v) {
                        failures.push(format!("{at}: {e}"));
                    }
                }
                None => {
                    if !known.contains(k) {
                        failures.push(format!("{at}: {k} is not a nanoctrd key"));
                        continue;
                    }
                    mentioned.insert(k.to_string());
                    if let Err(e) = check_daemon_value(k, v) {
                        failures.push(format!("{at}: {e}"));
                    }
                    // Commented out means "the default": it must be it.
                    let default = DAEMON_KEYS.iter().find(|(key, _)| *key == k).unwrap().1;
                    if let (true, Some(d)) = (commented, default) {
                        if v != d {
                            failures.push(format!("{at}: {k} defaults to {d}, not {v}"));
                        }
                    }
                    if let (false, Some(d)) = (commented, default) {
                        if v == d {
                            failures
                                .push(format!("{at}: {k} = {d} is the default: comment it out"));
                        }
                    }
                }
            },
        }
    }
    end_section(in_section.take(), failures);
    mentioned
}

#[test]
fn example_configuration_uses_nanoctrds_keys() {
    let mut failures = Vec::new();
    let mentioned = check_config("configs/nanoctrd.conf", &mut failures);
    for (key, _) in DAEMON_KEYS {
        if !mentioned.contains(*key) {
            failures.push(format!("configs/nanoctrd.conf: {key} is not listed"));
        }
    }
    let mut containers = Vec::new();
    files_under(&workspace().join("configs/containers.d"), &mut containers);
    containers.sort();
    assert!(!containers.is_empty(), "configs/containers.d/ is empty");
    for file in containers {
        assert_eq!(file.extension().and_then(|e| e.to_str()), Some("conf"));
        let file = rel(&file);
        let daemon_keys = check_config(&file, &mut failures);
        for key in daemon_keys {
            failures.push(format!(
                "{file}: {key}: daemon keys belong in nanoctrd.conf"
            ));
        }
    }
    assert_none_failed(failures);
}

/// The hand-kept list is the daemon's own, and the example files pass the
/// daemon's own parser.
#[test]
fn the_daemon_agrees() {
    let listed: Vec<&str> = DAEMON_KEYS.iter().map(|(k, _)| *k).collect();
    let options: Vec<&str> = nanoctr::config::OPTIONS.iter().map(|o| o.0).collect();
    assert_eq!(listed, options);
    for (file, settings) in [
        ("configs/nanoctrd.conf", true),
        ("configs/containers.d/demo.conf", false),
    ] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        if let Err(e) = nanoctr::config::file::parse(&path, &text, settings) {
            panic!("{e}");
        }
    }
}
