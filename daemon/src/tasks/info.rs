//! Requests answered from memory: `hello`, `version`, `help`, `list`,
//! `state` (the container, then a line per exec process).

use crate::server::conn::Role;
use crate::server::container::Container;
use crate::server::lifecycle::{Status, Verb};
use crate::server::metrics::{render, resident_bytes, Gauges};
use crate::server::Effects;
use crate::server::{Daemon, Outcome};
use crate::wire::proto::{Error, Reply, PROTOCOL};
use crate::wire::VERBS;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

impl<F: Effects> Daemon<F> {
    pub(crate) fn hello(&self) -> Outcome {
        let mut r = Reply::new();
        r.ok_words(&format!("nanoctr protocol={PROTOCOL} version={VERSION}"));
        Outcome::Reply(r)
    }

    pub(crate) fn version(&self) -> Outcome {
        Outcome::ok(&[("version", VERSION)])
    }

    pub(crate) fn help(&self) -> Outcome {
        let mut r = Reply::new();
        let width = VERBS.iter().map(|v| v.1.len()).max().unwrap_or(0).min(40);
        for (_, usage, what) in VERBS {
            if usage.len() > width {
                r.text(usage).text(&format!("{:width$}  {what}", ""));
            } else {
                r.text(&format!("{usage:width$}  {what}"));
            }
        }
        r.ok(&[]);
        Outcome::Reply(r)
    }

    pub(crate) fn metrics_text(&self) -> Outcome {
        // Sampled first, before this answer allocates anything.
        #[cfg(feature = "heap-stats")]
        let heap = Some((
            crate::sys::heap::live(),
            crate::sys::heap::peak(),
            crate::server::budget::heap_bound(&self.cfg),
        ));
        #[cfg(not(feature = "heap-stats"))]
        let heap = None;
        let statuses = [
            Status::Created,
            Status::Running,
            Status::Paused,
            Status::Stopped,
            Status::Unknown,
        ];
        let containers: Vec<(&'static str, usize)> = statuses
            .iter()
            .map(|s| {
                (
                    s.as_str(),
                    self.containers
                        .iter()
                        .filter(|(_, c)| c.status == *s)
                        .count(),
                )
            })
            .collect();
        let gauges = Gauges {
            containers: &containers,
            max_containers: self.cfg.max_containers,
            subscribers: self
                .clients
                .iter()
                .filter(|(_, c)| c.subscription.is_some())
                .count(),
            clients: self.clients.len(),
            places: [
                ("request", self.count(Role::Request), self.cfg.max_clients),
                (
                    "follower",
                    self.count(Role::Follower),
                    self.cfg.max_followers,
                ),
                (
                    "tty",
                    self.count(Role::Tty),
                    usize::from(self.tty.is_some()),
                ),
            ],
            resident_bytes: resident_bytes(),
            heap,
            watchdog: self.watchdog.as_ref().map(|w| (w.pets, !w.stopped)),
            bridge_addresses: self
                .containers
                .iter()
                .filter(|(_, c)| c.net.as_ref().is_some_and(|n| n.ip().is_some()))
                .count(),
        };

        let mut r = Reply::new();
        for line in render(&self.metrics, &gauges).lines() {
            r.text(line);
        }
        r.ok(&[]);
        Outcome::Reply(r)
    }

    /// One line per container; containers still being created are not
    /// shown until their create has succeeded (those being made again by
    /// their restart policy are, as `restarting`).
    pub(crate) fn list(&self) -> Outcome {
        let mut r = Reply::new();
        let mut n = 0;
        for (_, c) in self.containers.iter() {
            if c.status != Status::Creating || c.sup.respawning {
                r.data(&summary(c, &c.init.pid.to_string()));
                n += 1;
            }
        }
        r.ok(&[("count", &n.to_string())]);
        Outcome::Reply(r)
    }

    pub(crate) fn state(&self, id: &str) -> Result<Outcome, Error> {
        let restarting = self
            .find(id)
            .filter(|&r| self.containers.get(r).is_some_and(|c| c.sup.respawning));
        let r = match restarting {
            Some(r) => r,
            None => self.admit(id, Verb::State)?,
        };
        let c = self
            .containers
            .get(r)
            .ok_or_else(|| super::internal("container vanished"))?;
        let pid = c.init.pid.to_string();
        let created = c.created.to_string();
        let exit = c.init.exit_code.map(|e| e.to_string());
        let runtime = c.runtime.path.to_string_lossy();
        let labels: Vec<(String, &str)> = c
            .spec
            .labels
            .iter()
            .map(|(k, v)| (format!("label.{k}"), v.as_str()))
            .collect();
        let mut pairs = summary(c, &pid);
        pairs.push(("created", &created));
        if let Some(exit) = &exit {
            pairs.push(("exit", exit));
        }
        pairs.push(("runtime", &runtime));
        let rootfs = c.image.as_ref().map(|i| format!("image:{}", i.fs.name()));
        if let Some(rootfs) = &rootfs {
            pairs.push(("rootfs", rootfs));
        }
        let policy = c.spec.restart.as_string();
        let restarts = c.sup.restarts.to_string();
        if c.spec.restart != crate::wire::restart::Restart::No {
            pairs.push(("restart", &policy));
            pairs.push(("restarts", &restarts));
            if c.sup.held {
                pairs.push(("held", "1"));
            }
        }
        let health = c.health.as_ref();
        let failures = health.map(|h| h.failures.to_string());
        let probe_exit = health.and_then(|h| h.last_exit).map(|e| e.to_string());
        if let Some(h) = health {
            pairs.push(("health-failures", failures.as_deref().unwrap_or("0")));
            if let Some(exit) = &probe_exit {
                pairs.push(("health-exit", exit));
            }
            if !h.last_output.is_empty() {
                pairs.push(("health-output", &h.last_output));
            }
        }
        let update = c.update.as_ref();
        let previous = update.map(|u| {
            u.previous
                .as_ref()
                .map_or("none".to_string(), |p| p.spec.bundle.clone())
        });
        if let (Some(u), Some(previous)) = (update, &previous) {
            let phase = match u.locked {
                true => "locked",
                false => u.phase.as_str(),
            };
            pairs.push(("update", phase));
            pairs.push(("previous", previous));
        }
        if c.spec.critical {
            pairs.push(("critical", "yes"));
        }
        let net = c.spec.net.describe();
        pairs.push(("net", &net));
        let mut ip = c.net.as_ref().and_then(|n| n.ip()).map(|ip| ip.to_string());
        let cni_ips = match &c.spec.net.mode {
            Some(crate::wire::net::NetMode::Cni(_)) => self.cni_ips(c.id()),
            _ => Vec::new(),
        };
        if ip.is_none() {
            // The first address a CNI network gave, without its prefix.
            ip = cni_ips
                .first()
                .map(|a| a.split('/').next().unwrap_or(a).to_string());
        }
        let ips = cni_ips.join(",");
        if let Some(ip) = &ip {
            pairs.push(("ip", ip));
        }
        if !ips.is_empty() {
            pairs.push(("ips", &ips));
        }
        pairs.extend(labels.iter().map(|(k, v)| (k.as_str(), *v)));
        let mut reply = Reply::new();
        reply.data(&pairs);
        // Then one line per exec process, oldest first.
        for e in self.execs_of(r) {
            let Some(x) = self.execs.get(e) else {
                continue;
            };
            let pid = x.process.pid.to_string();
            let exit = x.process.exit_code.map(|e| e.to_string());
            let mut pairs = vec![
                ("proc", x.name.as_str()),
                ("status", x.status.as_str()),
                ("pid", &pid),
            ];
            if let Some(exit) = &exit {
                pairs.push(("exit", exit));
            }
            reply.data(&pairs);
        }
        reply.ok(&[]);
        Ok(Outcome::Reply(reply))
    }
}

/// `id= status= pid= bundle=`, as `list` shows a container.
fn summary<'a>(c: &'a Container, pid: &'a str) -> Vec<(&'static str, &'a str)> {
    let mut pairs = vec![
        ("id", c.id()),
        (
            "status",
            match c.status == Status::Creating && c.sup.respawning {
                true => "restarting",
                false => c.status.as_str(),
            },
        ),
        ("pid", pid),
        ("bundle", &c.spec.bundle),
    ];
    if let Some(h) = &c.health {
        pairs.push(("health", h.status.as_str()));
    }
    pairs
}
