//! The hardware watchdog (`--watchdog DEVICE`): petted from the loop, every
//! `--watchdog-interval`, for as long as every container marked `critical`
//! is well; once one has failed, never again, so the device resets the
//! board within its timeout.
//!
//! The device is opened once the table is rebuilt (recovery), before the
//! daemon serves, and petted at once: a daemon started again after a
//! crash takes over a watchdog that is still counting down. Opening a
//! watchdog arms it. A clean stop (SIGTERM, SIGINT) writes the magic close
//! `V` before it closes the device, which disarms a driver that allows it
//! (not one built or loaded with `nowayout`); a daemon that crashes or is
//! killed leaves it armed and unpetted, and the board resets unless a new
//! daemon (init respawns it) pets it in time. After petting has stopped,
//! a clean stop leaves it armed too: the reset that is due still comes.
//!
//! When no interval is set, it is a third of the device's timeout
//! (`WDIOC_GETTIMEOUT`, after `WDIOC_SETTIMEOUT` for `--watchdog-timeout`),
//! or 5 s for a device that cannot tell its timeout. A pet is one byte
//! written to the device.
//!
//! Without a critical container, the watchdog is petted as long as the
//! loop runs: it then watches the daemon alone.

use std::fs::File;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::server::container::{Container, OpKind};
use crate::server::lifecycle::Status;
use crate::server::{Daemon, Effects};
use crate::tasks::health::HealthStatus;
use crate::wire::event::Kind;

/// The interval for a device that cannot tell its timeout.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

/// The open watchdog device and its petting.
pub(crate) struct Watchdog {
    path: PathBuf,
    /// `None` once closed.
    dev: Option<File>,
    pub interval: Duration,
    /// When the next pet is due.
    pub next: Instant,
    /// Petting stopped for good: a critical container failed.
    pub stopped: bool,
    /// Pets written.
    pub pets: u64,
}

impl<F: Effects> Daemon<F> {
    /// Opens the watchdog device the config names, if any, which arms it;
    /// the first pet is due at once. An error if it cannot be opened, its
    /// timeout cannot be set, or the interval is not below its timeout.
    pub fn start_watchdog(&mut self) -> Result<(), String> {
        let Some(path) = self.cfg.watchdog.clone() else {
            return Ok(());
        };
        let fail = |e: &dyn std::fmt::Display| format!("watchdog {}: {e}", path.display());
        let (dev, timeout) = self
            .fx
            .open_watchdog(&path, self.cfg.watchdog_timeout)
            .map_err(|e| fail(&e))?;
        let interval = match (self.cfg.watchdog_interval, timeout) {
            (Some(i), Some(t)) if i.as_secs() >= u64::from(t) => {
                let e = format!("watchdog-interval must be below its timeout, {t} s");
                // Disarmed again: this daemon will not pet it.
                let _ = self.fx.close_watchdog(dev);
                return Err(fail(&e));
            }
            (Some(i), _) => i,
            (None, Some(t)) => Duration::from_millis(u64::from(t) * 1000 / 3),
            (None, None) => DEFAULT_INTERVAL,
        };
        crate::logger::info(&format!(
            "watchdog {}: petted every {} ms",
            path.display(),
            interval.as_millis() as u64
        ));
        self.watchdog = Some(Watchdog {
            path,
            dev: Some(dev),
            interval,
            next: Instant::now(),
            stopped: false,
            pets: 0,
        });
        Ok(())
    }

    /// Why the critical container `c` counts as failed (`stopped`, `lost`),
    /// or `None` while it is well or is not critical.
    ///
    /// Well: running (and healthy or starting, if it has a health check),
    /// paused, created, being made or made again, or being updated; stopped
    /// or lost with a restart of its policy pending or under way (a brief
    /// crash does not reset the board). Failed: stopped (whatever its exit
    /// status: a critical container is one meant to keep running) or lost
    /// (its shim gone), with no restart to come, because it has no policy
    /// or its policy gave up; or running but unhealthy past its retries,
    /// with no restart to come for the same reasons. Not failed: what was done on purpose, an
    /// explicit `kill` (which ends the restarts, and `held` records) or a
    /// `delete` under way; a container deleted is no longer in the table,
    /// and neither is one whose create failed, nor a declared one that
    /// could not be made at boot (a reset would not mend its bundle): such
    /// are not watched.
    pub(crate) fn critical_failed(&self, c: &Container) -> Option<&'static str> {
        if !c.spec.critical {
            return None;
        }
        let restart_to_come = c.sup.due.is_some() || c.sup.respawning;
        // An update under way ends by itself, in the new version or the
        // previous one, within its swap-timeout.
        if c.update.as_ref().is_some_and(|u| u.phase.moving()) {
            return None;
        }
        let on_purpose = c.sup.held
            || c.sup.killing
            || matches!(
                c.op.as_ref().map(|op| &op.kind),
                Some(OpKind::Delete { .. })
            );
        if restart_to_come || on_purpose {
            return None;
        }
        match c.status {
            Status::Stopped => Some("stopped"),
            Status::Unknown => Some("lost"),
            // Unhealthy past its retries, and its policy will not make it
            // again (none, or its restarts are used up); while the policy
            // still would, the health check kills it for a restart.
            _ if c
                .health
                .as_ref()
                .is_some_and(|h| h.status == HealthStatus::Unhealthy)
                && !c.spec.restart.wants(Some(137), c.sup.streak, c.sup.held) =>
            {
                Some("unhealthy")
            }
            _ => None,
        }
    }

    /// When the next pet is due, while petting goes on.
    pub(crate) fn next_pet(&self) -> Option<Instant> {
        let w = self.watchdog.as_ref()?;
        (!w.stopped && w.dev.is_some()).then_some(w.next)
    }

    /// On every turn of the loop: stops petting for good if a critical
    /// container has failed (said in the log and as an event), else pets
    /// the watchdog if it is due.
    pub(crate) fn watchdog_tick(&mut self) {
        let Some(due) = self.next_pet() else {
            return;
        };
        let failed = self
            .containers
            .iter()
            .find_map(|(_, c)| Some((c.id().to_string(), self.critical_failed(c)?)));
        let Some(w) = self.watchdog.as_mut() else {
            return;
        };
        if let Some((id, why)) = failed {
            w.stopped = true;
            crate::logger::error(&format!(
                "watchdog {}: critical container {id} is {why} with no restart to come; \
                 petting stopped: the board resets",
                w.path.display()
            ));
            return self.emit(&id, Kind::Watchdog, &[("state", "stopped"), ("why", why)]);
        }
        let now = Instant::now();
        if now < due {
            return;
        }
        w.next = now + w.interval;
        let Some(dev) = w.dev.as_mut() else {
            return;
        };
        match self.fx.pet_watchdog(dev) {
            Ok(()) => w.pets += 1,
            Err(e) => crate::logger::warn(&format!(
                "watchdog {}: cannot pet it: {e}",
                w.path.display()
            )),
        }
    }

    /// At a clean stop: the magic close while petting goes on; once it
    /// has stopped, the device is closed armed, so the reset still comes.
    pub(crate) fn close_watchdog(&mut self) {
        let Some(w) = self.watchdog.as_mut() else {
            return;
        };
        let Some(dev) = w.dev.take() else {
            return;
        };
        // Once petting has stopped, dropped: closed armed.
        if !w.stopped {
            let _ = self.fx.close_watchdog(dev);
        }
    }
}
