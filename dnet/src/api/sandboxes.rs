//! dnet's sandbox endpoints (`/dnet/sandboxes`): a sandbox is made and joined to its networks
//! in one request, which `dnet run` and `dnet sandbox create` use.

use std::net::{IpAddr, Ipv4Addr};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use libnetwork::{
    Controller, EndpointOptions, JoinOptions, Network, PortBinding, Protocol, Sandbox,
    SandboxOptions, TransportPort, netlabel,
};
use tracing::{info, warn};

use super::networks::{find_network, valid_name};
use super::{ApiError, ApiResult, AppState, detached, parse_body};
use crate::model::{PortSpec, SandboxCreateRequest, SandboxEndpoint, SandboxResource};

/// The driver whose network puts a sandbox in the host's namespace.
const HOST_DRIVER: &str = "host";

/// Finds a sandbox by name (container id), id, then unique id prefix.
pub(crate) fn find_sandbox(controller: &Controller, key: &str) -> ApiResult<Sandbox> {
    if key.is_empty() {
        return Err(ApiError::bad_request("sandbox name or id is empty"));
    }
    if let Ok(sb) = controller.sandbox_by_container(key) {
        return Ok(sb);
    }
    if let Ok(sb) = controller.sandbox_by_id(key) {
        return Ok(sb);
    }
    let mut matches: Vec<_> = controller
        .sandboxes()
        .into_iter()
        .filter(|s| s.id().starts_with(key))
        .collect();
    match matches.len() {
        0 => Err(ApiError::not_found(format!("no such sandbox: {key}"))),
        1 => Ok(matches.remove(0)),
        n => Err(ApiError::bad_request(format!(
            "sandbox {key} is ambiguous ({n} matches found based on ID prefix)"
        ))),
    }
}

/// A sandbox as the API shows it.
pub(crate) async fn resource(sb: &Sandbox) -> SandboxResource {
    let text = |v: Option<String>| v.unwrap_or_default();
    let endpoints = sb
        .endpoints()
        .into_iter()
        .map(|ep| {
            let info = ep.info();
            SandboxEndpoint {
                network: ep.network(),
                network_id: ep.network_id().to_owned(),
                endpoint_id: info.id,
                mac_address: text(info.interface.mac_address.map(|m| m.to_string())),
                ipv4_address: text(info.interface.address.map(|a| a.to_string())),
                ipv6_address: text(info.interface.address_ipv6.map(|a| a.to_string())),
                gateway: text(info.gateway.map(|g| g.to_string())),
                aliases: info.aliases,
            }
        })
        .collect();
    let mut ports = Vec::new();
    if let Some(gw) = sb.gateway_endpoint()
        && let Ok(driver_info) = gw.driver_info().await
        && let Some(map) = driver_info.get(netlabel::PORT_MAP)
        && let Ok(bindings) = serde_json::from_value::<Vec<PortBinding>>(map.clone())
    {
        ports = bindings
            .into_iter()
            .map(|b| PortSpec {
                host_ip: text(b.host_ip.map(|ip| ip.to_string())),
                host_port: b.host_port,
                port: b.port,
                proto: b.proto.to_string(),
            })
            .collect();
    }
    SandboxResource {
        id: sb.id().to_owned(),
        name: sb.container_id().to_owned(),
        key: sb.key().display().to_string(),
        hostname: sb.hostname(),
        hosts_path: sb.hosts_path().display().to_string(),
        resolv_conf_path: sb.resolv_conf_path().display().to_string(),
        endpoints,
        ports,
        labels: sb.labels(),
    }
}

/// A checked creation request: everything parsed, every network found.
#[derive(Debug)]
struct Plan {
    name: String,
    options: SandboxOptions,
    networks: Vec<(Network, EndpointOptions)>,
}

/// A random sandbox name: 12 hex characters.
fn random_name() -> String {
    let mut bytes = [0u8; 6];
    let from_urandom = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes));
    if from_urandom.is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        bytes.copy_from_slice(&nanos.to_le_bytes()[..6]);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses a port to publish.
fn port_binding(spec: &PortSpec) -> ApiResult<PortBinding> {
    let proto = match spec.proto.as_str() {
        "" => Protocol::Tcp,
        p => p
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid protocol {p:?}")))?,
    };
    if spec.port == 0 {
        return Err(ApiError::bad_request(
            "a published port needs a container port",
        ));
    }
    let host_ip = match spec.host_ip.as_str() {
        "" => None,
        ip => Some(
            ip.parse::<IpAddr>()
                .map_err(|_| ApiError::bad_request(format!("invalid host address {ip:?}")))?,
        ),
    };
    Ok(PortBinding {
        proto,
        ip: None,
        port: spec.port,
        host_ip,
        host_port: spec.host_port,
        host_port_end: 0,
    })
}

/// Checks a creation request against the controller; nothing is changed.
fn plan(controller: &Controller, req: SandboxCreateRequest) -> ApiResult<Plan> {
    let name = if req.name.is_empty() {
        random_name()
    } else {
        req.name
    };
    if !valid_name(&name) || name.len() > 63 {
        return Err(ApiError::bad_request(format!(
            "invalid sandbox name {name:?}: up to 63 of [a-zA-Z0-9][a-zA-Z0-9_.-]"
        )));
    }
    let hostname = if req.hostname.is_empty() {
        name.clone()
    } else {
        req.hostname
    };
    let hostname_ok = hostname.len() <= 64
        && hostname
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if !hostname_ok {
        return Err(ApiError::bad_request(format!(
            "invalid hostname {hostname:?}"
        )));
    }
    let mut options = SandboxOptions::new()
        .hostname(hostname)
        .domainname(req.domainname);
    for server in &req.dns {
        let ip = server
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid DNS server {server:?}")))?;
        options = options.dns(ip);
    }
    for line in &req.extra_hosts {
        let (host, ip) = line
            .split_once(':')
            .and_then(|(h, ip)| Some((h, ip.parse::<IpAddr>().ok()?)))
            .ok_or_else(|| {
                ApiError::bad_request(format!("invalid extra host {line:?}: want name:address"))
            })?;
        options = options.extra_host(host, ip);
    }
    for spec in &req.ports {
        let binding = port_binding(spec)?;
        options.exposed_ports.push(TransportPort {
            proto: binding.proto,
            port: binding.port,
        });
        options.port_bindings.push(binding);
    }
    options.labels = req.labels;

    let mut networks = Vec::new();
    for attachment in req.networks {
        let net = find_network(controller, &attachment.network)?;
        if networks
            .iter()
            .any(|(n, _): &(Network, _)| n.id() == net.id())
        {
            return Err(ApiError::bad_request(format!(
                "network {} is given twice",
                attachment.network
            )));
        }
        let ipv4_address = attachment
            .ipv4_address
            .as_deref()
            .filter(|a| !a.is_empty())
            .map(|a| {
                a.parse::<Ipv4Addr>()
                    .map_err(|_| ApiError::bad_request(format!("invalid IPv4 address {a:?}")))
            })
            .transpose()?;
        let ep_options = EndpointOptions {
            ipv4_address,
            aliases: attachment.aliases,
            ..EndpointOptions::default()
        };
        networks.push((net, ep_options));
    }
    let on_host = networks
        .iter()
        .any(|(n, _)| n.network_type() == HOST_DRIVER);
    if on_host {
        if networks.len() > 1 {
            return Err(ApiError::bad_request(
                "a sandbox on the host network cannot join other networks",
            ));
        }
        if !options.port_bindings.is_empty() {
            return Err(ApiError::bad_request(
                "ports cannot be published from the host network",
            ));
        }
        options = options.use_default_sandbox();
    }
    Ok(Plan {
        name,
        options,
        networks,
    })
}

/// `GET /dnet/sandboxes`.
pub(super) async fn list(State(state): State<AppState>) -> Json<Vec<SandboxResource>> {
    let mut out = Vec::new();
    for sb in state.controller().sandboxes() {
        out.push(resource(&sb).await);
    }
    Json(out)
}

/// `GET /dnet/sandboxes/{id}`.
pub(super) async fn inspect(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<SandboxResource>> {
    let sb = find_sandbox(state.controller(), &id)?;
    Ok(Json(resource(&sb).await))
}

/// `POST /dnet/sandboxes`: creates the sandbox and joins it to each network in turn (the
/// first with the highest priority, so it provides the gateway); undone on any failure.
pub(super) async fn create(
    State(state): State<AppState>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<SandboxResource>)> {
    let plan = plan(state.controller(), parse_body(&body)?)?;
    detached(async move {
        let controller = state.controller();
        if let Ok(existing) = controller.sandbox_by_container(&plan.name) {
            return Err(ApiError::conflict(format!(
                "the name {} is already in use by sandbox {}",
                plan.name,
                existing.id()
            )));
        }
        let sb = controller.new_sandbox(&plan.name, plan.options).await?;
        let count = plan.networks.len();
        for (i, (net, ep_options)) in plan.networks.into_iter().enumerate() {
            let priority = i32::try_from(count - i).unwrap_or(i32::MAX);
            if let Err(e) = attach(&sb, &net, &plan.name, ep_options, priority).await {
                if let Err(undo) = sb.delete().await {
                    warn!(sandbox = %plan.name, error = %undo, "remove the sandbox of a failed creation");
                }
                return Err(e.into());
            }
        }
        info!(sandbox_id = %sb.id(), sandbox = %plan.name, networks = count, "sandbox created");
        Ok((StatusCode::CREATED, Json(resource(&sb).await)))
    })
    .await
}

/// Creates the sandbox's endpoint on a network and joins it; the endpoint is removed when
/// the join fails.
async fn attach(
    sb: &Sandbox,
    net: &Network,
    name: &str,
    options: EndpointOptions,
    priority: i32,
) -> libnetwork::Result<()> {
    let ep = net.create_endpoint(name, options).await?;
    let join = JoinOptions {
        priority,
        ..JoinOptions::default()
    };
    if let Err(e) = ep.join(sb, join).await {
        if let Err(undo) = ep.delete(true).await {
            warn!(endpoint_id = %ep.id(), error = %undo, "remove the endpoint of a failed join");
        }
        return Err(e);
    }
    Ok(())
}

/// `DELETE /dnet/sandboxes/{id}`: the sandbox leaves every network, its endpoints are
/// removed, then its namespace and files.
pub(super) async fn remove(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let sb = find_sandbox(state.controller(), &id)?;
    detached(async move {
        sb.delete().await?;
        info!(sandbox_id = %sb.id(), sandbox = %sb.container_id(), "sandbox removed");
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_parse_with_tcp_by_default() {
        let b = port_binding(&PortSpec {
            host_ip: "127.0.0.1".into(),
            host_port: 8080,
            port: 80,
            proto: String::new(),
        })
        .unwrap();
        assert_eq!(b.proto, Protocol::Tcp);
        assert_eq!(b.host_ip, Some("127.0.0.1".parse().unwrap()));
        assert_eq!((b.host_port, b.port), (8080, 80));
        let bad = PortSpec {
            port: 80,
            proto: "icmp".into(),
            ..PortSpec::default()
        };
        assert_eq!(
            port_binding(&bad).unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn random_names_are_twelve_hex_characters() {
        let a = random_name();
        assert_eq!(a.len(), 12);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(valid_name(&a));
    }
}
