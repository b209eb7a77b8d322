//! A container's spec: the id, bundle and options of `create`/`run`
//! (and of a `[container]` section), checked.

use super::checks::{check_id, check_label, check_path, check_runtime};
use super::health::HealthOpts;
use super::net::NetOpts;
use super::overlay::Overlay;
use super::proto::{refuse, Code, Error};
use super::restart::Restart;

/// What `create` and `run` say about a new container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Spec {
    pub id: String,
    /// Absolute path of the bundle.
    pub bundle: String,
    pub stdin: Option<String>,
    pub stdout: Option<String>,
    pub stderr: Option<String>,
    /// Runtime name (looked up in `PATH`) or absolute path; the daemon's
    /// default when absent.
    pub runtime: Option<String>,
    pub labels: Vec<(String, String)>,
    /// `terminal` / `terminal=no`: overrides the bundle's process.terminal.
    pub terminal: Option<bool>,
    /// `interactive`: stdin is a pipe attachers write to.
    pub interactive: bool,
    /// A terminal's first size (default 80x24).
    pub cols: Option<u16>,
    pub rows: Option<u16>,
    /// Cap of the captured output log (`log-size=BYTES`, default 64 KiB).
    pub log_size: Option<u32>,
    /// What happens when it stops (`restart=POLICY`).
    pub restart: Restart,
    /// The writable layer over an image rootfs (`overlay=`,
    /// `overlay-size=`), when the request names one.
    pub overlay: Option<Overlay>,
    /// The `health-*` options (`wire/health.rs`).
    pub health: HealthOpts,
    /// `critical`: the hardware watchdog is petted only while it is well
    /// (`server/watchdog.rs`).
    pub critical: bool,
    /// `net=`, `ip=`, `publish=` (`wire/net.rs`).
    pub net: NetOpts,
}

/// The console options `create` and `exec` share, `cols=N`, `rows=N` and
/// `log-size=BYTES`, into their slots; false if `key` is none of them.
pub(crate) fn console_option(
    key: &str,
    value: &str,
    cols: &mut Option<u16>,
    rows: &mut Option<u16>,
    log_size: &mut Option<u32>,
) -> Result<bool, Error> {
    let twice = || Error::new(Code::Invalid, format!("{key} given twice"));
    match key {
        "cols" | "rows" => {
            let n = value.parse::<u16>().ok().filter(|&n| n > 0);
            let n =
                n.ok_or_else(|| Error::new(Code::Invalid, format!("{key} must be 1 to 65535")))?;
            let slot = if key == "cols" { cols } else { rows };
            if slot.replace(n).is_some() {
                return Err(twice());
            }
        }
        "log-size" => {
            let n = crate::wire::resources::parse_bytes(value)
                .and_then(|n| u32::try_from(n).ok())
                .filter(|&n| n >= MIN_LOG_SIZE);
            let n = n.ok_or_else(|| {
                Error::new(
                    Code::Invalid,
                    format!("log-size must be {MIN_LOG_SIZE} to 4294967295 bytes"),
                )
            })?;
            if log_size.replace(n).is_some() {
                return Err(twice());
            }
        }
        _ => return Ok(false),
    }
    Ok(true)
}

impl Spec {
    pub(crate) fn parse(id: &str, bundle: &str, opts: &[&str]) -> Result<Spec, Error> {
        let mut spec = Spec {
            id: check_id(id)?,
            bundle: check_path("bundle", bundle)?,
            ..Spec::default()
        };
        let twice = |key: &str| Error::new(Code::Invalid, format!("{key} given twice"));
        let (mut overlay, mut overlay_size) = (None, None);
        for opt in opts {
            let (key, value) = opt.split_once('=').unwrap_or((opt, ""));
            if console_option(
                key,
                value,
                &mut spec.cols,
                &mut spec.rows,
                &mut spec.log_size,
            )? || spec.health.option(key, value)?
                || spec.net.option(key, value)?
            {
                continue;
            }
            match key {
                "terminal" => {
                    let on = match value {
                        "" | "yes" => true,
                        "no" => false,
                        _ => return refuse(Code::Invalid, "terminal takes no value, or yes or no"),
                    };
                    if spec.terminal.replace(on).is_some() {
                        return Err(twice(key));
                    }
                }
                "interactive" if value.is_empty() => spec.interactive = true,
                "critical" if value.is_empty() => spec.critical = true,
                "overlay" | "overlay-size" => {
                    let slot = match key {
                        "overlay" => &mut overlay,
                        _ => &mut overlay_size,
                    };
                    if slot.replace(value).is_some() {
                        return Err(twice(key));
                    }
                }
                "restart" => {
                    let policy = Restart::parse(value).map_err(|m| Error::new(Code::Invalid, m))?;
                    if std::mem::replace(&mut spec.restart, policy) != Restart::No {
                        return Err(twice(key));
                    }
                }
                "stdin" | "stdout" | "stderr" | "runtime" if !value.is_empty() => {
                    let checked = if key == "runtime" {
                        check_runtime(value)?
                    } else {
                        check_path(key, value)?
                    };
                    let slot = match key {
                        "stdin" => &mut spec.stdin,
                        "stdout" => &mut spec.stdout,
                        "stderr" => &mut spec.stderr,
                        _ => &mut spec.runtime,
                    };
                    if slot.replace(checked).is_some() {
                        return Err(twice(key));
                    }
                }
                _ => {
                    let Some(name) = key.strip_prefix("label.").filter(|_| opt.contains('='))
                    else {
                        return refuse(Code::Invalid, format!("unknown option {opt}"));
                    };
                    spec.labels
                        .push((check_label(name, value)?, value.to_string()));
                }
            }
        }
        if overlay.is_some() || overlay_size.is_some() {
            spec.overlay = Some(Overlay::parse(overlay, overlay_size)?);
        }
        spec.net.check()?;
        if spec.terminal == Some(true)
            && (spec.stdin.is_some() || spec.stdout.is_some() || spec.stderr.is_some())
        {
            return refuse(
                Code::Invalid,
                "a terminal container's stdio is its terminal: no stdin=, stdout= or stderr=",
            );
        }
        Ok(spec)
    }

    /// The options again, as `parse` takes them (for the container record).
    pub fn options(&self) -> Vec<String> {
        use crate::wire::proto::quote;
        let mut words = Vec::new();
        for (key, value) in [
            ("stdin", &self.stdin),
            ("stdout", &self.stdout),
            ("stderr", &self.stderr),
        ] {
            if let Some(v) = value {
                words.push(format!("{key}={}", quote(v)));
            }
        }
        match self.terminal {
            Some(true) => words.push("terminal".into()),
            Some(false) => words.push("terminal=no".into()),
            None => {}
        }
        if self.interactive {
            words.push("interactive".into());
        }
        if self.critical {
            words.push("critical".into());
        }
        for (key, value) in [("cols", self.cols), ("rows", self.rows)] {
            if let Some(n) = value {
                words.push(format!("{key}={n}"));
            }
        }
        if let Some(n) = self.log_size {
            words.push(format!("log-size={n}"));
        }
        if self.restart != Restart::No {
            words.push(format!("restart={}", self.restart.as_string()));
        }
        if let Some(o) = &self.overlay {
            words.push(o.word());
        }
        words.extend(self.health.words());
        words.extend(self.net.words());
        for (k, v) in &self.labels {
            words.push(format!("label.{k}={}", quote(v)));
        }
        words
    }
}

/// The smallest output log cap (the shim's).
pub use nanoctr_shim::contract::MIN_LOG_SIZE;
