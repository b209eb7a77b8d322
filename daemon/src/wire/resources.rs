//! `update`: the limits a request changes, as the runtime's `update` flags.

use crate::wire::proto::{refuse, Code, Error};

/// Each key `update` takes, the runtime flag it becomes, and whether its
/// value is a byte count (which may end in k, m or g) and may be -1
/// (no limit).
const KEYS: [(&str, &str, bool, bool); 6] = [
    ("memory", "--memory", true, false),
    ("memory-swap", "--memory-swap", true, true),
    ("cpu-shares", "--cpu-share", false, false),
    ("cpu-quota", "--cpu-quota", false, true),
    ("cpu-period", "--cpu-period", false, false),
    ("pids", "--pids-limit", false, true),
];

/// The new limits, in the order given: `(key, value)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources(pub Vec<(&'static str, i64)>);

impl Resources {
    pub fn parse(opts: &[&str]) -> Result<Resources, Error> {
        let mut out = Vec::new();
        for opt in opts {
            let Some((key, value)) = opt.split_once('=') else {
                return refuse(Code::Invalid, format!("update wants KEY=VALUE, not {opt}"));
            };
            let Some(&(name, _, bytes, unlimited)) = KEYS.iter().find(|k| k.0 == key) else {
                let known: Vec<&str> = KEYS.iter().map(|k| k.0).collect();
                return refuse(
                    Code::Invalid,
                    format!("update knows {}, not {key}", known.join(", ")),
                );
            };
            let n = match value {
                "-1" if unlimited => Some(-1),
                v if bytes => parse_bytes(v),
                v => v.parse::<i64>().ok().filter(|&n| n >= 0),
            };
            let Some(n) = n else {
                return refuse(Code::Invalid, format!("bad {key}={value}"));
            };
            if out.iter().any(|(k, _)| *k == name) {
                return refuse(Code::Invalid, format!("{key} given twice"));
            }
            out.push((name, n));
        }
        if out.is_empty() {
            return refuse(Code::Invalid, "update needs at least one KEY=VALUE");
        }
        Ok(Resources(out))
    }

    /// The runtime's command line after `update`.
    pub fn args(&self) -> Vec<String> {
        let mut args = Vec::new();
        for (key, n) in &self.0 {
            if let Some(k) = KEYS.iter().find(|k| k.0 == *key) {
                args.push(k.1.to_string());
                args.push(n.to_string());
            }
        }
        args
    }
}

/// Bytes, with an optional k, m or g (powers of 1024) suffix.
pub fn parse_bytes(v: &str) -> Option<i64> {
    let (digits, shift) = match v.as_bytes().last()?.to_ascii_lowercase() {
        b'k' => (&v[..v.len() - 1], 10),
        b'm' => (&v[..v.len() - 1], 20),
        b'g' => (&v[..v.len() - 1], 30),
        _ => (v, 0),
    };
    let n = digits.parse::<i64>().ok().filter(|&n| n >= 0)?;
    n.checked_mul(1 << shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_values_and_flags() {
        let r = Resources::parse(&["memory=16m", "pids=-1", "cpu-quota=50000", "memory-swap=1G"])
            .unwrap();
        assert_eq!(
            r.0,
            [
                ("memory", 16 << 20),
                ("pids", -1),
                ("cpu-quota", 50000),
                ("memory-swap", 1 << 30)
            ]
        );
        assert_eq!(
            r.args(),
            [
                "--memory",
                "16777216",
                "--pids-limit",
                "-1",
                "--cpu-quota",
                "50000",
                "--memory-swap",
                "1073741824"
            ]
        );
        assert_eq!(
            Resources::parse(&["cpu-shares=512"]).unwrap().args(),
            ["--cpu-share", "512"]
        );
        assert_eq!(parse_bytes("512k"), Some(512 * 1024));
        assert_eq!(parse_bytes("100"), Some(100));
    }

    #[test]
    fn refusals() {
        for bad in [
            &[][..],
            &["memory"],
            &["memory=-1"],
            &["memory=lots"],
            &["memory=1t"],
            &["cpu-shares=-1"],
            &["cpu-shares=1k"],
            &["swap=1"],
            &["pids=1", "pids=2"],
            &["memory=99999999999g"],
        ] {
            assert_eq!(
                Resources::parse(bad).unwrap_err().code,
                Code::Invalid,
                "{bad:?}"
            );
        }
    }
}
