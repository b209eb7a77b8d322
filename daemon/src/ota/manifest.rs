//! `nanoctr.conf`, the manifest an update artifact carries beside its
//! image: which container the image updates, and how it runs. It is one
//! `[container ID]` section as nanoctrd's config has them (read by the
//! same code, `config::file::manifest`), without a bundle (the module
//! makes it from the image), `after` or `ready`, and with two keys of its
//! own:
//!
//! ```text
//! [container web]
//! options = log-size=32k label.app=web
//! restart = on-failure:5           # runtime, restart, overlay, overlay-size,
//! health-cmd = wget -q -O /dev/null http://127.0.0.1/
//! health-interval = 5              #   health-*, options: as in nanoctrd's config
//! swap-timeout = 30                # seconds the new version has to prove itself
//! platform = linux/arm64           # which image of a multi-platform archive
//! ```
//!
//! Every option is checked as `create` checks it, before anything is done.

use std::path::Path;

use crate::image::source::Platform;

/// The manifest's file name in the artifact.
pub const NAME: &str = "nanoctr.conf";

#[derive(Debug, PartialEq, Eq)]
pub struct Manifest {
    pub id: String,
    /// Create options, as words of a request (checked).
    pub options: Vec<String>,
    /// `swap-timeout=`, for the daemon's swap.
    pub swap_timeout: Option<u32>,
    pub platform: Option<Platform>,
}

/// Parses a manifest's text; `name` is how messages call the file.
pub fn parse(name: &Path, text: &str) -> Result<Manifest, String> {
    let conf = crate::config::file::manifest(name, text)?;
    let [decl] = &conf.containers[..] else {
        return Err(format!(
            "{}: {} [container ID] sections, not one",
            name.display(),
            conf.containers.len()
        ));
    };
    let mut m = Manifest {
        id: decl.spec.id.clone(),
        options: decl.options.clone(),
        swap_timeout: None,
        platform: None,
    };
    for s in &conf.settings {
        let fail = |e: &str| format!("{}: {e}", s.at);
        match s.key.as_str() {
            "platform" => m.platform = Some(Platform::parse(&s.value).map_err(|e| fail(&e))?),
            _ => {
                let t = s.value.parse().ok().filter(|t| (1..=86_400).contains(t));
                m.swap_timeout = Some(t.ok_or_else(|| fail("swap-timeout is 1 to 86400 seconds"))?);
            }
        }
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(text: &str) -> Result<Manifest, String> {
        parse(Path::new("files/nanoctr.conf"), text)
    }

    #[test]
    fn reads_a_manifest() {
        let m = manifest(
            "# web, version 2\n[container web]\noptions = log-size=32k \"label.note=a b\"\n\
             restart = on-failure:5\noverlay-size = 8m\nswap-timeout = 20\n\
             platform = linux/arm64/v8\nruntime = crun\n",
        )
        .unwrap();
        assert_eq!(m.id, "web");
        assert_eq!(
            m.options,
            [
                "log-size=32k",
                "label.note=a b",
                "overlay-size=8m",
                "runtime=crun",
                "restart=on-failure:5"
            ]
        );
        assert_eq!(m.swap_timeout, Some(20));
        assert_eq!(m.platform.unwrap().variant.as_deref(), Some("v8"));
        let probe = "[container web]\nhealth-cmd = wget -q -O /dev/null http://127.0.0.1/\n";
        let cmd = "health-cmd=wget -q -O /dev/null http://127.0.0.1/";
        assert_eq!(manifest(probe).unwrap().options, [cmd]);
        let bare = manifest("[container db]\n").unwrap();
        assert!(bare.options.is_empty() && bare.swap_timeout.is_none());
    }

    #[test]
    fn errors_name_the_line() {
        for (text, line, what) in [
            (
                "[container web]\ncolour = red\n",
                "2",
                "unknown container key colour",
            ),
            (
                "options = log-size=32k\n",
                "1",
                "only [container ID] sections",
            ),
            ("", "", "0 [container ID] sections"),
            (
                "[container a]\n[container b]\n",
                "",
                "2 [container ID] sections",
            ),
            ("[container ../x]\n", "1", "id"),
            (
                "[container web]\nbundle = /srv/web\n",
                "2",
                "no place in a manifest",
            ),
            ("[container web]\nafter = db\n", "2", "no place"),
            (
                "[container web]\noptions = bogus=1\n",
                "1",
                "unknown option bogus=1",
            ),
            ("[container web]\nrestart = sometimes\n", "2", "restart"),
            ("[container web]\nswap-timeout = 0\n", "2", "swap-timeout"),
            (
                "[container web]\nswap-timeout = 1\nswap-timeout = 2\n",
                "3",
                "twice",
            ),
            ("[container web]\nplatform = arm64\n", "2", "OS/ARCH"),
            (
                "[container web]\nswap-timeout\n",
                "2",
                "expected key = value",
            ),
        ] {
            let e = manifest(text).unwrap_err();
            let at = match line {
                "" => "files/nanoctr.conf: ".to_string(),
                n => format!("files/nanoctr.conf:{n}: "),
            };
            assert!(e.starts_with(&at) && e.contains(what), "{text:?}: {e}");
        }
    }
}
