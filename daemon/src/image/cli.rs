//! The client's image verbs: `import`, `images`, `image-rm`, `image-gc`.
//! Exit status: 0 done; 1 refused or failed (`nanoctr: ERR CODE message`
//! on stderr); 2 a usage error.

use std::path::PathBuf;

use super::source::Platform;
use super::store::{Store, DEFAULT_STORE};
use super::{Error, Options};

pub const VERBS: [&str; 4] = ["import", "images", "image-rm", "image-gc"];

pub const USAGE: &str = "\
nanoctr import [OPTIONS] SOURCE BUNDLE_DIR [-- ARG...]
    makes BUNDLE_DIR (config.json and rootfs/) from an OCI image: an image
    layout directory (DIR, or DIR:TAG when it holds several images), an
    oci-archive tar, or a docker save tar (FILE, or FILE:TAG). Layers may
    be tar, tar+gzip or tar+zstd; every digest and size is checked. ARGs
    replace the image's Entrypoint and Cmd.
  --platform OS/ARCH[/VARIANT]  the image for this platform (default: this device's)
  --name NAME       keep the image in the store under NAME (its layers stay shared)
  --store DIR       the image store (default: image-store in /etc/nanoctr/nanoctrd.conf,
                    else /var/lib/nanoctr/images)
  --env KEY=VALUE   set a variable (repeatable)
  --cwd DIR         the working directory
  --user USER[:GROUP]  the user (a name from the image's /etc/passwd, or a number)
nanoctr images [--store DIR]
    the named images: name, digest, size (bytes of layers only it uses),
    shared (bytes of layers others use too), layers
nanoctr image-rm [--store DIR] NAME
    forgets NAME and frees the layers nothing else names
nanoctr image-gc [--store DIR]
    frees every layer no name refers to, and what dead imports left
";

pub fn main(words: &[String]) -> i32 {
    let verb = words[0].as_str();
    let args = &words[1..];
    if args
        .iter()
        .take_while(|a| *a != "--")
        .any(|a| a == "-h" || a == "--help")
    {
        print!("{USAGE}");
        return 0;
    }
    let parsed = parse(verb, args);
    let result = match parsed {
        Ok(p) => run(verb, p),
        Err(m) => {
            eprintln!("nanoctr: {m}\n\n{USAGE}");
            return 2;
        }
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("nanoctr: ERR {} {}", e.code.as_str(), e.message);
            1
        }
    }
}

struct Parsed {
    options: Options,
    positional: Vec<String>,
}

fn parse(verb: &str, args: &[String]) -> Result<Parsed, String> {
    let store = crate::client::configured("image-store").unwrap_or(DEFAULT_STORE.into());
    let mut o = Options {
        store: PathBuf::from(store),
        ..Options::default()
    };
    let mut positional = Vec::new();
    let mut i = 0;
    let import = verb == "import";
    while let Some(a) = args.get(i) {
        i += 1;
        if a == "--" && import {
            o.overrides.args = Some(args[i..].to_vec());
            break;
        }
        let Some(flag) = a.strip_prefix("--") else {
            positional.push(a.clone());
            continue;
        };
        let (key, inline) = match flag.split_once('=') {
            Some((k, v)) => (k, Some(v.to_string())),
            None => (flag, None),
        };
        let mut value = || -> Result<String, String> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => {
                    let v = args
                        .get(i)
                        .cloned()
                        .ok_or(format!("--{key} needs a value"))?;
                    i += 1;
                    Ok(v)
                }
            }
        };
        match key {
            "store" => o.store = value()?.into(),
            "platform" if import => o.platform = Some(Platform::parse(&value()?)?),
            "name" if import => o.name = Some(value()?),
            "env" if import => {
                let v = value()?;
                if !v.contains('=') || v.starts_with('=') {
                    return Err(format!("--env {v}: not KEY=VALUE"));
                }
                o.overrides.env.push(v);
            }
            "cwd" if import => o.overrides.cwd = Some(value()?),
            "user" if import => o.overrides.user = Some(value()?),
            _ => return Err(format!("{verb}: unknown option {a}")),
        }
    }
    let want = match verb {
        "import" => 2,
        "image-rm" => 1,
        _ => 0,
    };
    if positional.len() != want {
        return Err(format!(
            "{verb} takes {want} argument{} ({} given)",
            if want == 1 { "" } else { "s" },
            positional.len()
        ));
    }
    if import {
        o.source = positional[0].clone();
        o.bundle = positional[1].clone().into();
    }
    Ok(Parsed {
        options: o,
        positional,
    })
}

fn run(verb: &str, p: Parsed) -> Result<(), Error> {
    let o = p.options;
    match verb {
        "import" => {
            let s = super::import(&o)?;
            let bundle = std::path::absolute(&o.bundle).unwrap_or(o.bundle.clone());
            let copied = match s.copied {
                0 => String::new(),
                n => format!(" copied={n}"),
            };
            println!(
                "OK bundle={} digest={} layers={} extracted={} bytes={}{copied}",
                bundle.display(),
                s.digest,
                s.layers,
                s.extracted,
                s.bytes
            );
            Ok(())
        }
        "images" => {
            let store = Store::open(&o.store)?;
            let named = store.named()?;
            for n in &named {
                let (mut own, mut shared) = (0, 0);
                for l in &n.layers {
                    let size = store.layer_size(l);
                    let others = named
                        .iter()
                        .any(|m| m.name != n.name && m.layers.contains(l));
                    match others {
                        true => shared += size,
                        false => own += size,
                    }
                }
                println!(
                    "name={} digest={} size={own} shared={shared} layers={}",
                    n.name,
                    n.digest,
                    n.layers.len()
                );
            }
            Ok(())
        }
        _ => {
            let store = Store::open(&o.store)?;
            if verb == "image-rm" {
                store.unname(&p.positional[0])?;
            }
            store.exclusive()?;
            let (layers, bytes) = store.gc()?;
            println!("OK freed layers={layers} bytes={bytes}");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(w: &[&str]) -> Vec<String> {
        w.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_import() {
        let p = parse(
            "import",
            &words(&[
                "--platform=linux/arm64",
                "--name",
                "web",
                "--env",
                "A=1",
                "src",
                "dst",
                "--",
                "sh",
                "-c",
                "x",
            ]),
        )
        .unwrap();
        assert_eq!(p.options.source, "src");
        assert_eq!(p.options.name.as_deref(), Some("web"));
        assert_eq!(p.options.platform.unwrap().arch, "arm64");
        assert_eq!(p.options.overrides.env, ["A=1"]);
        assert_eq!(p.options.overrides.args.unwrap(), ["sh", "-c", "x"]);
        assert!(parse("import", &words(&["a"])).is_err());
        assert!(parse("import", &words(&["--bogus", "a", "b"])).is_err());
        assert!(parse("import", &words(&["--env", "novalue", "a", "b"])).is_err());
        assert!(parse("images", &words(&["--name", "x"])).is_err());
        assert!(parse("image-rm", &words(&["x"])).is_ok());
    }
}
