//! Health checks: the `health-*` options of `create`/`run` (and of a
//! `[container]` section), an image's Docker `Healthcheck` kept in its
//! bundle's annotations, and the check they make together.
//!
//! ```text
//! "health-cmd=wget -q -O /dev/null http://127.0.0.1/" health-interval=10s
//! health-timeout=3s health-retries=3 health-start=30s
//! ```
//!
//! The command is split into words as a request line is (quotes keep
//! spaces), and run inside the container as it is: a shell only when the
//! words name one (`"health-cmd=sh -c \"test -e /run/ok\""`).
//! `health-cmd=none` turns off an image's check.

use std::time::Duration;

use super::proto::{quote, split_words, Code, Error};

/// The longest command a check may have, in bytes.
const MAX_CMD: usize = 1024;

/// What the options say; each unset field is the image's, or the default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthOpts {
    /// `Some(empty)`: `health-cmd=none`.
    pub cmd: Option<Vec<String>>,
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
    pub retries: Option<u32>,
    pub start: Option<Duration>,
}

/// A container's health check, as it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    pub cmd: Vec<String>,
    /// From one probe's start to the next.
    pub interval: Duration,
    /// A probe running longer is killed, and counts as failed.
    pub timeout: Duration,
    /// Failures in a row that make it unhealthy.
    pub retries: u32,
    /// The grace period after each start: failures in it do not count.
    pub start: Duration,
}

/// Docker's defaults.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_RETRIES: u32 = 3;

impl HealthOpts {
    /// Takes `key=value` if it is a health option; false if it is not one.
    pub fn option(&mut self, key: &str, value: &str) -> Result<bool, Error> {
        let twice = || Error::new(Code::Invalid, format!("{key} given twice"));
        match key {
            "health-cmd" => {
                let cmd = match value {
                    "none" => Vec::new(),
                    _ => parse_cmd(value)?,
                };
                if self.cmd.replace(cmd).is_some() {
                    return Err(twice());
                }
            }
            "health-interval" | "health-timeout" | "health-start" => {
                let least = match key {
                    "health-start" => Duration::ZERO,
                    _ => Duration::from_millis(100),
                };
                let d = parse_duration(value)
                    .filter(|d| *d >= least)
                    .ok_or_else(|| {
                        Error::new(
                            Code::Invalid,
                            format!(
                                "{key} wants a duration such as 10s, 500ms or 2m (at least {} ms)",
                                least.as_millis()
                            ),
                        )
                    })?;
                let slot = match key {
                    "health-interval" => &mut self.interval,
                    "health-timeout" => &mut self.timeout,
                    _ => &mut self.start,
                };
                if slot.replace(d).is_some() {
                    return Err(twice());
                }
            }
            "health-retries" => {
                let n = value.parse::<u32>().ok().filter(|n| (1..=1000).contains(n));
                let n =
                    n.ok_or_else(|| Error::new(Code::Invalid, "health-retries must be 1 to 1000"))?;
                if self.retries.replace(n).is_some() {
                    return Err(twice());
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    pub fn is_empty(&self) -> bool {
        *self == HealthOpts::default()
    }

    /// The options again, as [`HealthOpts::option`] takes them.
    pub fn words(&self) -> Vec<String> {
        let mut words = Vec::new();
        if let Some(cmd) = &self.cmd {
            let value = match cmd.is_empty() {
                true => "none".to_string(),
                false => cmd.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" "),
            };
            words.push(quote(&format!("health-cmd={value}")).into_owned());
        }
        for (key, d) in [
            ("health-interval", self.interval),
            ("health-timeout", self.timeout),
            ("health-start", self.start),
        ] {
            if let Some(d) = d {
                words.push(format!("{key}={}ms", d.as_millis()));
            }
        }
        if let Some(n) = self.retries {
            words.push(format!("health-retries={n}"));
        }
        words
    }

    /// The check these options make over the image's (`image`, from the
    /// bundle); `None` when neither has a command, or it is `none`.
    pub fn check(&self, image: Option<&HealthOpts>) -> Option<HealthCheck> {
        let empty = HealthOpts::default();
        let image = image.unwrap_or(&empty);
        let cmd = self.cmd.as_ref().or(image.cmd.as_ref())?;
        if cmd.is_empty() {
            return None;
        }
        Some(HealthCheck {
            cmd: cmd.clone(),
            interval: self.interval.or(image.interval).unwrap_or(DEFAULT_INTERVAL),
            timeout: self.timeout.or(image.timeout).unwrap_or(DEFAULT_TIMEOUT),
            retries: self.retries.or(image.retries).unwrap_or(DEFAULT_RETRIES),
            start: self.start.or(image.start).unwrap_or(Duration::ZERO),
        })
    }
}

/// A health command's words; quotes keep spaces in one word.
fn parse_cmd(value: &str) -> Result<Vec<String>, Error> {
    if value.len() > MAX_CMD {
        return Err(Error::new(
            Code::Invalid,
            format!("health-cmd is longer than {MAX_CMD} bytes"),
        ));
    }
    // A request line cannot carry them (the client and the config file
    // say so); a command with them is refused as a whole.
    if value.chars().any(char::is_control) {
        return Err(Error::new(
            Code::Invalid,
            "health-cmd contains control characters",
        ));
    }
    let words = split_words(value.as_bytes())
        .map_err(|e| Error::new(Code::Invalid, format!("health-cmd: {}", e.message)))?;
    if words.is_empty() || words.iter().any(|w| w.is_empty() || w.contains('\0')) {
        return Err(Error::new(
            Code::Invalid,
            "health-cmd wants a command, e.g. \"health-cmd=wget -q -O /dev/null http://127.0.0.1/\"",
        ));
    }
    Ok(words)
}

/// `10s`, `500ms`, `2m`, `1h`, or a bare number of seconds.
pub fn parse_duration(value: &str) -> Option<Duration> {
    let digits = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (n, unit) = value.split_at(digits);
    let n: u64 = n.parse().ok()?;
    let ms = match unit {
        "ms" => n,
        "" | "s" => n.checked_mul(1000)?,
        "m" => n.checked_mul(60_000)?,
        "h" => n.checked_mul(3_600_000)?,
        _ => return None,
    };
    // Beyond a day is a mistake, not a check.
    (ms <= 86_400_000).then(|| Duration::from_millis(ms))
}

/// An image's Docker `Healthcheck` (the JSON `nanoctr import` keeps under
/// [`crate::image::spec::HEALTHCHECK`]): `Test` (`["CMD", ...]`,
/// `["CMD-SHELL", "..."]` as `/bin/sh -c`, `["NONE"]`), and `Interval`,
/// `Timeout`, `StartPeriod` in nanoseconds, `Retries`. `None` when there
/// is none or it cannot be read (it is the image's word, not the user's:
/// an unreadable one is no check rather than a refusal).
pub fn from_image(text: &str) -> Option<HealthOpts> {
    use crate::bundle::json;
    let doc = text.as_bytes();
    json::check(doc).ok()?;
    let all = 0..doc.len();
    let mut opts = HealthOpts::default();
    for (key, r) in json::members(doc, all)? {
        let ns = || -> Option<Duration> {
            let n: u64 = std::str::from_utf8(&doc[r.clone()]).ok()?.parse().ok()?;
            (n > 0).then(|| Duration::from_nanos(n))
        };
        match key.as_str() {
            "Test" => {
                let words: Option<Vec<String>> = json::elements(doc, r.clone())?
                    .into_iter()
                    .map(|e| json::text(doc, e))
                    .collect();
                let words = words?;
                opts.cmd = match words.split_first() {
                    Some((kind, rest)) if kind == "CMD" && !rest.is_empty() => Some(rest.to_vec()),
                    Some((kind, [line])) if kind == "CMD-SHELL" => {
                        Some(vec!["/bin/sh".into(), "-c".into(), line.clone()])
                    }
                    Some((kind, _)) if kind == "NONE" => Some(Vec::new()),
                    _ => None,
                };
            }
            "Interval" => opts.interval = ns(),
            "Timeout" => opts.timeout = ns(),
            "StartPeriod" => opts.start = ns(),
            "Retries" => {
                let n = std::str::from_utf8(&doc[r]).ok()?.parse::<u32>().ok();
                opts.retries = n.filter(|n| *n > 0);
            }
            _ => {}
        }
    }
    Some(opts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(words: &[&str]) -> Result<HealthOpts, Error> {
        let mut o = HealthOpts::default();
        for w in words {
            let (k, v) = w.split_once('=').unwrap();
            assert!(o.option(k, v)?, "{w} is a health option");
        }
        Ok(o)
    }

    #[test]
    fn options_round_trip() {
        let o = opts(&[
            "health-cmd=sh -c \"test -e /run/ok\"",
            "health-interval=2s",
            "health-timeout=500ms",
            "health-retries=5",
            "health-start=1m",
        ])
        .unwrap();
        assert_eq!(o.cmd.as_deref().unwrap(), ["sh", "-c", "test -e /run/ok"]);
        assert_eq!(o.start, Some(Duration::from_secs(60)));
        let words = o.words();
        let back = split_words(words.join(" ").as_bytes()).unwrap();
        let back: Vec<&str> = back.iter().map(String::as_str).collect();
        assert_eq!(opts(&back).unwrap(), o);
        let check = o.check(None).unwrap();
        assert_eq!(check.retries, 5);
        assert_eq!(check.interval, Duration::from_secs(2));
        // A request line cannot carry a control character back.
        for bad in ["health-cmd=a\x7fb", "health-cmd=a\tb", "health-cmd=\u{85}x"] {
            let e = opts(&[bad]).unwrap_err();
            assert!(
                e.message.contains("control characters"),
                "{bad}: {}",
                e.message
            );
        }
    }

    #[test]
    fn refusals() {
        for bad in [
            "health-cmd=",
            "health-cmd=\"unclosed",
            "health-interval=0",
            "health-interval=10x",
            "health-timeout=2d",
            "health-retries=0",
            "health-retries=-1",
            "health-start=99999999999999999999",
        ] {
            assert!(opts(&[bad]).is_err(), "{bad}");
        }
        assert!(opts(&["health-retries=2", "health-retries=3"]).is_err());
        assert!(!HealthOpts::default().option("healthy", "1").unwrap());
    }

    #[test]
    fn the_image_check_under_the_options() {
        let image = from_image(
            r#"{"Test":["CMD-SHELL","wget -q -O- http://x/ \u0026\u0026 true"],"Interval":5000000000,"Retries":2}"#,
        )
        .unwrap();
        let check = HealthOpts::default().check(Some(&image)).unwrap();
        assert_eq!(
            check.cmd,
            ["/bin/sh", "-c", "wget -q -O- http://x/ && true"]
        );
        assert_eq!(check.interval, Duration::from_secs(5));
        assert_eq!((check.retries, check.timeout), (2, DEFAULT_TIMEOUT));
        let mine = opts(&["health-retries=7"]).unwrap();
        assert_eq!(mine.check(Some(&image)).unwrap().retries, 7);
        let off = opts(&["health-cmd=none"]).unwrap();
        assert_eq!(off.check(Some(&image)), None);
        let none = from_image(r#"{"Test":["NONE"]}"#).unwrap();
        assert_eq!(HealthOpts::default().check(Some(&none)), None);
        assert_eq!(from_image("{not json"), None);
        assert_eq!(HealthOpts::default().check(None), None);
    }
}
