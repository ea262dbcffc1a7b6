//! The command line: the daemon, the demo, and the client commands (`network`, `run`,
//! `sandbox`, `version`).

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use ipnet::IpNet;
use serde_json::Value;

use crate::client::{Client, ClientError, DEFAULT_SOCKET, escape, socket_path};
use crate::daemon::{
    DEFAULT_BRIDGE_NAME, DEFAULT_DATA_DIR, DEFAULT_RUN_DIR, DaemonOptions, LogFormat,
};
use crate::filters::Filters;
use crate::model::{
    EndpointIpamConfig, EndpointSettings, IpamConfig, IpamRequest, NetworkConnectRequest,
    NetworkCreateRequest, NetworkCreateResponse, NetworkDisconnectRequest, NetworkResource,
    PortSpec, SandboxCreateRequest, SandboxNetwork, SandboxResource, VersionResponse,
};

/// Prints a line on standard output; a closed pipe (`dnet network ls | head -1`) ends the
/// process quietly, as SIGPIPE ends other tools (exit code 141).
macro_rules! outln {
    ($($arg:tt)*) => {
        write_line(format_args!($($arg)*))
    };
}

/// The body of [`outln!`].
fn write_line(args: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let written = out.write_fmt(args).and_then(|()| out.write_all(b"\n"));
    match written {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(141),
        Err(e) => {
            eprintln!("dnet: write to standard output: {e}");
            std::process::exit(1);
        }
    }
}

/// dnet: libnetwork's daemon and command line.
#[derive(Debug, Parser)]
#[command(name = "dnet", version, about, propagate_version = true)]
pub struct Cli {
    /// The daemon's socket: a path or unix:///path.
    #[arg(short = 'H', long = "host", env = "DNET_HOST", default_value = DEFAULT_SOCKET, global = true)]
    pub host: String,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: the controller with its store, serving the API on the socket.
    Daemon(DaemonArgs),
    /// Run libnetwork's README flow on the real kernel, in private namespaces (needs root).
    Demo,
    /// Manage networks.
    #[command(subcommand)]
    Network(NetworkCommand),
    /// Run a command in a new sandbox joined to networks; the sandbox goes when it exits.
    Run(RunArgs),
    /// Manage sandboxes.
    #[command(subcommand)]
    Sandbox(SandboxCommand),
    /// Show the client's and the daemon's versions.
    Version,
}

/// `dnet daemon` options.
#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// Where the store and the sandboxes' files live.
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Where namespace files live (under netns/).
    #[arg(long, default_value = DEFAULT_RUN_DIR)]
    pub run_dir: PathBuf,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    /// Log filter (info, debug, or per target: dnet=debug,libnetwork=trace); DNET_LOG overrides.
    #[arg(long, default_value = "info")]
    pub log_level: String,
    /// Do not create the default `bridge` network.
    #[arg(long)]
    pub no_default_bridge: bool,
    /// The default network's bridge interface.
    #[arg(long, default_value = DEFAULT_BRIDGE_NAME)]
    pub bridge_name: String,
    /// Program no firewall rules (no NAT, isolation or published ports).
    #[arg(long)]
    pub no_iptables: bool,
    /// Reach published ports from the host itself through NAT only, without the in-process
    /// proxy.
    #[arg(long)]
    pub no_userland_proxy: bool,
    /// Test support: kill the daemon (SIGKILL) when the controller reaches this step.
    #[arg(long, hide = true)]
    pub kill_at_step: Option<String>,
}

/// `dnet network` commands.
#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Create a network; prints its id.
    Create(NetworkCreateArgs),
    /// List networks.
    #[command(alias = "list")]
    Ls(NetworkLsArgs),
    /// Show networks in detail (JSON).
    Inspect {
        /// Names or ids.
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Remove networks.
    #[command(alias = "remove")]
    Rm {
        /// Names or ids.
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Remove every network no sandbox uses (except bridge, host and none).
    Prune {
        /// Only networks with these labels: label=KEY, label=KEY=VALUE, label!=KEY.
        #[arg(long = "filter")]
        filters: Vec<String>,
    },
    /// Connect a sandbox to a network.
    Connect {
        /// The network.
        network: String,
        /// The sandbox (name or id).
        sandbox: String,
        /// More names on the network.
        #[arg(long = "alias")]
        aliases: Vec<String>,
        /// A static IPv4 address.
        #[arg(long)]
        ip: Option<String>,
    },
    /// Disconnect a sandbox from a network.
    Disconnect {
        /// The network.
        network: String,
        /// The sandbox (name or id).
        sandbox: String,
    },
}

/// `dnet network create` options.
#[derive(Debug, Args)]
pub struct NetworkCreateArgs {
    /// The network's name.
    pub name: String,
    /// The driver (bridge, host, null).
    #[arg(short, long, default_value = "bridge")]
    pub driver: String,
    /// A subnet in CIDR form (repeatable).
    #[arg(long)]
    pub subnet: Vec<String>,
    /// The range endpoint addresses come from, inside a subnet (repeatable).
    #[arg(long)]
    pub ip_range: Vec<String>,
    /// A gateway address, inside a subnet (repeatable).
    #[arg(long)]
    pub gateway: Vec<String>,
    /// A reserved address: NAME=IP (repeatable).
    #[arg(long = "aux-address")]
    pub aux_addresses: Vec<String>,
    /// The IPAM driver.
    #[arg(long, default_value = "default")]
    pub ipam_driver: String,
    /// Give the network IPv6 addresses.
    #[arg(long)]
    pub ipv6: bool,
    /// No traffic to or from outside the network.
    #[arg(long)]
    pub internal: bool,
    /// Let sandboxes attach manually.
    #[arg(long)]
    pub attachable: bool,
    /// A driver option: KEY=VALUE (repeatable).
    #[arg(short = 'o', long = "opt")]
    pub options: Vec<String>,
    /// A label: KEY=VALUE or KEY (repeatable).
    #[arg(long = "label")]
    pub labels: Vec<String>,
}

/// Output formats of lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Format {
    /// Aligned columns.
    #[default]
    Table,
    /// The API's JSON.
    Json,
}

/// `dnet network ls` options.
#[derive(Debug, Args)]
pub struct NetworkLsArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Only ids.
    #[arg(short, long)]
    pub quiet: bool,
    /// Whole ids.
    #[arg(long)]
    pub no_trunc: bool,
    /// Filters: name=, id=, driver=, label=, scope=, type=custom|builtin, dangling=true.
    #[arg(short, long = "filter")]
    pub filters: Vec<String>,
}

/// How a sandbox is made (`dnet run`, `dnet sandbox create`).
#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// A network to join (repeatable; default `bridge`); the first provides the gateway.
    #[arg(long = "network", visible_alias = "net")]
    pub networks: Vec<String>,
    /// The sandbox's name: its DNS name on its networks.
    #[arg(long)]
    pub name: Option<String>,
    /// More names on the first network (repeatable).
    #[arg(long = "alias")]
    pub aliases: Vec<String>,
    /// A static IPv4 address on the first network.
    #[arg(long)]
    pub ip: Option<String>,
    /// Ports to publish: `[HOSTIP:]HOSTPORT:PORT[/PROTO]`, or `PORT` for a free host port.
    #[arg(
        short = 'p',
        long = "publish",
        help = "Publish a port: [HOSTIP:]HOSTPORT:PORT[/PROTO], or PORT for a free host port"
    )]
    pub publish: Vec<String>,
    /// The hostname (default: the name).
    #[arg(long)]
    pub hostname: Option<String>,
    /// The domain name.
    #[arg(long)]
    pub domainname: Option<String>,
    /// A DNS server replacing the host's (repeatable).
    #[arg(long)]
    pub dns: Vec<String>,
    /// An extra hosts line: NAME:IP (repeatable).
    #[arg(long = "add-host")]
    pub extra_hosts: Vec<String>,
    /// A label: KEY=VALUE (repeatable).
    #[arg(long = "label")]
    pub labels: Vec<String>,
}

/// `dnet run` options.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The sandbox.
    #[command(flatten)]
    pub sandbox: SandboxArgs,
    /// The command and its arguments (after `--`).
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// `dnet sandbox` commands.
#[derive(Debug, Subcommand)]
pub enum SandboxCommand {
    /// Create a sandbox joined to networks, without running anything in it; prints its id.
    Create(Box<SandboxArgs>),
    /// List sandboxes.
    #[command(alias = "list")]
    Ls {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Only ids.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Show sandboxes in detail (JSON).
    Inspect {
        /// Names or ids.
        #[arg(required = true)]
        sandboxes: Vec<String>,
    },
    /// Remove sandboxes (their endpoints and namespaces).
    #[command(alias = "remove")]
    Rm {
        /// Names or ids.
        #[arg(required = true)]
        sandboxes: Vec<String>,
    },
}

/// Parses the command line and runs it; the process's exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let socket = match socket_path(&cli.host) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("dnet: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Daemon(args) => crate::daemon::run(daemon_options(args, socket)).map(|()| 0),
        Command::Demo => crate::demo::run().map(|()| 0),
        command => client_command(command, &socket),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("dnet: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The daemon's options from its arguments.
fn daemon_options(args: DaemonArgs, socket: PathBuf) -> DaemonOptions {
    DaemonOptions {
        socket,
        data_dir: args.data_dir,
        run_dir: args.run_dir,
        log_format: args.log_format,
        log_level: args.log_level,
        default_bridge: !args.no_default_bridge,
        bridge_name: args.bridge_name,
        iptables: !args.no_iptables,
        userland_proxy: !args.no_userland_proxy,
        kill_at_step: args.kill_at_step,
    }
}

/// Runs a client command on a single-threaded runtime.
fn client_command(command: Command, socket: &Path) -> anyhow::Result<u8> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the runtime")?;
    runtime.block_on(async {
        let mut client = Client::new(socket);
        match command {
            Command::Network(cmd) => network(&mut client, cmd).await,
            Command::Sandbox(cmd) => sandbox(&mut client, cmd).await,
            Command::Run(args) => {
                let request = sandbox_request(&args.sandbox).map_err(|e| anyhow!("run: {e}"))?;
                drop(client);
                Ok(crate::run::run(socket, request, &args.command).await)
            }
            Command::Version => version(&mut client).await,
            Command::Daemon(_) | Command::Demo => unreachable!("handled by main"),
        }
    })
}

/// Splits `KEY=VALUE` (a missing `=` gives an empty value when `value_optional`).
fn key_value(text: &str, value_optional: bool) -> anyhow::Result<(String, String)> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        None if value_optional && !text.is_empty() => Ok((text.to_owned(), String::new())),
        _ => bail!("bad value {text:?}: want KEY=VALUE"),
    }
}

/// Builds a network creation request; ranges, gateways and reserved addresses go with the
/// subnet that contains them.
pub fn network_request(args: &NetworkCreateArgs) -> anyhow::Result<NetworkCreateRequest> {
    let mut configs = Vec::new();
    let mut subnets = Vec::new();
    for s in &args.subnet {
        let net: IpNet = s.parse().with_context(|| format!("invalid subnet {s:?}"))?;
        subnets.push(net);
        configs.push(IpamConfig {
            subnet: s.clone(),
            ..IpamConfig::default()
        });
    }
    let home = |what: &str, ip: IpAddr| -> anyhow::Result<usize> {
        subnets
            .iter()
            .position(|n| n.contains(&ip))
            .with_context(|| format!("{what} {ip} is in no --subnet"))
    };
    for r in &args.ip_range {
        let range: IpNet = r
            .parse()
            .with_context(|| format!("invalid ip range {r:?}"))?;
        let i = home("ip range", range.network())?;
        configs[i].ip_range = r.clone();
    }
    for g in &args.gateway {
        let ip: IpAddr = g
            .parse()
            .with_context(|| format!("invalid gateway {g:?}"))?;
        let i = home("gateway", ip)?;
        configs[i].gateway = g.clone();
    }
    for a in &args.aux_addresses {
        let (name, ip) = key_value(a, false)?;
        let addr: IpAddr = ip
            .parse()
            .with_context(|| format!("invalid aux address {a:?}"))?;
        let i = home("aux address", addr)?;
        configs[i].auxiliary_addresses.insert(name, ip);
    }
    let options: BTreeMap<_, _> = args
        .options
        .iter()
        .map(|o| key_value(o, false))
        .collect::<anyhow::Result<_>>()?;
    let labels: BTreeMap<_, _> = args
        .labels
        .iter()
        .map(|l| key_value(l, true))
        .collect::<anyhow::Result<_>>()?;
    Ok(NetworkCreateRequest {
        name: args.name.clone(),
        driver: Some(args.driver.clone()),
        enable_ipv6: Some(args.ipv6),
        ipam: Some(IpamRequest {
            driver: Some(args.ipam_driver.clone()),
            config: Some(configs),
            options: None,
        }),
        internal: Some(args.internal),
        attachable: Some(args.attachable),
        options: Some(options),
        labels: Some(labels),
        ..NetworkCreateRequest::default()
    })
}

/// Parses `[HOSTIP:]HOSTPORT:PORT[/PROTO]` (or `PORT[/PROTO]`; `[::1]:80:80` for IPv6).
pub fn parse_port(spec: &str) -> Result<PortSpec, String> {
    let bad = || format!("bad port {spec:?}: want [HOSTIP:]HOSTPORT:PORT[/PROTO]");
    let (rest, proto) = match spec.rsplit_once('/') {
        Some((r, p)) => (r, p.to_owned()),
        None => (spec, String::new()),
    };
    let (front, port) = match rest.rsplit_once(':') {
        Some((f, p)) => (Some(f), p),
        None => (None, rest),
    };
    let port: u16 = port.parse().map_err(|_| bad())?;
    let (host_ip, host_port) = match front {
        None => (String::new(), 0),
        Some(front) => {
            let (ip, host_port) = match front.rsplit_once(':') {
                Some((ip, hp)) => (ip, hp),
                None => ("", front),
            };
            let ip = ip.trim_start_matches('[').trim_end_matches(']');
            if !ip.is_empty() {
                ip.parse::<IpAddr>().map_err(|_| bad())?;
            }
            let host_port = if host_port.is_empty() {
                0
            } else {
                host_port.parse().map_err(|_| bad())?
            };
            (ip.to_owned(), host_port)
        }
    };
    Ok(PortSpec {
        host_ip,
        host_port,
        port,
        proto,
    })
}

/// Builds a sandbox creation request (networks default to `bridge`).
pub fn sandbox_request(args: &SandboxArgs) -> Result<SandboxCreateRequest, String> {
    let names = if args.networks.is_empty() {
        vec!["bridge".to_owned()]
    } else {
        args.networks.clone()
    };
    let networks = names
        .into_iter()
        .enumerate()
        .map(|(i, network)| SandboxNetwork {
            network,
            aliases: if i == 0 {
                args.aliases.clone()
            } else {
                Vec::new()
            },
            ipv4_address: if i == 0 { args.ip.clone() } else { None },
        })
        .collect();
    let labels = args
        .labels
        .iter()
        .map(|l| key_value(l, true).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    Ok(SandboxCreateRequest {
        name: args.name.clone().unwrap_or_default(),
        hostname: args.hostname.clone().unwrap_or_default(),
        domainname: args.domainname.clone().unwrap_or_default(),
        dns: args.dns.clone(),
        extra_hosts: args.extra_hosts.clone(),
        networks,
        ports: args
            .publish
            .iter()
            .map(|p| parse_port(p))
            .collect::<Result<_, _>>()?,
        labels,
    })
}

/// Prints rows as aligned columns.
fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}   "));
            }
        }
        outln!("{}", out.trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// The first 12 characters of an id, unless `whole`.
fn short(id: &str, whole: bool) -> String {
    if whole {
        id.to_owned()
    } else {
        id.chars().take(12).collect()
    }
}

/// Prints JSON values as an indented array.
fn print_json(values: &[Value]) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(values)?);
    Ok(())
}

/// Runs a command on several objects, printing each failure; exit code 1 if any failed.
async fn each(
    client: &mut Client,
    items: &[String],
    mut f: impl AsyncFnMut(&mut Client, &str) -> Result<(), ClientError>,
) -> anyhow::Result<u8> {
    let mut code = 0;
    for item in items {
        match f(client, item).await {
            Ok(()) => {}
            Err(e @ ClientError::Connect { .. }) => return Err(e.into()),
            Err(e) => {
                eprintln!("dnet: {e}");
                code = 1;
            }
        }
    }
    Ok(code)
}

/// `dnet network ...`.
async fn network(client: &mut Client, cmd: NetworkCommand) -> anyhow::Result<u8> {
    match cmd {
        NetworkCommand::Create(args) => {
            let request = network_request(&args).context("network create")?;
            let created: NetworkCreateResponse = client.post("/networks/create", &request).await?;
            if !created.warning.is_empty() {
                eprintln!("dnet: warning: {}", created.warning);
            }
            outln!("{}", created.id);
            Ok(0)
        }
        NetworkCommand::Ls(args) => {
            let filters = Filters::from_args(&args.filters).map_err(|e| anyhow!(e))?;
            let path = if filters.is_empty() {
                "/networks".to_owned()
            } else {
                format!("/networks?filters={}", escape(&filters.to_query()))
            };
            let networks: Vec<Value> = client.get(&path).await?;
            if args.format == Format::Json {
                print_json(&networks)?;
                return Ok(0);
            }
            let networks: Vec<NetworkResource> = networks
                .into_iter()
                .map(serde_json::from_value)
                .collect::<Result<_, _>>()?;
            if args.quiet {
                for n in &networks {
                    outln!("{}", short(&n.id, args.no_trunc));
                }
                return Ok(0);
            }
            let rows: Vec<Vec<String>> = networks
                .iter()
                .map(|n| {
                    vec![
                        short(&n.id, args.no_trunc),
                        n.name.clone(),
                        n.driver.clone(),
                        n.scope.clone(),
                    ]
                })
                .collect();
            print_table(&["NETWORK ID", "NAME", "DRIVER", "SCOPE"], &rows);
            Ok(0)
        }
        NetworkCommand::Inspect { networks } => {
            let mut found = Vec::new();
            let code = each(client, &networks, async |c, n| {
                let v: Value = c.get(&format!("/networks/{}", escape(n))).await?;
                found.push(v);
                Ok(())
            })
            .await?;
            print_json(&found)?;
            Ok(code)
        }
        NetworkCommand::Rm { networks } => {
            each(client, &networks, async |c, n| {
                c.delete(&format!("/networks/{}", escape(n))).await?;
                outln!("{n}");
                Ok(())
            })
            .await
        }
        NetworkCommand::Prune { filters } => prune(client, &filters).await,
        NetworkCommand::Connect {
            network,
            sandbox,
            aliases,
            ip,
        } => {
            let request = NetworkConnectRequest {
                container: sandbox,
                endpoint_config: Some(EndpointSettings {
                    ipam_config: ip.map(|ip| EndpointIpamConfig {
                        ipv4_address: Some(ip),
                        ipv6_address: None,
                    }),
                    aliases: Some(aliases),
                    mac_address: None,
                }),
            };
            let path = format!("/networks/{}/connect", escape(&network));
            client.post_unit(&path, &request).await?;
            Ok(0)
        }
        NetworkCommand::Disconnect { network, sandbox } => {
            let request = NetworkDisconnectRequest {
                container: sandbox,
                force: false,
            };
            let path = format!("/networks/{}/disconnect", escape(&network));
            client.post_unit(&path, &request).await?;
            Ok(0)
        }
    }
}

/// `dnet network prune`: the unused networks, removed one by one with a progress bar (hidden
/// without a terminal). A network that gained a sandbox in the meantime is kept.
async fn prune(client: &mut Client, filters: &[String]) -> anyhow::Result<u8> {
    let mut filters = Filters::from_args(filters).map_err(|e| anyhow!(e))?;
    filters.insert("dangling", "true");
    let path = format!("/networks?filters={}", escape(&filters.to_query()));
    let candidates: Vec<NetworkResource> = client.get(&path).await?;
    let bar = indicatif::ProgressBar::new(candidates.len() as u64);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "removing unused networks [{bar:30}] {pos}/{len} {msg}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    let mut deleted = Vec::new();
    let mut code = 0;
    for net in &candidates {
        bar.set_message(net.name.clone());
        match client
            .delete(&format!("/networks/{}", escape(&net.id)))
            .await
        {
            Ok(()) => deleted.push(net.name.clone()),
            Err(e) if matches!(e.status().map(|s| s.as_u16()), Some(403 | 404)) => {}
            Err(e @ ClientError::Connect { .. }) => return Err(e.into()),
            Err(e) => {
                bar.suspend(|| eprintln!("dnet: remove network {}: {e}", net.name));
                code = 1;
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    if deleted.is_empty() {
        outln!("no unused networks");
    } else {
        outln!("Deleted Networks:");
        for name in deleted {
            outln!("{name}");
        }
    }
    Ok(code)
}

/// `dnet sandbox ...`.
async fn sandbox(client: &mut Client, cmd: SandboxCommand) -> anyhow::Result<u8> {
    match cmd {
        SandboxCommand::Create(args) => {
            let request = sandbox_request(&args).map_err(|e| anyhow!("sandbox create: {e}"))?;
            let created: SandboxResource = client.post("/dnet/sandboxes", &request).await?;
            outln!("{}", created.id);
            Ok(0)
        }
        SandboxCommand::Ls { format, quiet } => {
            let sandboxes: Vec<Value> = client.get("/dnet/sandboxes").await?;
            if format == Format::Json {
                print_json(&sandboxes)?;
                return Ok(0);
            }
            let sandboxes: Vec<SandboxResource> = sandboxes
                .into_iter()
                .map(serde_json::from_value)
                .collect::<Result<_, _>>()?;
            if quiet {
                for s in &sandboxes {
                    outln!("{}", short(&s.id, false));
                }
                return Ok(0);
            }
            let rows: Vec<Vec<String>> = sandboxes
                .iter()
                .map(|s| {
                    let networks: Vec<_> = s.endpoints.iter().map(|e| e.network.as_str()).collect();
                    let addresses: Vec<_> = s
                        .endpoints
                        .iter()
                        .map(|e| e.ipv4_address.as_str())
                        .filter(|a| !a.is_empty())
                        .collect();
                    let ports: Vec<_> = s
                        .ports
                        .iter()
                        .map(|p| {
                            let ip = if p.host_ip.is_empty() {
                                "*"
                            } else {
                                &p.host_ip
                            };
                            format!("{ip}:{}->{}/{}", p.host_port, p.port, p.proto)
                        })
                        .collect();
                    vec![
                        short(&s.id, false),
                        s.name.clone(),
                        networks.join(","),
                        addresses.join(","),
                        ports.join(","),
                    ]
                })
                .collect();
            print_table(
                &["SANDBOX ID", "NAME", "NETWORKS", "ADDRESSES", "PORTS"],
                &rows,
            );
            Ok(0)
        }
        SandboxCommand::Inspect { sandboxes } => {
            let mut found = Vec::new();
            let code = each(client, &sandboxes, async |c, s| {
                let v: Value = c.get(&format!("/dnet/sandboxes/{}", escape(s))).await?;
                found.push(v);
                Ok(())
            })
            .await?;
            print_json(&found)?;
            Ok(code)
        }
        SandboxCommand::Rm { sandboxes } => {
            each(client, &sandboxes, async |c, s| {
                c.delete(&format!("/dnet/sandboxes/{}", escape(s))).await?;
                outln!("{s}");
                Ok(())
            })
            .await
        }
    }
}

/// `dnet version`.
async fn version(client: &mut Client) -> anyhow::Result<u8> {
    outln!("Client: dnet {}", env!("CARGO_PKG_VERSION"));
    let server: VersionResponse = client.get("/version").await?;
    outln!(
        "Daemon: dnet {} (API {}, minimum {}), {} {}, kernel {}",
        server.version,
        server.api_version,
        server.min_api_version,
        server.os,
        server.arch,
        server.kernel_version
    );
    if std::io::stdout().is_terminal() {
        outln!("Socket: {}", client.socket().display());
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_specs_parse_like_dockers() {
        let p = |s: &str| parse_port(s).unwrap();
        assert_eq!(
            p("8080:80"),
            PortSpec {
                host_port: 8080,
                port: 80,
                ..PortSpec::default()
            }
        );
        assert_eq!(
            p("127.0.0.1:8080:80/udp"),
            PortSpec {
                host_ip: "127.0.0.1".into(),
                host_port: 8080,
                port: 80,
                proto: "udp".into()
            }
        );
        assert_eq!(p("[::1]:9000:90").host_ip, "::1");
        assert_eq!(p("127.0.0.1::80").host_port, 0);
        assert_eq!(p("80").host_port, 0);
        assert_eq!(p("80").port, 80);
        for bad in ["", "x:80", "80:y", "1.2.3:80:80", "70000:80"] {
            assert!(parse_port(bad).is_err(), "{bad}");
        }
    }

    #[derive(Debug, Parser)]
    struct CreateOnly {
        #[command(flatten)]
        args: NetworkCreateArgs,
    }

    #[test]
    fn ranges_and_gateways_go_with_their_subnet() {
        let args = CreateOnly::parse_from([
            "create",
            "n",
            "--subnet",
            "10.1.0.0/16",
            "--subnet",
            "10.2.0.0/16",
            "--gateway",
            "10.2.0.254",
            "--ip-range",
            "10.1.4.0/24",
            "--aux-address",
            "r=10.2.0.9",
            "-o",
            "com.docker.network.bridge.name=br9",
            "--label",
            "team",
        ])
        .args;
        let req = network_request(&args).unwrap();
        let configs = req.ipam.unwrap().config.unwrap();
        assert_eq!(configs[0].ip_range, "10.1.4.0/24");
        assert_eq!(configs[1].gateway, "10.2.0.254");
        assert_eq!(configs[1].auxiliary_addresses["r"], "10.2.0.9");
        assert_eq!(
            req.options.unwrap()["com.docker.network.bridge.name"],
            "br9"
        );
        assert_eq!(req.labels.unwrap()["team"], "");

        let orphan = CreateOnly::parse_from(["create", "n", "--gateway", "10.0.0.1"]).args;
        assert!(network_request(&orphan).is_err());
    }

    #[derive(Debug, Parser)]
    struct RunOnly {
        #[command(flatten)]
        run: RunArgs,
    }

    #[test]
    fn run_takes_the_command_after_its_options() {
        let parsed = RunOnly::parse_from([
            "run",
            "--network",
            "n1",
            "--name",
            "srv",
            "-p",
            "8080:80",
            "--",
            "sh",
            "-c",
            "true",
        ]);
        assert_eq!(parsed.run.command, ["sh", "-c", "true"]);
        let req = sandbox_request(&parsed.run.sandbox).unwrap();
        assert_eq!(req.name, "srv");
        assert_eq!(req.networks[0].network, "n1");
        assert_eq!(req.ports[0].host_port, 8080);
        let default = RunOnly::parse_from(["run", "true"]);
        assert_eq!(
            sandbox_request(&default.run.sandbox).unwrap().networks[0].network,
            "bridge"
        );
    }
}
