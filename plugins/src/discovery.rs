//! [`Discovery`]: finding plugins by name in the plugin directories (Docker's v1 plugin
//! registry, `pkg/plugins/discovery.go`).
//!
//! A plugin named `NAME` is, in this order:
//! 1. a unix socket `NAME.sock` or `NAME/NAME.sock` in a socket directory (Docker:
//!    `/run/docker/plugins`);
//! 2. a spec file in a spec directory (Docker: `/etc/docker/plugins`, then
//!    `/usr/lib/docker/plugins`), per directory `NAME.spec`, `NAME/NAME.spec`, `NAME.json`,
//!    `NAME/NAME.json`. A `.spec` file holds an address (`unix:///path`, `tcp://host:port`); a
//!    `.json` file holds `{"Name": .., "Addr": .., "TLSConfig": ..}`.
//!
//! The look-ups are a few `stat` calls and small reads, done synchronously; async callers use
//! [`crate::Plugins`], which runs them on the blocking pool.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use crate::{Error, PluginAddr};

/// Docker's directory of plugin sockets.
pub const DEFAULT_SOCKET_DIR: &str = "/run/docker/plugins";

/// Docker's directories of plugin spec files, in search order.
pub const DEFAULT_SPEC_DIRS: [&str; 2] = ["/etc/docker/plugins", "/usr/lib/docker/plugins"];

/// A plugin found in the plugin directories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginSpec {
    /// The plugin's name (the file name without its extension).
    pub name: String,
    /// Where it listens.
    pub addr: PluginAddr,
    /// The socket or spec file it was found by.
    pub source: PathBuf,
}

/// The directories plugins are looked for in. The default is Docker's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    socket_dirs: Vec<PathBuf>,
    spec_dirs: Vec<PathBuf>,
}

impl Default for Discovery {
    fn default() -> Self {
        Self::new(
            [DEFAULT_SOCKET_DIR],
            DEFAULT_SPEC_DIRS.iter().map(PathBuf::from),
        )
    }
}

/// The `.json` spec format.
#[derive(Deserialize)]
struct JsonSpec {
    #[serde(rename = "Addr", default)]
    addr: Option<String>,
    #[serde(rename = "TLSConfig", default)]
    tls_config: Option<serde_json::Value>,
}

impl Discovery {
    /// Looks for sockets in `socket_dirs` and for spec files in `spec_dirs`, each in the order
    /// given.
    pub fn new(
        socket_dirs: impl IntoIterator<Item = impl Into<PathBuf>>,
        spec_dirs: impl IntoIterator<Item = impl Into<PathBuf>>,
    ) -> Self {
        Self {
            socket_dirs: socket_dirs.into_iter().map(Into::into).collect(),
            spec_dirs: spec_dirs.into_iter().map(Into::into).collect(),
        }
    }

    /// The socket directories.
    pub fn socket_dirs(&self) -> &[PathBuf] {
        &self.socket_dirs
    }

    /// The spec directories.
    pub fn spec_dirs(&self) -> &[PathBuf] {
        &self.spec_dirs
    }

    /// Finds the plugin `name`: the first socket, then the first spec file (see the module
    /// doc for the order).
    ///
    /// # Errors
    /// [`Error::InvalidName`] for a name that is empty or a path, [`Error::NotFound`] when
    /// nothing matches, [`Error::InvalidSpec`] when the first matching spec file is unreadable
    /// or holds no usable address.
    pub fn find(&self, name: &str) -> Result<PluginSpec, Error> {
        check_name(name)?;

        for dir in &self.socket_dirs {
            for path in candidates(dir, name, "sock") {
                if is_socket(&path) {
                    return Ok(PluginSpec {
                        name: name.to_owned(),
                        addr: PluginAddr::Unix(path.clone()),
                        source: path,
                    });
                }
            }
        }

        for dir in &self.spec_dirs {
            let paths = candidates(dir, name, "spec")
                .into_iter()
                .chain(candidates(dir, name, "json"));
            for path in paths {
                // Like Docker, a candidate counts as soon as something exists at its path.
                if fs::metadata(&path).is_err() {
                    continue;
                }
                let addr = read_spec(&path)?;
                return Ok(PluginSpec {
                    name: name.to_owned(),
                    addr,
                    source: path,
                });
            }
        }

        let searched: Vec<String> = self
            .socket_dirs
            .iter()
            .chain(&self.spec_dirs)
            .map(|d| d.display().to_string())
            .collect();
        Err(Error::NotFound {
            name: name.to_owned(),
            searched: searched.join(", "),
        })
    }

    /// The names of every plugin in the directories: sockets `NAME.sock` and spec files
    /// `NAME.spec`/`NAME.json`, also one level down as `NAME/NAME.<ext>`. Sorted, without
    /// duplicates; missing directories are skipped. Spec files are not read here.
    ///
    /// # Errors
    /// [`Error::Scan`] when a directory exists but cannot be listed.
    pub fn scan(&self) -> Result<Vec<String>, Error> {
        let mut names = BTreeSet::new();
        for dir in &self.socket_dirs {
            scan_dir(dir, &["sock"], &mut names)?;
        }
        for dir in &self.spec_dirs {
            scan_dir(dir, &["spec", "json"], &mut names)?;
        }
        Ok(names.into_iter().collect())
    }
}

/// Refuses names that would escape the plugin directories or name nothing.
fn check_name(name: &str) -> Result<(), Error> {
    let reason = if name.is_empty() {
        Some("empty")
    } else if name.contains('/') || name.contains('\0') {
        Some("contains '/' or NUL")
    } else if name == "." || name == ".." {
        Some("'.' and '..' are not names")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::InvalidName {
            name: name.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// `dir/name.ext` and `dir/name/name.ext`.
fn candidates(dir: &Path, name: &str, ext: &str) -> [PathBuf; 2] {
    let file = format!("{name}.{ext}");
    [dir.join(&file), dir.join(name).join(&file)]
}

/// Whether `path` is a unix socket (following symlinks).
fn is_socket(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.file_type().is_socket())
}

/// Reads the address of a `.spec` or `.json` spec file.
fn read_spec(path: &Path) -> Result<PluginAddr, Error> {
    let invalid = |reason: String| Error::InvalidSpec {
        path: path.to_path_buf(),
        reason,
    };
    let text = fs::read_to_string(path).map_err(|e| invalid(e.to_string()))?;
    let addr = if path.extension().is_some_and(|e| e == "json") {
        let spec: JsonSpec =
            serde_json::from_str(&text).map_err(|e| invalid(format!("invalid json: {e}")))?;
        if spec.tls_config.as_ref().is_some_and(|t| !t.is_null()) {
            return Err(invalid(
                "TLSConfig is given, but tls is not supported".into(),
            ));
        }
        spec.addr
            .filter(|a| !a.trim().is_empty())
            .ok_or_else(|| invalid("no Addr".into()))?
    } else {
        text
    };
    addr.parse().map_err(|e: Error| invalid(e.to_string()))
}

/// Adds the plugin names found in `dir` (flat `NAME.ext` entries, and `NAME/NAME.ext`).
fn scan_dir(dir: &Path, exts: &[&str], names: &mut BTreeSet<String>) -> Result<(), Error> {
    let scan_error = |source: io::Error| Error::Scan {
        path: dir.to_path_buf(),
        source: Arc::new(source),
    };
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(scan_error(e)),
    };
    for entry in entries {
        let entry = entry.map_err(scan_error)?;
        let path = entry.path();
        let Some(file_name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if path.is_dir() {
            for ext in exts {
                let inner = path.join(format!("{file_name}.{ext}"));
                if accept(&inner, ext) {
                    names.insert(file_name.to_owned());
                }
            }
            continue;
        }
        if let Some((stem, ext)) = file_name.rsplit_once('.')
            && exts.contains(&ext)
            && !stem.is_empty()
            && accept(&path, ext)
        {
            names.insert(stem.to_owned());
        }
    }
    Ok(())
}

/// Whether `path` is a plugin entry of extension `ext`: a socket for `sock`, anything
/// existing for spec files.
fn accept(path: &Path, ext: &str) -> bool {
    if ext == "sock" {
        is_socket(path)
    } else {
        fs::metadata(path).is_ok_and(|m| m.is_file())
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixListener;

    use libnetwork_types::ErrorKind;

    use super::*;

    /// A socket dir and two spec dirs in a temporary directory.
    struct Dirs {
        _tmp: tempfile::TempDir,
        sockets: PathBuf,
        etc: PathBuf,
        lib: PathBuf,
        /// Listeners keep nothing alive that matters, but hold the socket files' owners.
        _listeners: Vec<UnixListener>,
    }

    impl Dirs {
        fn new() -> Self {
            let tmp = tempfile::tempdir().unwrap();
            let sockets = tmp.path().join("run");
            let etc = tmp.path().join("etc");
            let lib = tmp.path().join("lib");
            for d in [&sockets, &etc, &lib] {
                fs::create_dir_all(d).unwrap();
            }
            Self {
                _tmp: tmp,
                sockets,
                etc,
                lib,
                _listeners: Vec::new(),
            }
        }

        fn discovery(&self) -> Discovery {
            Discovery::new([&self.sockets], [&self.etc, &self.lib])
        }

        fn socket(&mut self, rel: &str) -> PathBuf {
            let path = self.sockets.join(rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            self._listeners.push(UnixListener::bind(&path).unwrap());
            path
        }

        fn write(dir: &Path, rel: &str, text: &str) -> PathBuf {
            let path = dir.join(rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, text).unwrap();
            path
        }
    }

    #[test]
    fn defaults_are_dockers_directories() {
        let d = Discovery::default();
        assert_eq!(d.socket_dirs(), [PathBuf::from("/run/docker/plugins")]);
        assert_eq!(
            d.spec_dirs(),
            [
                PathBuf::from("/etc/docker/plugins"),
                PathBuf::from("/usr/lib/docker/plugins")
            ]
        );
    }

    #[test]
    fn a_socket_is_found_flat_or_in_its_own_directory() {
        let mut dirs = Dirs::new();
        let flat = dirs.socket("weave.sock");
        let nested = dirs.socket("calico/calico.sock");
        let d = dirs.discovery();
        let spec = d.find("weave").unwrap();
        assert_eq!(spec.addr, PluginAddr::Unix(flat.clone()));
        assert_eq!(spec.source, flat);
        assert_eq!(spec.name, "weave");
        assert_eq!(d.find("calico").unwrap().addr, PluginAddr::Unix(nested));
    }

    #[test]
    fn a_socket_wins_over_a_spec_file_of_the_same_name() {
        let mut dirs = Dirs::new();
        let sock = dirs.socket("both.sock");
        Dirs::write(&dirs.etc, "both.spec", "tcp://127.0.0.1:9999");
        assert_eq!(
            dirs.discovery().find("both").unwrap().addr,
            PluginAddr::Unix(sock)
        );
    }

    #[test]
    fn a_regular_file_named_like_a_socket_is_not_a_plugin() {
        let dirs = Dirs::new();
        Dirs::write(&dirs.sockets, "fake.sock", "not a socket");
        let err = dirs
            .discovery()
            .find("fake")
            .expect_err("regular file accepted");
        assert!(matches!(err, Error::NotFound { .. }), "{err}");
    }

    #[test]
    fn spec_files_are_read_in_dockers_order() {
        let dirs = Dirs::new();
        // In one directory .spec comes before .json; the first directory comes first.
        Dirs::write(&dirs.etc, "p.json", r#"{"Addr": "tcp://127.0.0.1:2"}"#);
        Dirs::write(&dirs.etc, "p/p.spec", "tcp://127.0.0.1:1\n");
        Dirs::write(&dirs.lib, "p.spec", "tcp://127.0.0.1:3");
        Dirs::write(&dirs.lib, "q.spec", "unix:///run/q.sock");
        Dirs::write(
            &dirs.lib,
            "r/r.json",
            r#"{"Name": "ignored", "Addr": "http://localhost:4"}"#,
        );
        let d = dirs.discovery();
        let p = d.find("p").unwrap();
        assert_eq!(
            p.addr,
            PluginAddr::Tcp {
                host: "127.0.0.1".into(),
                port: 1
            }
        );
        assert_eq!(p.source, dirs.etc.join("p/p.spec"));
        assert_eq!(
            d.find("q").unwrap().addr,
            PluginAddr::Unix("/run/q.sock".into())
        );
        let r = d.find("r").unwrap();
        assert_eq!(r.name, "r");
        assert_eq!(
            r.addr,
            PluginAddr::Tcp {
                host: "localhost".into(),
                port: 4
            }
        );
    }

    #[test]
    fn broken_spec_files_are_errors_naming_the_file() {
        let dirs = Dirs::new();
        let cases = [
            ("noproto.spec", "/run/x.sock", "unknown protocol"),
            ("badjson.json", "{not json", "invalid json"),
            ("noaddr.json", r#"{"Name": "noaddr"}"#, "no Addr"),
            (
                "tls.json",
                r#"{"Addr": "tcp://h:1", "TLSConfig": {"InsecureSkipVerify": true}}"#,
                "tls is not supported",
            ),
        ];
        for (file, text, reason) in cases {
            let path = Dirs::write(&dirs.etc, file, text);
            let name = file.split('.').next().unwrap();
            let err = dirs.discovery().find(name).expect_err(file);
            assert!(
                matches!(&err, Error::InvalidSpec { path: p, .. } if *p == path),
                "{err}"
            );
            assert!(err.to_string().contains(reason), "{file}: {err}");
        }
        // A null TLSConfig is no TLS config.
        Dirs::write(
            &dirs.etc,
            "nulltls.json",
            r#"{"Addr": "tcp://h:1", "TLSConfig": null}"#,
        );
        assert!(dirs.discovery().find("nulltls").is_ok());
    }

    #[test]
    fn unknown_and_malformed_names_are_refused() {
        let dirs = Dirs::new();
        let err = dirs.discovery().find("nothere").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert!(
            err.to_string().contains(&*dirs.etc.display().to_string()),
            "{err}"
        );
        for name in ["", "../etc", "a/b", ".", ".."] {
            let err = dirs.discovery().find(name).expect_err(name);
            assert!(matches!(err, Error::InvalidName { .. }), "{name:?}: {err}");
        }
    }

    #[test]
    fn scan_lists_every_plugin_once_in_name_order() {
        let mut dirs = Dirs::new();
        dirs.socket("weave.sock");
        dirs.socket("nested/nested.sock");
        Dirs::write(&dirs.sockets, "notasocket.sock", "");
        Dirs::write(&dirs.etc, "alpha.spec", "tcp://h:1");
        Dirs::write(&dirs.etc, "weave.spec", "tcp://h:1");
        Dirs::write(&dirs.lib, "beta.json", "{}");
        Dirs::write(&dirs.lib, "gamma/gamma.spec", "tcp://h:1");
        Dirs::write(&dirs.lib, "readme.txt", "");
        Dirs::write(&dirs.lib, "other/unrelated.spec", "");
        let names = dirs.discovery().scan().unwrap();
        assert_eq!(names, ["alpha", "beta", "gamma", "nested", "weave"]);
    }

    #[test]
    fn scan_skips_missing_directories() {
        let d = Discovery::new(["/nonexistent/run"], ["/nonexistent/etc"]);
        assert!(d.scan().unwrap().is_empty());
    }
}
