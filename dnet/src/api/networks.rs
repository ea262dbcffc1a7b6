//! Docker's network endpoints: list, inspect, create, remove, connect, disconnect, prune.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use ipnet::IpNet;
use libnetwork::{
    Controller, EndpointOptions, ErrorKind, IpamConf, IpamOptions, JoinOptions, MacAddr, Network,
    NetworkOptions,
};
use tracing::{info, warn};

use super::sandboxes::find_sandbox;
use super::{ApiError, ApiResult, AppState, detached, parse_body};
use crate::filters::Filters;
use crate::model::{
    ConfigReference, EndpointResource, Ipam, IpamConfig, NetworkConnectRequest,
    NetworkCreateRequest, NetworkCreateResponse, NetworkDisconnectRequest, NetworkPruneResponse,
    NetworkResource,
};

/// The networks every daemon has, which cannot be created, removed or pruned.
pub(crate) const PREDEFINED: [&str; 3] = ["bridge", "host", "none"];

/// The driver of a network created without one.
pub(crate) const DEFAULT_DRIVER: &str = "bridge";

/// Whether a network name or an object name is acceptable: a letter or digit, then letters,
/// digits, `_`, `.` and `-` (Docker's rule for names).
pub(crate) fn valid_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Finds a network by exact id, exact name, then unique id prefix (Docker's order).
pub(crate) fn find_network(controller: &Controller, key: &str) -> ApiResult<Network> {
    if key.is_empty() {
        return Err(ApiError::bad_request("network name or id is empty"));
    }
    if let Ok(n) = controller.network_by_id(key) {
        return Ok(n);
    }
    if let Ok(n) = controller.network_by_name(key) {
        return Ok(n);
    }
    let mut matches: Vec<_> = controller
        .networks()
        .into_iter()
        .filter(|n| n.id().starts_with(key))
        .collect();
    match matches.len() {
        0 => Err(ApiError::not_found(format!("network {key} not found"))),
        1 => Ok(matches.remove(0)),
        n => Err(ApiError::bad_request(format!(
            "network {key} is ambiguous ({n} matches found based on ID prefix)"
        ))),
    }
}

/// A network as the API shows it; with `containers`, its endpoints too.
pub(crate) fn resource(
    net: &Network,
    containers: Option<&HashMap<String, String>>,
) -> NetworkResource {
    let info = net.info();
    let ipam_config = ipam_config(&info.ipv4_config, &info.ipv4_info)
        .into_iter()
        .chain(ipam_config(&info.ipv6_config, &info.ipv6_info))
        .collect();
    let containers = containers
        .map(|names| endpoints_of(net, names))
        .unwrap_or_default();
    NetworkResource {
        name: info.name,
        id: info.id,
        created: info.created,
        scope: info.scope,
        driver: info.network_type,
        enable_ipv4: true,
        enable_ipv6: info.enable_ipv6,
        ipam: Ipam {
            driver: info.ipam_driver,
            config: ipam_config,
            options: info.ipam_options,
        },
        internal: info.internal,
        attachable: info.attachable,
        ingress: false,
        config_from: ConfigReference {
            network: info.config_from.unwrap_or_default(),
        },
        config_only: info.config_only,
        containers,
        options: info.driver_options,
        labels: info.labels,
    }
}

/// The pools of one family: what was asked for, completed with what was allocated.
fn ipam_config(asked: &[IpamConf], allocated: &[libnetwork::IpamInfo]) -> Vec<IpamConfig> {
    let text = |v: Option<String>| v.unwrap_or_default();
    (0..asked.len().max(allocated.len()))
        .map(|i| {
            let conf = asked.get(i);
            let data = allocated.get(i).map(|info| &info.data);
            IpamConfig {
                subnet: text(
                    conf.and_then(|c| c.preferred_pool)
                        .or(data.map(|d| d.pool))
                        .map(|p| p.to_string()),
                ),
                ip_range: text(conf.and_then(|c| c.sub_pool).map(|p| p.to_string())),
                gateway: text(
                    conf.and_then(|c| c.gateway)
                        .or(data.and_then(|d| d.gateway).map(|g| g.addr()))
                        .map(|g| g.to_string()),
                ),
                auxiliary_addresses: conf
                    .map(|c| {
                        c.aux_addresses
                            .iter()
                            .map(|(k, v)| (k.clone(), v.to_string()))
                            .collect()
                    })
                    .unwrap_or_default(),
            }
        })
        .collect()
}

/// The endpoints of a network keyed by sandbox id; `names` maps sandbox ids to names.
fn endpoints_of(
    net: &Network,
    names: &HashMap<String, String>,
) -> BTreeMap<String, EndpointResource> {
    net.endpoints()
        .into_iter()
        .map(|ep| {
            let info = ep.info();
            let text = |v: Option<String>| v.unwrap_or_default();
            let (key, name) = match &info.sandbox_id {
                Some(sid) => (
                    sid.clone(),
                    names.get(sid).cloned().unwrap_or_else(|| info.name.clone()),
                ),
                None => (format!("ep-{}", info.id), info.name.clone()),
            };
            let resource = EndpointResource {
                name,
                endpoint_id: info.id,
                mac_address: text(info.interface.mac_address.map(|m| m.to_string())),
                ipv4_address: text(info.interface.address.map(|a| a.to_string())),
                ipv6_address: text(info.interface.address_ipv6.map(|a| a.to_string())),
            };
            (key, resource)
        })
        .collect()
}

/// Sandbox ids to sandbox names (container ids).
pub(crate) fn sandbox_names(controller: &Controller) -> HashMap<String, String> {
    controller
        .sandboxes()
        .into_iter()
        .map(|s| (s.id().to_owned(), s.container_id().to_owned()))
        .collect()
}

/// Whether a network matches list filters (`name`, `id`, `driver`, `label`, `scope`, `type`,
/// `dangling`, and `label!`, which Docker has for prune only).
fn matches(net: &Network, filters: &Filters) -> ApiResult<bool> {
    let info = net.info();
    let predefined = PREDEFINED.contains(&info.name.as_str());
    let ok = filters.any("name", |v| info.name.contains(v))
        && filters.any("id", |v| info.id.starts_with(v))
        && filters.any("driver", |v| info.network_type == v)
        && filters.any("scope", |v| info.scope == v)
        && filters.labels_match(&info.labels)
        && filters.try_any("type", |v| match v {
            "custom" => Ok(!predefined),
            "builtin" => Ok(predefined),
            other => Err(ApiError::bad_request(format!(
                "invalid filter: 'type'='{other}'"
            ))),
        })?
        && filters.try_any("dangling", |v| {
            let dangling = !predefined && net.endpoints().is_empty();
            match v {
                "true" | "1" => Ok(dangling),
                "false" | "0" => Ok(!dangling),
                other => Err(ApiError::bad_request(format!(
                    "invalid filter: 'dangling'='{other}'"
                ))),
            }
        })?;
    Ok(ok)
}

/// `GET /networks`.
pub(super) async fn list(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<Vec<NetworkResource>>> {
    let filters = Filters::from_query(query.get("filters").map(String::as_str))?;
    filters.only(&[
        "name", "id", "driver", "label", "label!", "scope", "type", "dangling",
    ])?;
    let mut out = Vec::new();
    for net in state.controller().networks() {
        if matches(&net, &filters)? {
            out.push(resource(&net, None));
        }
    }
    Ok(Json(out))
}

/// `GET /networks/{id}`.
pub(super) async fn inspect(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<NetworkResource>> {
    let controller = state.controller();
    let net = find_network(controller, &id)?;
    Ok(Json(resource(&net, Some(&sandbox_names(controller)))))
}

/// Parses an optional CIDR field.
fn parse_cidr(what: &str, text: &str) -> ApiResult<Option<IpNet>> {
    if text.is_empty() {
        return Ok(None);
    }
    let net: IpNet = text.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "invalid {what} {text:?}: not an address in CIDR form"
        ))
    })?;
    if net.trunc() != net {
        return Err(ApiError::bad_request(format!(
            "invalid {what} {text}: it should be {}",
            net.trunc()
        )));
    }
    Ok(Some(net))
}

/// Parses an optional address field.
fn parse_ip(what: &str, text: &str) -> ApiResult<Option<IpAddr>> {
    if text.is_empty() {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|_| ApiError::bad_request(format!("invalid {what} {text:?}: not an IP address")))
}

/// Turns the API's pool descriptions into the controller's, split by family, checking that
/// ranges, gateways and reserved addresses lie in their subnet.
fn ipam_confs(configs: &[IpamConfig]) -> ApiResult<(Vec<IpamConf>, Vec<IpamConf>)> {
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for c in configs {
        let subnet = parse_cidr("subnet", &c.subnet)?;
        let range = parse_cidr("ip range", &c.ip_range)?;
        let gateway = parse_ip("gateway", &c.gateway)?;
        let mut aux = BTreeMap::new();
        for (name, ip) in &c.auxiliary_addresses {
            let ip = parse_ip("auxiliary address", ip)?.ok_or_else(|| {
                ApiError::bad_request(format!("auxiliary address {name} is empty"))
            })?;
            aux.insert(name.clone(), ip);
        }
        let Some(pool) = subnet else {
            if range.is_some() || gateway.is_some() || !aux.is_empty() {
                return Err(ApiError::bad_request(
                    "an ip range, gateway or auxiliary address needs a subnet",
                ));
            }
            continue;
        };
        if let Some(r) = range
            && !pool.contains(&r)
        {
            return Err(ApiError::bad_request(format!(
                "ip range {r} is not inside subnet {pool}"
            )));
        }
        if let Some(g) = gateway
            && !pool.contains(&g)
        {
            return Err(ApiError::bad_request(format!(
                "gateway {g} is not inside subnet {pool}"
            )));
        }
        if let Some((name, ip)) = aux.iter().find(|(_, ip)| !pool.contains(*ip)) {
            return Err(ApiError::bad_request(format!(
                "auxiliary address {name}={ip} is not inside subnet {pool}"
            )));
        }
        let conf = IpamConf {
            preferred_pool: Some(pool),
            sub_pool: range,
            gateway,
            aux_addresses: aux,
        };
        match pool {
            IpNet::V4(_) => v4.push(conf),
            IpNet::V6(_) => v6.push(conf),
        }
    }
    Ok((v4, v6))
}

/// Checks a creation request and turns it into the controller's arguments: the driver, the
/// name and the options. Nothing is changed.
pub(crate) fn creation(req: NetworkCreateRequest) -> ApiResult<(String, String, NetworkOptions)> {
    let name = req.name;
    if name.is_empty() {
        return Err(ApiError::bad_request("a network needs a name"));
    }
    if !valid_name(&name) {
        return Err(ApiError::bad_request(format!(
            "invalid network name {name:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )));
    }
    if PREDEFINED.contains(&name.as_str()) {
        return Err(ApiError::forbidden(format!(
            "operation is not permitted on predefined {name} network"
        )));
    }
    let driver = req
        .driver
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| DEFAULT_DRIVER.to_owned());
    if let Some(scope) = req
        .scope
        .as_deref()
        .filter(|s| !s.is_empty() && *s != "local")
    {
        return Err(ApiError::bad_request(format!(
            "scope {scope:?} is not supported: dnet serves local networks only"
        )));
    }
    if req.enable_ipv4 == Some(false) {
        return Err(ApiError::bad_request(
            "networks without IPv4 are not supported",
        ));
    }
    if req.ingress == Some(true) {
        return Err(ApiError::forbidden(
            "ingress networks need swarm mode, which dnet does not have",
        ));
    }
    let enable_ipv6 = req.enable_ipv6.unwrap_or(false);
    let ipam = req.ipam.unwrap_or_default();
    let (v4, v6) = ipam_confs(ipam.config.as_deref().unwrap_or_default())?;
    if !v6.is_empty() && !enable_ipv6 {
        return Err(ApiError::bad_request(
            "an IPv6 subnet was given but IPv6 is not enabled (EnableIPv6)",
        ));
    }
    let options = NetworkOptions {
        ipam: IpamOptions {
            driver: ipam.driver.unwrap_or_default(),
            v4,
            v6,
            options: ipam.options.unwrap_or_default(),
        },
        enable_ipv6,
        internal: req.internal.unwrap_or(false),
        attachable: req.attachable.unwrap_or(false),
        labels: req.labels.unwrap_or_default(),
        driver_options: req.options.unwrap_or_default(),
        config_only: req.config_only.unwrap_or(false),
        config_from: req.config_from.map(|c| c.network).filter(|n| !n.is_empty()),
        ..NetworkOptions::default()
    };
    Ok((driver, name, options))
}

/// `POST /networks/create`.
pub(super) async fn create(
    State(state): State<AppState>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<NetworkCreateResponse>)> {
    let (driver, name, options) = creation(parse_body(&body)?)?;
    detached(async move {
        let controller = state.controller();
        if controller.network_by_name(&name).is_ok() {
            return Err(ApiError::conflict(format!(
                "network with name {name} already exists"
            )));
        }
        let net = controller.new_network(&driver, &name, options).await?;
        info!(network_id = %net.id(), network_name = %name, driver, "network created");
        Ok((
            StatusCode::CREATED,
            Json(NetworkCreateResponse {
                id: net.id().to_owned(),
                warning: String::new(),
            }),
        ))
    })
    .await
}

/// Refuses operations on the predefined networks.
fn check_not_predefined(net: &Network, what: &str) -> ApiResult<()> {
    let name = net.name();
    if PREDEFINED.contains(&name.as_str()) {
        return Err(ApiError::forbidden(format!(
            "{name} is a pre-defined network and cannot be {what}"
        )));
    }
    Ok(())
}

/// `DELETE /networks/{id}`.
pub(super) async fn remove(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let net = find_network(state.controller(), &id)?;
    check_not_predefined(&net, "removed")?;
    detached(async move {
        net.delete().await?;
        info!(network_id = %net.id(), network_name = %net.name(), "network removed");
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}

/// `POST /networks/{id}/connect`: a new endpoint on the network, joined to the sandbox.
pub(super) async fn connect(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let req: NetworkConnectRequest = parse_body(&body)?;
    let controller = state.controller();
    let net = find_network(controller, &id)?;
    let sandbox = find_sandbox(controller, &req.container)?;
    let settings = req.endpoint_config.unwrap_or_default();
    let addresses = settings.ipam_config.unwrap_or_default();
    let options = EndpointOptions {
        ipv4_address: addresses
            .ipv4_address
            .as_deref()
            .filter(|a| !a.is_empty())
            .map(|a| parse_address(a, "IPv4"))
            .transpose()?,
        ipv6_address: addresses
            .ipv6_address
            .as_deref()
            .filter(|a| !a.is_empty())
            .map(|a| parse_address(a, "IPv6"))
            .transpose()?,
        mac_address: settings
            .mac_address
            .as_deref()
            .filter(|m| !m.is_empty())
            .map(|m| {
                m.parse::<MacAddr>()
                    .map_err(|_| ApiError::bad_request(format!("invalid MAC address {m:?}")))
            })
            .transpose()?,
        aliases: settings.aliases.unwrap_or_default(),
        ..EndpointOptions::default()
    };
    detached(async move {
        let ep = net.create_endpoint(sandbox.container_id(), options).await?;
        if let Err(e) = ep.join(&sandbox, JoinOptions::default()).await {
            if let Err(undo) = ep.delete(true).await {
                warn!(endpoint_id = %ep.id(), error = %undo, "remove the endpoint of a failed connection");
            }
            return Err(e.into());
        }
        info!(network = %net.name(), sandbox = %sandbox.container_id(), "sandbox connected");
        Ok(StatusCode::OK)
    })
    .await
}

/// Parses a static address of one family.
fn parse_address<T: std::str::FromStr>(text: &str, family: &str) -> ApiResult<T> {
    text.parse()
        .map_err(|_| ApiError::bad_request(format!("invalid {family} address {text:?}")))
}

/// `POST /networks/{id}/disconnect`: the sandbox leaves the network; its endpoint is removed.
pub(super) async fn disconnect(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let req: NetworkDisconnectRequest = parse_body(&body)?;
    let controller = state.controller();
    let net = find_network(controller, &id)?;
    let sandbox = find_sandbox(controller, &req.container)?;
    let ep = sandbox
        .endpoints()
        .into_iter()
        .find(|e| e.network_id() == net.id())
        .ok_or_else(|| {
            ApiError::forbidden(format!(
                "container {} is not connected to network {}",
                sandbox.container_id(),
                net.name()
            ))
        })?;
    detached(async move {
        ep.leave(&sandbox).await?;
        ep.delete(false).await?;
        info!(network = %net.name(), sandbox = %sandbox.container_id(), "sandbox disconnected");
        Ok(StatusCode::OK)
    })
    .await
}

/// `POST /networks/prune`: removes the networks no endpoint uses (never the predefined ones);
/// filters `label`, `label!` and `until`.
pub(super) async fn prune(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<NetworkPruneResponse>> {
    let filters = Filters::from_query(query.get("filters").map(String::as_str))?;
    filters.only(&["label", "label!", "until"])?;
    let until = filters.until()?;
    detached(async move {
        let mut deleted = Vec::new();
        for net in state.controller().networks() {
            let info = net.info();
            if PREDEFINED.contains(&info.name.as_str())
                || !net.endpoints().is_empty()
                || !filters.labels_match(&info.labels)
                || until.is_some_and(|t| crate::filters::created_after(&info.created, t))
            {
                continue;
            }
            match net.delete().await {
                Ok(()) => {
                    info!(network_id = %info.id, network_name = %info.name, "network pruned");
                    deleted.push(info.name);
                }
                // In use (an endpoint appeared, a configuration network with users) or gone.
                Err(e) if matches!(e.kind(), ErrorKind::Forbidden | ErrorKind::NotFound) => {}
                Err(e) => warn!(network = %info.name, error = %e, "prune network"),
            }
        }
        Ok(Json(NetworkPruneResponse {
            networks_deleted: deleted,
        }))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_dockers_rule() {
        assert!(valid_name("net1"));
        assert!(valid_name("my_net.v2-a"));
        assert!(!valid_name(""));
        assert!(!valid_name("-x"));
        assert!(!valid_name("a b"));
        assert!(!valid_name("a/b"));
        assert!(!valid_name("a:b"));
    }

    fn request(subnet: &str, range: &str, gateway: &str) -> NetworkCreateRequest {
        NetworkCreateRequest {
            name: "n".into(),
            ipam: Some(crate::model::IpamRequest {
                config: Some(vec![IpamConfig {
                    subnet: subnet.into(),
                    ip_range: range.into(),
                    gateway: gateway.into(),
                    ..IpamConfig::default()
                }]),
                ..Default::default()
            }),
            ..NetworkCreateRequest::default()
        }
    }

    #[test]
    fn a_valid_request_becomes_controller_options() {
        let (driver, name, options) =
            creation(request("10.9.0.0/16", "10.9.1.0/24", "10.9.0.254")).unwrap();
        assert_eq!((driver.as_str(), name.as_str()), ("bridge", "n"));
        let conf = &options.ipam.v4[0];
        assert_eq!(conf.preferred_pool, Some("10.9.0.0/16".parse().unwrap()));
        assert_eq!(conf.sub_pool, Some("10.9.1.0/24".parse().unwrap()));
        assert_eq!(conf.gateway, Some("10.9.0.254".parse().unwrap()));
    }

    #[test]
    fn bad_addresses_are_bad_requests() {
        for (subnet, range, gateway) in [
            ("10.9.0.0/33", "", ""),
            ("banana", "", ""),
            ("10.9.1.2/16", "", ""),
            ("10.9.0.0/16", "10.8.0.0/24", ""),
            ("10.9.0.0/16", "", "10.8.0.1"),
            ("", "10.9.0.0/24", ""),
            ("fd00::/64", "", ""),
        ] {
            let err = creation(request(subnet, range, gateway)).unwrap_err();
            assert_eq!(
                err.status,
                StatusCode::BAD_REQUEST,
                "{subnet} {range} {gateway}"
            );
        }
    }

    #[test]
    fn predefined_names_and_unsupported_modes_are_refused() {
        for (req, status) in [
            (
                NetworkCreateRequest {
                    name: "host".into(),
                    ..Default::default()
                },
                StatusCode::FORBIDDEN,
            ),
            (
                NetworkCreateRequest {
                    name: "x".into(),
                    scope: Some("swarm".into()),
                    ..Default::default()
                },
                StatusCode::BAD_REQUEST,
            ),
            (
                NetworkCreateRequest {
                    name: "x".into(),
                    ingress: Some(true),
                    ..Default::default()
                },
                StatusCode::FORBIDDEN,
            ),
            (NetworkCreateRequest::default(), StatusCode::BAD_REQUEST),
        ] {
            assert_eq!(creation(req.clone()).unwrap_err().status, status, "{req:?}");
        }
    }
}
