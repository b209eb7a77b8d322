//! The `container` file: the daemon's record of a container, written
//! atomically at create. It is one line of protocol words, so the same
//! parser reads it:
//!
//! ```text
//! id=web bundle=/srv/web runtime=/usr/bin/runc created=1700000000 stdout=/var/log/web label.app=web
//! ```
//!
//! A container whose rootfs is an image has `image=FS:PATH` too (see
//! `crate::rootfs`), so a restarted daemon knows what to mount again.

use std::path::PathBuf;

use crate::wire::proto::{quote, refuse, split_words, Code, Error};
use crate::wire::Spec;

/// What the record holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub spec: Spec,
    /// The resolved runtime binary.
    pub runtime: PathBuf,
    /// Seconds since the epoch (the device's clock, right or not).
    pub created: u64,
    /// Times the restart policy has made it again, in all and in a row.
    pub restarts: u32,
    pub streak: u32,
    /// Stopped on purpose (`kill`): the restart policy leaves it stopped.
    pub held: bool,
    /// Its image rootfs, when its bundle's root is one.
    pub image: Option<crate::rootfs::Image>,
}

impl Record {
    pub fn encode(&self) -> String {
        let s = &self.spec;
        let mut words = vec![
            format!("id={}", quote(&s.id)),
            format!("bundle={}", quote(&s.bundle)),
            format!("runtime={}", quote(&self.runtime.to_string_lossy())),
            format!("created={}", self.created),
        ];
        if self.restarts > 0 {
            words.push(format!("restarts={}", self.restarts));
        }
        if self.streak > 0 {
            words.push(format!("streak={}", self.streak));
        }
        if self.held {
            words.push("held=1".into());
        }
        if let Some(image) = &self.image {
            words.push(format!("image={}", quote(&image.word())));
        }
        words.extend(s.options());
        let mut line = words.join(" ");
        line.push('\n');
        line
    }

    /// Reads a record back; anything malformed is an error, never a guess.
    pub fn decode(text: &str) -> Result<Record, Error> {
        let words = split_words(text.trim_end_matches('\n').as_bytes())?;
        let (mut id, mut bundle, mut runtime, mut created) = (None, None, None, None);
        let (mut restarts, mut streak, mut held) = (Some(0), Some(0), false);
        let mut image = Ok(None);
        let mut opts = Vec::new();
        for w in &words {
            match w.split_once('=') {
                Some(("id", v)) => id = Some(v),
                Some(("bundle", v)) => bundle = Some(v),
                Some(("runtime", v)) => runtime = Some(v),
                Some(("created", v)) => created = v.parse().ok(),
                Some(("restarts", v)) => restarts = v.parse().ok(),
                Some(("streak", v)) => streak = v.parse().ok(),
                Some(("held", "1")) => held = true,
                Some(("image", v)) => {
                    image = crate::rootfs::Image::from_word(v).map(Some).ok_or(())
                }
                _ => opts.push(w.as_str()),
            }
        }
        let (Some(restarts), Some(streak), Ok(image)) = (restarts, streak, image) else {
            return refuse(Code::Invalid, "record has a bad restarts, streak or image");
        };
        let (Some(id), Some(bundle), Some(runtime), Some(created)) = (id, bundle, runtime, created)
        else {
            return refuse(Code::Invalid, "record lacks id, bundle, runtime or created");
        };
        // The daemon writes the runtime it resolved: an absolute path.
        let runtime = crate::wire::check_path("runtime", runtime)?;
        let spec = Spec::parse(id, bundle, &opts)?;
        if spec.runtime.is_some() {
            return refuse(Code::Invalid, "record has runtime twice");
        }
        Ok(Record {
            spec,
            runtime: runtime.into(),
            created,
            restarts,
            streak,
            held,
            image,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let r = Record {
            spec: Spec {
                id: "web".into(),
                bundle: "/srv/my bundle".into(),
                stdin: None,
                stdout: Some("/var/log/web".into()),
                stderr: None,
                runtime: None,
                labels: vec![("app".into(), "a \"quoted\" value".into())],
                terminal: Some(false),
                interactive: true,
                cols: Some(132),
                rows: None,
                log_size: Some(8192),
                restart: crate::wire::restart::Restart::OnFailure(Some(4)),
                overlay: Some(crate::wire::overlay::Overlay::Dir("/data/my web".into())),
                health: crate::wire::health::HealthOpts {
                    retries: Some(4),
                    ..Default::default()
                },
                critical: true,
                net: crate::wire::net::NetOpts {
                    mode: Some(crate::wire::net::NetMode::Cni("lan".into())),
                    ip: None,
                    publish: vec![crate::wire::net::Publish::parse("53:53/udp").unwrap()],
                },
            },
            runtime: "/usr/bin/runc".into(),
            created: 1_700_000_000,
            restarts: 7,
            streak: 2,
            held: true,
            image: Some(crate::rootfs::Image {
                path: "/srv/web/root fs.img".into(),
                fs: crate::rootfs::Fs::Erofs,
            }),
        };
        let text = r.encode();
        assert!(text.ends_with('\n') && text.lines().count() == 1);
        assert_eq!(Record::decode(&text).unwrap(), r);
    }

    #[test]
    fn refuses_torn_or_bad_records() {
        assert!(Record::decode("").is_err());
        assert!(Record::decode("id=web bundle=/b runtime=/r").is_err());
        assert!(Record::decode("id=web bundle=/b runtime=/r created=x").is_err());
        assert!(Record::decode("id=../x bundle=/b runtime=/r created=1").is_err());
        assert!(Record::decode("id=web bundle=/b runtime=/r created=1 bogus=1").is_err());
        assert!(Record::decode("id=web bundle=/b runtime=/r created=1 stdout=\"/o").is_err());
        // Found by fuzzing: what encode could not write back.
        assert!(Record::decode("id=a bundle=/ runtime=\x01 created=0").is_err());
        assert!(Record::decode("id=a bundle=/ runtime= created=0").is_err());
        assert!(Record::decode("id=a bundle=/ runtime=r created=0").is_err());
        assert!(Record::decode("id=a bundle=/ runtime=/r created=0 image=ext4:/i").is_err());
        let r = Record::decode("id=a bundle=/ runtime=/r created=0 streak=1").unwrap();
        assert_eq!((r.restarts, r.streak), (0, 1));
        assert_eq!(Record::decode(&r.encode()).unwrap(), r);
    }
}
