//! A sandbox's resolution files: `hosts`, `resolv.conf` and `resolv.conf.hash` (libnetwork's
//! `sandbox_dns_unix.go`, §29 of the reference).
//!
//! - **hosts**: host-network sandboxes without extra hosts get a copy of the host's file;
//!   others get the default lines, their hostname-less header and extra hosts, then one line
//!   per address of each joined endpoint (`<ip> <hostname.domain> <hostname>`) and one per
//!   peer endpoint on the same networks (`<ip> <name> <aliases...>`). Those dynamic lines are
//!   kept in sync as a set ([`ResolutionFiles::sync_hosts`]), written in place (the file is
//!   bind-mounted into running containers). A sandbox given an origin hosts path gets no
//!   dynamic lines, as in libnetwork.
//! - **resolv.conf**: host-network sandboxes without DNS overrides get a copy of the host's
//!   file. Others get the host's file with loopback nameservers removed (IPv6 ones kept until a
//!   join says the network has no IPv6), each override (servers, search, options) replacing
//!   the host's value. On each join the file is filtered again for the network's IPv6 unless
//!   the user edited it (its hash differs from `resolv.conf.hash`) or it has overrides. When
//!   the embedded DNS server starts, the file is rewritten to point at `127.0.0.11` with
//!   `ndots:0` (unless the user set ndots) and is not touched again.

use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use libnetwork_etchosts::{BuildOptions, DEFAULT_LINES, Hosts, HostsFile, Record, WriteMode};
use libnetwork_resolvconf::{
    self as resolvconf, ContainerDns, Nameserver, ResolvConf, SYSTEMD_RESOLVED_PATH,
};
use tracing::{debug, warn};

use crate::config::Config;
use crate::controller::lock;
use crate::error::{Error, Result};
use crate::records::{ExtDnsEntry, SandboxOptionsRecord};

/// The embedded DNS server's address.
pub(crate) const RESOLVER_IP: IpAddr = IpAddr::V4(libnetwork_resolver::RESOLVER_IP);

/// The host's upstream servers: the IPv4 nameservers of its resolv.conf (or of
/// systemd-resolved's upstream file when the host file only points at the local stub).
pub(crate) fn host_upstreams(host_resolv_conf: &Path) -> Vec<IpAddr> {
    match resolvconf::read_host(host_resolv_conf, Path::new(SYSTEMD_RESOLVED_PATH)) {
        Ok(file) => file
            .parse()
            .nameservers()
            .filter(|n| !n.is_ipv6())
            .map(Nameserver::addr)
            .collect(),
        Err(e) => {
            warn!(path = %host_resolv_conf.display(), error = %e, "host resolv.conf not read; no upstream dns servers");
            Vec::new()
        }
    }
}

/// The external DNS servers recorded in a sandbox checkpoint.
pub(crate) fn ext_dns_entries(servers: &[IpAddr]) -> Vec<ExtDnsEntry> {
    servers
        .iter()
        .map(|ip| ExtDnsEntry {
            ip: ip.to_string(),
            host_loopback: ip.is_loopback(),
        })
        .collect()
}

/// The state of a sandbox's resolv.conf.
#[derive(Debug)]
struct ResolvState {
    /// Whether joins may rewrite it (not a host-network copy, no overrides).
    managed: bool,
    /// The hash of the content last written.
    hash: Option<String>,
    /// The embedded DNS server was set up: the file is no longer touched.
    resolver_on: bool,
    /// The user set `ndots` in the options.
    ndots_set: bool,
}

/// A sandbox's resolution files.
#[derive(Debug)]
pub(crate) struct ResolutionFiles {
    pub(crate) hosts_path: PathBuf,
    pub(crate) resolv_path: PathBuf,
    hash_path: PathBuf,
    /// The directory made for the files (removed with the sandbox), if they live in it.
    pub(crate) dir: PathBuf,
    /// The hosts file, as far as its dynamic lines go. Its lock is held for a whole update.
    hosts: Mutex<HostsState>,
    resolv: Mutex<ResolvState>,
}

/// A sandbox's hosts file, as far as its dynamic lines go.
#[derive(Debug)]
enum HostsState {
    /// The lines are not managed (a host-network copy, or an origin hosts path is set).
    Unmanaged,
    /// Managed, not read yet: a restored sandbox's file (one line per peer, thousands on big
    /// networks) is read at its first use rather than while the controller starts.
    Unread {
        /// The extra hosts lines, which are not dynamic.
        extra: Vec<Record>,
    },
    /// Managed and open.
    Open(Box<OpenHosts>),
}

/// A managed hosts file, open.
#[derive(Debug)]
struct OpenHosts {
    file: Hosts,
    /// The dynamic lines currently in the file.
    records: Vec<Record>,
}

fn has_overrides(opts: &SandboxOptionsRecord) -> bool {
    !opts.dns.is_empty() || !opts.dns_search.is_empty() || !opts.dns_options.is_empty()
}

fn dns_settings(opts: &SandboxOptionsRecord, ipv6: bool) -> ContainerDns {
    ContainerDns {
        ipv6,
        nameservers: (!opts.dns.is_empty())
            .then(|| opts.dns.iter().copied().map(Nameserver::new).collect()),
        search: (!opts.dns_search.is_empty()).then(|| opts.dns_search.clone()),
        options: (!opts.dns_options.is_empty()).then(|| opts.dns_options.clone()),
        ..ContainerDns::default()
    }
}

/// The dynamic lines of a hosts file: every record that is neither a default line nor an
/// extra host.
fn dynamic_records(file: &Hosts, extra: &[Record]) -> Vec<Record> {
    let model = HostsFile::parse(&file.content());
    let mut out = Vec::new();
    for (ip, names) in model.records() {
        let defaults = DEFAULT_LINES.iter().any(|l| {
            let mut f = l.split_whitespace();
            f.next() == Some(ip) && f.eq(names.iter().copied())
        });
        let Ok(ip) = ip.parse::<IpAddr>() else {
            continue;
        };
        let Ok(record) = Record::new(ip, names.iter().copied()) else {
            continue;
        };
        if !defaults && !extra.contains(&record) {
            out.push(record);
        }
    }
    out
}

/// Reads a file that may be missing (empty then).
fn read_or_empty(path: &Path, op: &str) -> Result<String> {
    match fs::read(path) {
        Ok(bytes) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(Error::io(format!("{op}: read {}", path.display()))(e)),
    }
}

fn extra_records(opts: &SandboxOptionsRecord, op: &str) -> Result<Vec<Record>> {
    opts.extra_hosts
        .iter()
        .map(|(name, ip)| Record::new(*ip, [name.clone()]).map_err(Error::hosts(op)))
        .collect()
}

impl ResolutionFiles {
    /// Writes a new sandbox's files (filling in the default paths in `opts`) and returns them
    /// with the sandbox's external DNS servers. Blocking.
    pub(crate) fn create(
        config: &Config,
        upstreams: &[IpAddr],
        sbid: &str,
        opts: &mut SandboxOptionsRecord,
    ) -> Result<(Self, Vec<IpAddr>)> {
        let op = "create sandbox files";
        let dir = config.files_dir().join(sbid);
        fs::create_dir_all(&dir).map_err(Error::io(format!("{op}: create {}", dir.display())))?;
        if opts.hosts_path.as_os_str().is_empty() {
            opts.hosts_path = dir.join("hosts");
        }
        if opts.resolv_conf_path.as_os_str().is_empty() {
            opts.resolv_conf_path = dir.join("resolv.conf");
        }
        let result = Self::write_new(config, upstreams, dir.clone(), opts);
        if result.is_err()
            && let Err(e) = fs::remove_dir_all(&dir)
        {
            warn!(dir = %dir.display(), error = %e, "sandbox files not removed after a failure");
        }
        result
    }

    fn write_new(
        config: &Config,
        upstreams: &[IpAddr],
        dir: PathBuf,
        opts: &SandboxOptionsRecord,
    ) -> Result<(Self, Vec<IpAddr>)> {
        let op = "create sandbox files";
        let hosts_path = opts.hosts_path.clone();
        let resolv_path = opts.resolv_conf_path.clone();
        let hash_path = hash_path_of(&resolv_path);

        // hosts
        let hosts = if opts.use_default_sandbox && opts.extra_hosts.is_empty() {
            let origin = opts
                .origin_hosts_path
                .as_deref()
                .unwrap_or(&config.host_hosts);
            let content = read_or_empty(origin, op)?;
            write_plain(&hosts_path, content.as_bytes())
                .map_err(Error::io(format!("{op}: copy the hosts file")))?;
            HostsState::Unmanaged
        } else {
            let build = BuildOptions {
                ip: None,
                hostname: opts.hostname.clone(),
                domainname: opts.domainname.clone(),
                extra: extra_records(opts, op)?,
            };
            let hosts = Hosts::build(&hosts_path, &build, WriteMode::InPlace).map_err(
                Error::hosts(format!("{op}: write {}", hosts_path.display())),
            )?;
            if opts.origin_hosts_path.is_none() {
                HostsState::Open(Box::new(OpenHosts {
                    file: hosts,
                    records: Vec::new(),
                }))
            } else {
                HostsState::Unmanaged
            }
        };

        // resolv.conf
        let overrides = has_overrides(opts);
        let host_file = match &opts.origin_resolv_conf_path {
            Some(origin) => read_or_empty(origin, op)?,
            None => {
                let path = resolvconf::host_path(
                    &config.host_resolv_conf,
                    Path::new(SYSTEMD_RESOLVED_PATH),
                );
                read_or_empty(&path, op)?
            }
        };
        let (managed, hash, ext) = if opts.use_default_sandbox && !overrides {
            write_plain(&resolv_path, host_file.as_bytes())
                .map_err(Error::io(format!("{op}: copy resolv.conf")))?;
            (false, None, upstreams.to_vec())
        } else {
            // IPv6 servers are kept until a join tells whether the network has IPv6.
            let conf = resolvconf::container_conf(
                &ResolvConf::parse(&host_file),
                &dns_settings(opts, true),
            )
            .map_err(Error::resolv(format!("{op}: build resolv.conf")))?;
            let ext: Vec<IpAddr> = if opts.dns.is_empty() {
                upstreams.to_vec()
            } else {
                conf.nameservers()
                    .filter(|n| !n.is_ipv6())
                    .map(Nameserver::addr)
                    .collect()
            };
            let hash = write_plain(&resolv_path, conf.render().as_bytes())
                .map_err(Error::io(format!("{op}: write resolv.conf")))?;
            fs::write(&hash_path, &hash)
                .map_err(Error::io(format!("{op}: write {}", hash_path.display())))?;
            (!overrides, Some(hash), ext)
        };
        debug!(hosts = %hosts_path.display(), resolv_conf = %resolv_path.display(), managed, "sandbox files written");
        Ok((
            Self {
                hosts_path,
                resolv_path,
                hash_path,
                dir,
                hosts: Mutex::new(hosts),
                resolv: Mutex::new(ResolvState {
                    managed,
                    hash,
                    resolver_on: false,
                    ndots_set: false,
                }),
            },
            ext,
        ))
    }

    /// Opens the files of a restored sandbox; files that are gone are written again.
    /// Blocking.
    pub(crate) fn open(config: &Config, sbid: &str, opts: &SandboxOptionsRecord) -> Result<Self> {
        let op = "open sandbox files";
        let dir = config.files_dir().join(sbid);
        let hosts_path = opts.hosts_path.clone();
        let resolv_path = opts.resolv_conf_path.clone();
        if !hosts_path.exists() || !resolv_path.exists() {
            fs::create_dir_all(&dir)
                .map_err(Error::io(format!("{op}: create {}", dir.display())))?;
            return Ok(Self::write_new(config, &[], dir, opts)?.0);
        }
        let hash_path = hash_path_of(&resolv_path);
        let hosts = if opts.use_default_sandbox && opts.extra_hosts.is_empty()
            || opts.origin_hosts_path.is_some()
        {
            HostsState::Unmanaged
        } else {
            HostsState::Unread {
                extra: extra_records(opts, op)?,
            }
        };
        let content = read_or_empty(&resolv_path, op)?;
        let conf = ResolvConf::parse(&content);
        let resolver_on = conf.nameservers().next().map(Nameserver::addr) == Some(RESOLVER_IP);
        let hash = fs::read_to_string(&hash_path).ok();
        let managed = !opts.use_default_sandbox && !has_overrides(opts);
        Ok(Self {
            hosts_path,
            resolv_path,
            hash_path,
            dir,
            hosts: Mutex::new(hosts),
            resolv: Mutex::new(ResolvState {
                managed,
                hash,
                resolver_on,
                ndots_set: conf.ndots().ok().flatten().is_some() && resolver_on,
            }),
        })
    }

    /// Makes the dynamic lines of the hosts file exactly what `desired` gives; `desired` is
    /// called with the file's lock held, so that concurrent updates apply in order. Blocking.
    pub(crate) fn sync_hosts(&self, desired: impl FnOnce() -> Vec<Record>) -> Result<()> {
        let mut state = lock(&self.hosts);
        let Some((hosts, current)) = self.open_hosts(&mut state)? else {
            return Ok(());
        };
        let op = format!("update {}", self.hosts_path.display());
        let desired = desired();
        let desired = desired.as_slice();
        let to_remove = multiset_minus(current, desired);
        let mut to_add = multiset_minus(desired, current);
        if to_remove.is_empty() && to_add.is_empty() {
            return Ok(());
        }
        if !to_remove.is_empty() {
            hosts.delete(&to_remove).map_err(Error::hosts(&op))?;
            // A delete removes every line with the same names: put back the ones that stay.
            let kept = multiset_minus(current, &to_remove);
            to_add.extend(
                kept.into_iter()
                    .filter(|k| to_remove.iter().any(|r| r.names() == k.names())),
            );
        }
        hosts.add(&to_add).map_err(Error::hosts(&op))?;
        *current = desired.to_vec();
        Ok(())
    }

    /// The hosts file's current content (managed files only).
    pub(crate) fn hosts_content(&self) -> Option<String> {
        let mut state = lock(&self.hosts);
        match self.open_hosts(&mut state) {
            Ok(open) => open.map(|(hosts, _)| hosts.content()),
            Err(e) => {
                warn!(error = %e, "hosts file not read");
                None
            }
        }
    }

    /// The managed hosts file and its dynamic lines, read first if it was not yet; `None`
    /// when the lines are not managed. Blocking.
    fn open_hosts<'a>(
        &self,
        state: &'a mut HostsState,
    ) -> Result<Option<(&'a Hosts, &'a mut Vec<Record>)>> {
        if let HostsState::Unread { extra } = state {
            let op = format!("open {}", self.hosts_path.display());
            let file =
                Hosts::open(&self.hosts_path, WriteMode::InPlace).map_err(Error::hosts(&op))?;
            let records = dynamic_records(&file, extra);
            *state = HostsState::Open(Box::new(OpenHosts { file, records }));
        }
        Ok(match state {
            HostsState::Open(open) => Some((&open.file, &mut open.records)),
            HostsState::Unmanaged | HostsState::Unread { .. } => None,
        })
    }

    /// Filters the nameservers again for a network's IPv6 at join (libnetwork's `updateDNS`),
    /// unless the file is not managed, the embedded server owns it, or the user edited it.
    /// Blocking.
    pub(crate) fn update_for_join(&self, ipv6: bool) -> Result<()> {
        let mut state = lock(&self.resolv);
        let (true, false, Some(expected)) = (state.managed, state.resolver_on, state.hash.clone())
        else {
            return Ok(());
        };
        let op = format!("update {}", self.resolv_path.display());
        let current = resolvconf::read(&self.resolv_path).map_err(Error::resolv(&op))?;
        if current.hash != expected {
            debug!(path = %self.resolv_path.display(), "resolv.conf edited by the user, left alone");
            return Ok(());
        }
        let mut conf = current.parse();
        resolvconf::filter_nameservers(
            &mut conf,
            &ContainerDns {
                ipv6,
                ..ContainerDns::default()
            },
        );
        let content = conf.render();
        if content == current.content {
            return Ok(());
        }
        // The hash was checked just above; an edit landing in between is lost, as with
        // libnetwork's (and `write_if_unmodified`'s) check-then-write.
        let hash = write_plain(&self.resolv_path, content.as_bytes()).map_err(Error::io(&op))?;
        fs::write(&self.hash_path, &hash).map_err(Error::io(&op))?;
        state.hash = Some(hash);
        Ok(())
    }

    /// Points the file at the embedded DNS server (libnetwork's `rebuildDNS`); returns whether
    /// the user set `ndots`. Blocking.
    pub(crate) fn point_at_resolver(&self) -> Result<bool> {
        let mut state = lock(&self.resolv);
        if state.resolver_on {
            return Ok(state.ndots_set);
        }
        let op = format!(
            "point {} at the embedded dns server",
            self.resolv_path.display()
        );
        let content = read_or_empty(&self.resolv_path, &op)?;
        let (conf, ndots_set) =
            resolvconf::embedded_resolver_conf(&ResolvConf::parse(&content), RESOLVER_IP)
                .map_err(Error::resolv(&op))?;
        let hash =
            write_plain(&self.resolv_path, conf.render().as_bytes()).map_err(Error::io(&op))?;
        fs::write(&self.hash_path, &hash).map_err(Error::io(&op))?;
        state.hash = Some(hash);
        state.resolver_on = true;
        state.ndots_set = ndots_set;
        Ok(ndots_set)
    }

    /// Whether the file points at the embedded DNS server.
    pub(crate) fn resolver_on(&self) -> bool {
        lock(&self.resolv).resolver_on
    }

    /// Removes the files' directory (best effort). Blocking.
    pub(crate) fn remove(&self) -> Result<()> {
        match fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(format!("remove {}", self.dir.display()))(e)),
        }
    }
}

/// Writes `content` to `path` in place (creating it with mode 0644 if missing; the inode is
/// kept, so a bind mount of the file sees the change) and returns its resolv.conf hash.
///
/// No `fsync`, as libnetwork writes these files: they are derived state. A crash may lose or
/// tear the last write; a restart rewrites missing files, and a stored object that refers to
/// a file is written after it (on ext4 the store's commit also flushes the file's data first).
fn write_plain(path: &Path, content: &[u8]) -> std::io::Result<String> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .open(path)?;
    file.write_all(content)?;
    file.set_len(content.len() as u64)?;
    Ok(resolvconf::hash(content))
}

fn hash_path_of(resolv_path: &Path) -> PathBuf {
    let mut p = resolv_path.as_os_str().to_owned();
    p.push(".hash");
    PathBuf::from(p)
}

/// `a` minus `b`, counting duplicates.
fn multiset_minus(a: &[Record], b: &[Record]) -> Vec<Record> {
    let mut rest: Vec<&Record> = b.iter().collect();
    let mut out = Vec::new();
    for r in a {
        if let Some(i) = rest.iter().position(|x| *x == r) {
            rest.swap_remove(i);
        } else {
            out.push(r.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(ip: &str, names: &[&str]) -> Record {
        Record::new(ip.parse().unwrap(), names.iter().copied()).unwrap()
    }

    fn config(dir: &Path, host_resolv: &str) -> Config {
        let resolv = dir.join("host-resolv.conf");
        fs::write(&resolv, host_resolv).unwrap();
        let hosts = dir.join("host-hosts");
        fs::write(&hosts, "127.0.0.1 localhost\n10.9.9.9 hosty\n").unwrap();
        Config {
            host_resolv_conf: resolv,
            host_hosts: hosts,
            ..Config::new(dir.join("data"), dir.join("run"))
        }
    }

    fn options(hostname: &str) -> SandboxOptionsRecord {
        SandboxOptionsRecord {
            hostname: hostname.into(),
            domainname: "example.com".into(),
            ..SandboxOptionsRecord::default()
        }
    }

    #[test]
    fn a_new_sandbox_gets_default_hosts_lines_and_filtered_nameservers() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = config(
            tmp.path(),
            "search corp\nnameserver 127.0.0.53\nnameserver 10.0.0.2\nnameserver 2001:db8::1\n",
        );
        let upstreams = host_upstreams(&cfg.host_resolv_conf);
        assert_eq!(
            upstreams,
            vec![
                "127.0.0.53".parse::<IpAddr>().unwrap(),
                "10.0.0.2".parse().unwrap()
            ]
        );
        let mut opts = options("web");
        opts.extra_hosts = vec![("db".into(), "10.1.1.1".parse().unwrap())];
        let (files, ext) = ResolutionFiles::create(&cfg, &upstreams, "sb1", &mut opts).unwrap();
        assert_eq!(ext, upstreams);
        assert_eq!(opts.hosts_path, cfg.files_dir().join("sb1/hosts"));
        let hosts = fs::read_to_string(&opts.hosts_path).unwrap();
        assert!(hosts.starts_with("127.0.0.1\tlocalhost\n"), "{hosts}");
        assert!(hosts.ends_with("10.1.1.1\tdb\n"), "{hosts}");
        let resolv = fs::read_to_string(&opts.resolv_conf_path).unwrap();
        assert_eq!(
            resolv,
            "search corp\nnameserver 10.0.0.2\nnameserver 2001:db8::1\n"
        );
        let hash = fs::read_to_string(cfg.files_dir().join("sb1/resolv.conf.hash")).unwrap();
        assert_eq!(hash, resolvconf::hash(resolv.as_bytes()));

        // A join on a network without IPv6 drops the IPv6 server.
        files.update_for_join(false).unwrap();
        let resolv = fs::read_to_string(&opts.resolv_conf_path).unwrap();
        assert_eq!(resolv, "search corp\nnameserver 10.0.0.2\n");

        // The embedded server takes over: 127.0.0.11 and ndots:0; later joins change nothing.
        assert!(!files.point_at_resolver().unwrap());
        let resolv = fs::read_to_string(&opts.resolv_conf_path).unwrap();
        assert_eq!(
            resolv,
            "search corp\nnameserver 127.0.0.11\noptions ndots:0\n"
        );
        files.update_for_join(true).unwrap();
        assert_eq!(fs::read_to_string(&opts.resolv_conf_path).unwrap(), resolv);
        files.remove().unwrap();
        assert!(!cfg.files_dir().join("sb1").exists());
    }

    #[test]
    fn a_user_edited_resolv_conf_is_left_alone_at_join() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = config(tmp.path(), "nameserver 10.0.0.2\nnameserver 2001:db8::1\n");
        let mut opts = options("web");
        let (files, _) = ResolutionFiles::create(&cfg, &[], "sb2", &mut opts).unwrap();
        fs::write(&opts.resolv_conf_path, "nameserver 2001:db8::9\n").unwrap();
        files.update_for_join(false).unwrap();
        assert_eq!(
            fs::read_to_string(&opts.resolv_conf_path).unwrap(),
            "nameserver 2001:db8::9\n"
        );
    }

    #[test]
    fn dns_overrides_replace_the_hosts_values_and_are_the_external_servers() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = config(
            tmp.path(),
            "search corp\nnameserver 10.0.0.2\noptions rotate\n",
        );
        let mut opts = options("web");
        opts.dns = vec!["192.0.2.1".parse().unwrap()];
        opts.dns_search = vec!["example.org".into()];
        let (files, ext) = ResolutionFiles::create(&cfg, &[], "sb3", &mut opts).unwrap();
        assert_eq!(ext, vec!["192.0.2.1".parse::<IpAddr>().unwrap()]);
        let resolv = fs::read_to_string(&opts.resolv_conf_path).unwrap();
        assert_eq!(
            resolv,
            "search example.org\nnameserver 192.0.2.1\noptions rotate\n"
        );
        // Overrides are never refiltered.
        files.update_for_join(false).unwrap();
        assert_eq!(fs::read_to_string(&opts.resolv_conf_path).unwrap(), resolv);
    }

    #[test]
    fn host_network_sandboxes_get_copies_of_the_host_files() {
        let tmp = tempfile::tempdir().unwrap();
        let host_resolv = "nameserver 127.0.0.53\n";
        let cfg = config(tmp.path(), host_resolv);
        let mut opts = options("web");
        opts.use_default_sandbox = true;
        let (files, _) = ResolutionFiles::create(&cfg, &[], "sb4", &mut opts).unwrap();
        assert_eq!(
            fs::read_to_string(&opts.resolv_conf_path).unwrap(),
            host_resolv
        );
        assert_eq!(
            fs::read_to_string(&opts.hosts_path).unwrap(),
            "127.0.0.1 localhost\n10.9.9.9 hosty\n"
        );
        // Nothing is managed: syncing records does nothing.
        files
            .sync_hosts(|| vec![record("10.0.0.5", &["peer"])])
            .unwrap();
        assert!(files.hosts_content().is_none());
    }

    #[test]
    fn dynamic_hosts_lines_follow_the_desired_set() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = config(tmp.path(), "nameserver 10.0.0.2\n");
        let mut opts = options("web");
        let (files, _) = ResolutionFiles::create(&cfg, &[], "sb5", &mut opts).unwrap();
        let own = record("172.18.0.2", &["web.example.com", "web"]);
        let peer_a = record("172.18.0.3", &["db"]);
        let peer_b = record("172.19.0.3", &["db"]);
        files
            .sync_hosts(|| vec![own.clone(), peer_a.clone(), peer_b.clone()])
            .unwrap();
        let content = fs::read_to_string(&opts.hosts_path).unwrap();
        assert!(content.contains("172.18.0.3\tdb\n") && content.contains("172.19.0.3\tdb\n"));
        // Removing one of two lines with the same names keeps the other.
        files
            .sync_hosts(|| vec![own.clone(), peer_b.clone()])
            .unwrap();
        let content = fs::read_to_string(&opts.hosts_path).unwrap();
        assert!(!content.contains("172.18.0.3"), "{content}");
        assert!(content.contains("172.19.0.3\tdb\n"), "{content}");
        assert!(
            content.contains("172.18.0.2\tweb.example.com web\n"),
            "{content}"
        );

        // A reopened file finds its dynamic lines again.
        let reopened = ResolutionFiles::open(&cfg, "sb5", &opts).unwrap();
        reopened.sync_hosts(Vec::new).unwrap();
        let content = fs::read_to_string(&opts.hosts_path).unwrap();
        assert!(!content.contains("172."), "{content}");
        assert!(content.starts_with("127.0.0.1\tlocalhost\n"));
    }
}
