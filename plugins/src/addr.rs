//! [`PluginAddr`]: where a plugin listens, parsed from a spec file's text.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::Error;

/// Where a plugin listens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PluginAddr {
    /// A unix socket (`unix:///run/docker/plugins/weave.sock`, or a `.sock` file found in a
    /// socket directory).
    Unix(PathBuf),
    /// A TCP address (`tcp://127.0.0.1:8080` or `http://localhost:8080`), spoken to in plain
    /// HTTP.
    Tcp {
        /// The host name or address, without brackets for IPv6.
        host: String,
        /// The port.
        port: u16,
    },
}

impl PluginAddr {
    /// The `Host` header of requests: Docker's placeholder `plugin.moby.localhost` for unix
    /// sockets, `host:port` for TCP.
    pub fn http_host(&self) -> String {
        match self {
            Self::Unix(_) => crate::UNIX_HOST.to_owned(),
            Self::Tcp { host, port } => host_port(host, *port),
        }
    }
}

/// `host:port`, with brackets around an IPv6 host.
fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

impl fmt::Display for PluginAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unix(path) => write!(f, "unix://{}", path.display()),
            Self::Tcp { host, port } => write!(f, "tcp://{}", host_port(host, *port)),
        }
    }
}

impl FromStr for PluginAddr {
    type Err = Error;

    /// Parses a spec file's address (surrounding white space is ignored): `unix://PATH`,
    /// `tcp://HOST:PORT` or `http://HOST:PORT` (a trailing `/` is allowed). TLS (`https`,
    /// or a `.json` spec's `TLSConfig`) is not supported.
    fn from_str(text: &str) -> Result<Self, Error> {
        let addr = text.trim();
        let invalid = |reason: &str| Error::InvalidAddress {
            addr: addr.to_owned(),
            reason: reason.to_owned(),
        };
        let Some((scheme, rest)) = addr.split_once("://") else {
            return Err(invalid("unknown protocol: want unix://, tcp:// or http://"));
        };
        match scheme {
            "unix" => {
                if rest.is_empty() {
                    return Err(invalid("no socket path"));
                }
                Ok(Self::Unix(PathBuf::from(rest)))
            }
            "tcp" | "http" => {
                let authority = rest.strip_suffix('/').unwrap_or(rest);
                if authority.contains('/') {
                    return Err(invalid("a path after host:port is not supported"));
                }
                let (host, port) = authority
                    .rsplit_once(':')
                    .ok_or_else(|| invalid("want host:port"))?;
                let host = match host.strip_prefix('[') {
                    Some(inner) => inner
                        .strip_suffix(']')
                        .ok_or_else(|| invalid("unclosed '[' in host"))?,
                    None if host.contains(':') => {
                        return Err(invalid("an IPv6 host needs brackets: [addr]:port"));
                    }
                    None => host,
                };
                if host.is_empty() {
                    return Err(invalid("empty host"));
                }
                let port: u16 = port
                    .parse()
                    .map_err(|_| invalid("the port is not a number from 0 to 65535"))?;
                if port == 0 {
                    return Err(invalid("port 0"));
                }
                Ok(Self::Tcp {
                    host: host.to_owned(),
                    port,
                })
            }
            "https" => Err(invalid("tls is not supported")),
            _ => Err(invalid(
                "unsupported protocol: want unix://, tcp:// or http://",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<PluginAddr, Error> {
        s.parse()
    }

    #[test]
    fn unix_addresses_keep_their_path() {
        assert_eq!(
            parse("unix:///run/docker/plugins/weave.sock\n").unwrap(),
            PluginAddr::Unix("/run/docker/plugins/weave.sock".into())
        );
        let addr = parse("  unix:///tmp/a.sock ").unwrap();
        assert_eq!(addr.to_string(), "unix:///tmp/a.sock");
        assert_eq!(addr.http_host(), "plugin.moby.localhost");
    }

    #[test]
    fn tcp_and_http_addresses_need_host_and_port() {
        let tcp = parse("tcp://127.0.0.1:8080").unwrap();
        assert_eq!(
            tcp,
            PluginAddr::Tcp {
                host: "127.0.0.1".into(),
                port: 8080
            }
        );
        assert_eq!(tcp.http_host(), "127.0.0.1:8080");
        assert_eq!(
            parse("http://localhost:80/").unwrap().to_string(),
            "tcp://localhost:80"
        );
        let v6 = parse("tcp://[::1]:9000").unwrap();
        assert_eq!(
            v6,
            PluginAddr::Tcp {
                host: "::1".into(),
                port: 9000
            }
        );
        assert_eq!(v6.to_string(), "tcp://[::1]:9000");
        assert_eq!(v6.http_host(), "[::1]:9000");
    }

    #[test]
    fn unusable_addresses_are_refused_with_the_reason() {
        for (text, reason) in [
            ("/run/x.sock", "unknown protocol"),
            ("unix://", "no socket path"),
            ("tcp://localhost", "want host:port"),
            ("tcp://:80", "empty host"),
            ("tcp://host:99999", "not a number"),
            ("tcp://host:0", "port 0"),
            ("tcp://::1:80", "brackets"),
            ("tcp://host:80/prefix", "path"),
            ("https://host:443", "tls is not supported"),
            ("npipe:////./pipe/x", "unsupported protocol"),
        ] {
            let err = parse(text).expect_err(text);
            assert!(err.to_string().contains(reason), "{text}: {err}");
            assert_eq!(err.kind(), libnetwork_types::ErrorKind::BadRequest);
        }
    }
}
