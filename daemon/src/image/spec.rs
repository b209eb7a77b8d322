//! A bundle's `config.json` from an image's config, as the image spec's
//! `conversion.md` says: Entrypoint + Cmd are the args, Env the
//! environment, WorkingDir the cwd, User the uid and gid (names resolved
//! in the rootfs' own `/etc/passwd` and `/etc/group`); StopSignal,
//! ExposedPorts, Labels and Healthcheck become annotations. The rest is
//! nanoctr's default runtime config: a read-only root, tmpfs `/tmp` and
//! `/run`, and the usual masked paths.

use std::ffi::CStr;
use std::io::Read;
use std::path::Path;

use rustix::fd::OwnedFd;
use rustix::fs::{self as rfs, Mode, OFlags};

use super::apply::c;
use super::{invalid, Result};
use crate::bundle::json;

/// Overrides given to `import`.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub args: Option<Vec<String>>,
    pub env: Vec<String>,
    pub cwd: Option<String>,
    pub user: Option<String>,
}

/// The annotation under which an image's Healthcheck is kept, as JSON.
pub const HEALTHCHECK: &str = "org.nanoctr.healthcheck";

const PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The most of `/etc/passwd` or `/etc/group` read.
const MAX_ID_FILE: u64 = 1024 * 1024;

pub fn config_json(image: &[u8], rootfs: &Path, hostname: &str, o: &Overrides) -> Result<String> {
    let at = |k: &str| json::find(image, &["config", k]).filter(|r| &image[r.clone()] != b"null");
    let text = |k: &str| at(k).and_then(|r| json::text(image, r));
    let list = |k: &str| -> Result<Vec<String>> {
        match at(k) {
            None => Ok(Vec::new()),
            Some(r) => json::elements(image, r)
                .and_then(|items| items.into_iter().map(|e| json::text(image, e)).collect())
                .ok_or_else(|| invalid(format!("the image config's {k} is not a list of strings"))),
        }
    };
    let args = match &o.args {
        Some(a) => a.clone(),
        None => {
            let mut a = list("Entrypoint")?;
            a.extend(list("Cmd")?);
            a
        }
    };
    if args.is_empty() {
        return Err(invalid(
            "the image has no Entrypoint or Cmd: give the command after --",
        ));
    }
    let mut env = list("Env")?;
    for e in &o.env {
        let key = e.split('=').next().unwrap_or("");
        env.retain(|x| x.split('=').next() != Some(key));
        env.push(e.clone());
    }
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, PATH.into());
    }
    let cwd = o
        .cwd
        .clone()
        .or_else(|| text("WorkingDir"))
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "/".into());
    let cwd = match cwd.starts_with('/') {
        true => cwd,
        false => format!("/{cwd}"),
    };
    let user = o.user.clone().or_else(|| text("User")).unwrap_or_default();
    let (uid, gid, extra) = resolve_user(&user, rootfs)?;
    let mut notes: Vec<(String, String)> = Vec::new();
    if let Some(labels) = at("Labels").and_then(|r| json::members(image, r)) {
        for (k, r) in labels {
            if let Some(v) = json::text(image, r) {
                notes.push((k, v));
            }
        }
    }
    if let Some(s) = text("StopSignal") {
        notes.push(("org.opencontainers.image.stopSignal".into(), s));
    }
    if let Some(ports) = at("ExposedPorts").and_then(|r| json::members(image, r)) {
        let ports: Vec<String> = ports.into_iter().map(|(k, _)| k).collect();
        notes.push((
            "org.opencontainers.image.exposedPorts".into(),
            ports.join(","),
        ));
    }
    if let Some(r) = at("Healthcheck") {
        let raw = String::from_utf8_lossy(&image[r]).into_owned();
        notes.push((HEALTHCHECK.into(), raw));
    }
    let strings = |v: &[String]| {
        v.iter()
            .map(|s| json::quote(s))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let extra = match extra.is_empty() {
        true => String::new(),
        false => format!(
            ", \"additionalGids\": [{}]",
            extra
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let notes = notes
        .iter()
        .map(|(k, v)| format!("\t\t{}: {}", json::quote(k), json::quote(v)))
        .collect::<Vec<_>>()
        .join(",\n");
    let user = format!("\"uid\": {uid}, \"gid\": {gid}{extra}");
    Ok(fill(
        TEMPLATE,
        &[
            ("USER", &user),
            ("ARGS", &strings(&args)),
            ("ENV", &strings(&env)),
            ("CWD", &json::quote(&cwd)),
            ("HOSTNAME", &json::quote(hostname)),
            ("NOTES", &notes),
            ("CAPS", CAPS),
        ],
    ))
}

/// The template with each `@KEY@` replaced, in one pass, so a value is
/// never read for keys.
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() * 2);
    let mut parts = template.split('@');
    out.push_str(parts.next().unwrap_or(""));
    let mut key = true;
    for part in parts {
        match (key, values.iter().find(|(k, _)| *k == part)) {
            (true, Some((_, v))) => out.push_str(v),
            _ => out.push_str(part),
        }
        key = !key;
    }
    out
}

/// uid, gid and supplementary gids for an image's `User`.
fn resolve_user(user: &str, rootfs: &Path) -> Result<(u32, u32, Vec<u32>)> {
    if user.is_empty() {
        return Ok((0, 0, Vec::new()));
    }
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let passwd = read_etc(rootfs, b"passwd")?;
    let group = read_etc(rootfs, b"group")?;
    let entries = |text: &str| -> Vec<Vec<String>> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.split(':').map(String::from).collect::<Vec<_>>())
            .filter(|f| f.len() >= 4)
            .collect()
    };
    let users = entries(&passwd);
    let groups = entries(&group);
    let found = match u.parse::<u32>() {
        Ok(n) => users.iter().find(|f| f[2].parse() == Ok(n)),
        Err(_) => Some(
            users
                .iter()
                .find(|f| f[0] == u)
                .ok_or_else(|| invalid(format!("user {u:?} is not in the image's /etc/passwd")))?,
        ),
    };
    let uid = match u.parse::<u32>() {
        Ok(n) => n,
        Err(_) => found
            .and_then(|f| f[2].parse().ok())
            .ok_or_else(|| invalid(format!("user {u:?}: a bad /etc/passwd entry")))?,
    };
    let gid = match g {
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => groups
                .iter()
                .find(|f| f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| invalid(format!("group {g:?} is not in the image's /etc/group")))?,
        },
        None => found.and_then(|f| f[3].parse().ok()).unwrap_or(0),
    };
    let mut extra = Vec::new();
    if let (Some(f), None) = (found, g) {
        for grp in &groups {
            let member = grp[3].split(',').any(|m| m == f[0]);
            if let Ok(n) = grp[2].parse::<u32>() {
                if member && n != gid && !extra.contains(&n) {
                    extra.push(n);
                }
            }
        }
    }
    Ok((uid, gid, extra))
}

/// `etc/NAME` of the rootfs, reached without following a symlink (one
/// there could name the host's own file); empty when it is not there.
fn read_etc(rootfs: &Path, name: &[u8]) -> Result<String> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let open = |dir: Option<&OwnedFd>, n: &CStr, f: OFlags| match dir {
        Some(d) => rfs::openat(d, n, f, Mode::empty()),
        None => rfs::open(n, f, Mode::empty()),
    };
    let root_c = c(rootfs.as_os_str().as_encoded_bytes());
    let Ok(root) = open(None, root_c.as_c_str(), flags | OFlags::DIRECTORY) else {
        return Ok(String::new());
    };
    let Ok(etc) = open(Some(&root), c(b"etc").as_c_str(), flags | OFlags::DIRECTORY) else {
        return Ok(String::new());
    };
    let Ok(fd) = open(Some(&etc), c(name).as_c_str(), flags | OFlags::NONBLOCK) else {
        return Ok(String::new());
    };
    let file = std::fs::File::from(crate::sys::own(fd));
    let meta = file
        .metadata()
        .map_err(|e| invalid(format!("/etc/{}: {e}", String::from_utf8_lossy(name))))?;
    if !meta.is_file() {
        return Ok(String::new());
    }
    let mut text = String::new();
    file.take(MAX_ID_FILE)
        .read_to_string(&mut text)
        .map_err(|e| {
            invalid(format!(
                "the image's /etc/{}: {e}",
                String::from_utf8_lossy(name)
            ))
        })?;
    Ok(text)
}

const TEMPLATE: &str = r#"{
	"ociVersion": "1.0.2",
	"process": {
		"terminal": false,
		"user": { @USER@ },
		"args": [@ARGS@],
		"env": [@ENV@],
		"cwd": @CWD@,
		"capabilities": {
			"bounding": @CAPS@,
			"effective": @CAPS@,
			"permitted": @CAPS@
		},
		"rlimits": [{ "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 }],
		"noNewPrivileges": false
	},
	"root": { "path": "rootfs", "readonly": true },
	"hostname": @HOSTNAME@,
	"mounts": [
		{ "destination": "/proc", "type": "proc", "source": "proc" },
		{ "destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=64k"] },
		{ "destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] },
		{ "destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=1m"] },
		{ "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"] },
		{ "destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=1777", "size=4m"] },
		{ "destination": "/run", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=755", "size=1m"] },
		{ "destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"] },
		{ "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"] }
	],
	"annotations": {
@NOTES@
	},
	"linux": {
		"resources": { "devices": [{ "allow": false, "access": "rwm" }] },
		"namespaces": [
			{ "type": "pid" }, { "type": "network" }, { "type": "ipc" },
			{ "type": "uts" }, { "type": "mount" }, { "type": "cgroup" }
		],
		"maskedPaths": [
			"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
			"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
			"/sys/firmware", "/sys/devices/virtual/powercap"
		],
		"readonlyPaths": [
			"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
		]
	}
}
"#;

/// The capabilities a container process gets: Docker's default set,
/// which images are written for.
pub const CAPS: &str = r#"["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]"#;
