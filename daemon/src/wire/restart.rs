//! Restart policies: whether a container that stopped is made again, and
//! after how long.
//!
//! - `no` (the default): never.
//! - `on-failure[:MAX]`: when it exited with a status other than 0 (or its
//!   shim was lost), at most MAX times in a row.
//! - `always`: whatever the status.
//! - `unless-stopped`: as `always`, except that a container stopped by an
//!   explicit `kill` stays stopped also across a daemon restart (`always`
//!   starts it again then).
//!
//! An explicit `kill` of the container (or `delete`) stops any of them.
//! The delay doubles with each restart in a row, from `--restart-delay` up
//! to `--restart-max-delay`; a container that ran for `--restart-window`
//! before it stopped starts a new row.

use std::time::Duration;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Restart {
    #[default]
    No,
    OnFailure(Option<u32>),
    Always,
    UnlessStopped,
}

impl Restart {
    pub fn parse(word: &str) -> Result<Restart, String> {
        let bad =
            || format!("restart is no, on-failure[:MAX], always or unless-stopped, not {word}");
        Ok(match word {
            "no" => Restart::No,
            "on-failure" => Restart::OnFailure(None),
            "always" => Restart::Always,
            "unless-stopped" => Restart::UnlessStopped,
            _ => match word.strip_prefix("on-failure:") {
                Some(n) => {
                    let n = n.parse::<u32>().ok().filter(|&n| n > 0).ok_or_else(bad)?;
                    Restart::OnFailure(Some(n))
                }
                None => return Err(bad()),
            },
        })
    }

    pub fn as_string(self) -> String {
        match self {
            Restart::No => "no".into(),
            Restart::OnFailure(None) => "on-failure".into(),
            Restart::OnFailure(Some(n)) => format!("on-failure:{n}"),
            Restart::Always => "always".into(),
            Restart::UnlessStopped => "unless-stopped".into(),
        }
    }

    /// Whether a container that stopped with `exit` (None: its shim was
    /// lost), after `streak` restarts in a row, is made again. `held`: it
    /// was stopped on purpose.
    pub fn wants(self, exit: Option<i32>, streak: u32, held: bool) -> bool {
        if held {
            return false;
        }
        match self {
            Restart::No => false,
            Restart::OnFailure(max) => exit != Some(0) && max.is_none_or(|m| streak < m),
            Restart::Always | Restart::UnlessStopped => true,
        }
    }
}

/// How long to wait before restart number `streak + 1` of a row.
pub fn delay(first: Duration, max: Duration, streak: u32) -> Duration {
    first
        .checked_mul(1u32 << streak.min(20))
        .map_or(max, |d| d.min(max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_policy() {
        for w in [
            "no",
            "on-failure",
            "on-failure:3",
            "always",
            "unless-stopped",
        ] {
            assert_eq!(Restart::parse(w).unwrap().as_string(), w);
        }
        for w in [
            "",
            "yes",
            "on-failure:",
            "on-failure:0",
            "on-failure:-1",
            "always:2",
        ] {
            assert!(Restart::parse(w).is_err(), "{w}");
        }
    }

    #[test]
    fn decides_by_policy_status_and_streak() {
        let of = Restart::OnFailure(Some(3));
        assert!(of.wants(Some(1), 0, false));
        assert!(of.wants(None, 2, false));
        assert!(!of.wants(Some(1), 3, false));
        assert!(!of.wants(Some(0), 0, false));
        assert!(Restart::OnFailure(None).wants(Some(137), 1000, false));
        assert!(Restart::Always.wants(Some(0), 1000, false));
        assert!(Restart::UnlessStopped.wants(Some(0), 0, false));
        assert!(!Restart::No.wants(Some(1), 0, false));
        for p in [of, Restart::Always, Restart::UnlessStopped] {
            assert!(!p.wants(Some(1), 0, true));
        }
    }

    #[test]
    fn delay_doubles_up_to_the_cap() {
        let ms = Duration::from_millis;
        let d: Vec<Duration> = (0..6).map(|s| delay(ms(100), ms(1000), s)).collect();
        assert_eq!(d, [ms(100), ms(200), ms(400), ms(800), ms(1000), ms(1000)]);
        assert_eq!(delay(ms(100), ms(1000), u32::MAX), ms(1000));
    }
}
