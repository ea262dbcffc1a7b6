//! [`RemoteDriver`]: a network driver that forwards every call to a plugin (libnetwork's
//! `drivers/remote`).

use std::collections::BTreeMap;
use std::net::IpAddr;

use async_trait::async_trait;
use ipnet::IpNet;
use libnetwork_driverapi::{
    Capability, CreateNetworkRequest, CreateNetworkResult, DiscoveryData, Driver,
    EndpointInterface, EndpointOptions, IpamData, JoinInfo, JoinInterface, JoinOptions, Labels,
    MacAddr, NETWORK_PLUGIN_ENDPOINT_TYPE, RouteType, Sandbox, Scope, StaticRoute,
};
use libnetwork_plugins::{CallOptions, Client, Plugin};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::{debug, info};

use crate::error::{Compensation, Error};
use crate::network_api::{
    self as api, EndpointInterfaceJson, EndpointRequest, JoinResponse, NetworkRequest,
};

/// Network driver calls report errors in `Err`; none is repeated once sent.
const CALL: CallOptions = CallOptions {
    error_field: Some("Err"),
    idempotent: false,
};

/// Calls that only read (`GetCapabilities`, `EndpointOperInfo`) may be repeated.
const READ: CallOptions = CallOptions {
    error_field: Some("Err"),
    idempotent: true,
};

/// The default sandbox interface prefix, for plugins that name none.
const DEFAULT_DST_PREFIX: &str = "eth";

/// A network driver served by a plugin. The driver keeps no state of its own: networks and
/// endpoints live in the plugin, and a failed call leaves none behind that the driver could
/// undo (see the crate doc).
#[derive(Debug, Clone)]
pub struct RemoteDriver {
    name: String,
    client: Client,
    capability: Capability,
}

impl RemoteDriver {
    /// The driver for an activated plugin: checks that it implements `NetworkDriver` and asks
    /// its capabilities.
    ///
    /// # Errors
    /// [`Error::Plugin`] with [`libnetwork_plugins::Error::NotImplements`], or the
    /// `GetCapabilities` call's error, [`Error::InvalidCapability`] for a scope other than
    /// `local`/`global`.
    pub async fn new(plugin: &Plugin) -> Result<Self, Error> {
        plugin.check_implements(NETWORK_PLUGIN_ENDPOINT_TYPE)?;
        Self::with_client(plugin.name(), plugin.client().clone()).await
    }

    /// The driver for the plugin `name` reached through `client` (activation done elsewhere).
    ///
    /// # Errors
    /// As [`RemoteDriver::new`], without the manifest check.
    pub async fn with_client(name: &str, client: Client) -> Result<Self, Error> {
        let caps: api::GetCapabilityResponse = client
            .call_without_args(&method("GetCapabilities"), READ)
            .await?;
        let capability = parse_capability(name, &caps)?;
        info!(
            plugin = name,
            data_scope = %capability.data_scope,
            connectivity_scope = %capability.connectivity_scope,
            "network plugin capabilities"
        );
        Ok(Self {
            name: name.to_owned(),
            client,
            capability,
        })
    }

    /// The plugin's name, which is the network type the driver serves.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Calls `NetworkDriver.<name>`.
    async fn call<R: DeserializeOwned>(
        &self,
        name: &str,
        args: &(impl Serialize + Sync),
        options: CallOptions,
    ) -> Result<R, libnetwork_plugins::Error> {
        debug!(plugin = %self.name, method = name, "calling network plugin");
        self.client.call(&method(name), args, options).await
    }

    /// Calls `NetworkDriver.<name>`; if its outcome is unknown, sends `undo` with
    /// `undo_args` and says so in the error.
    async fn call_or_undo<R: DeserializeOwned>(
        &self,
        name: &str,
        args: &(impl Serialize + Sync),
        undo: &str,
        undo_args: &(impl Serialize + Sync),
    ) -> Result<R, Error> {
        match self.call(name, args, CALL).await {
            Ok(answer) => Ok(answer),
            Err(e) if e.outcome_unknown() => Err(Error::OutcomeUnknown {
                source: e,
                compensation: self.undo(undo, undo_args).await,
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Sends an undo call, best effort.
    async fn undo(&self, name: &str, args: &(impl Serialize + Sync)) -> Compensation {
        debug!(plugin = %self.name, method = name, "undoing a plugin call");
        let error = self
            .call::<api::Response>(name, args, CALL)
            .await
            .err()
            .map(|e| Box::new(Error::Plugin(e)));
        Compensation {
            method: method(name),
            error,
        }
    }

    /// An unusable answer to `name`, after undoing it with `undo`.
    async fn invalid_answer(
        &self,
        name: &str,
        reason: String,
        undo: &str,
        undo_args: &(impl Serialize + Sync),
    ) -> Error {
        Error::InvalidAnswer {
            plugin: self.name.clone(),
            method: method(name),
            reason,
            compensation: Some(self.undo(undo, undo_args).await),
        }
    }

    fn driver_error(&self, e: impl Into<Error>) -> libnetwork_driverapi::Error {
        e.into().into_driver_error(&self.name)
    }
}

/// `NetworkDriver.<name>`.
fn method(name: &str) -> String {
    format!("{NETWORK_PLUGIN_ENDPOINT_TYPE}.{name}")
}

/// A scope named by a plugin.
fn parse_scope(plugin: &str, field: &'static str, got: &str) -> Result<Scope, Error> {
    match got {
        "local" => Ok(Scope::Local),
        "global" => Ok(Scope::Global),
        _ => Err(Error::InvalidCapability {
            plugin: plugin.to_owned(),
            field,
            got: got.to_owned(),
        }),
    }
}

/// libnetwork's capability rules: `Scope` must be `local` or `global`; an empty
/// `ConnectivityScope` is the data scope.
fn parse_capability(plugin: &str, caps: &api::GetCapabilityResponse) -> Result<Capability, Error> {
    let data_scope = parse_scope(plugin, "Scope", &caps.scope)?;
    let connectivity_scope = if caps.connectivity_scope.is_empty() {
        data_scope
    } else {
        parse_scope(plugin, "ConnectivityScope", &caps.connectivity_scope)?
    };
    Ok(Capability {
        data_scope,
        connectivity_scope,
    })
}

/// Applies what a plugin filled in of the interface, on a copy: an empty field leaves the
/// controller's value, the same value again is accepted, a different value for a field that is
/// set is refused.
fn apply_interface(
    current: &EndpointInterface,
    answer: &EndpointInterfaceJson,
) -> Result<EndpointInterface, ApplyError> {
    let mut updated = current.clone();
    if !answer.mac_address.is_empty() {
        let mac: MacAddr = answer
            .mac_address
            .parse()
            .map_err(|e| ApplyError::Invalid(format!("MacAddress: {e}")))?;
        if updated.mac != Some(mac) {
            updated.set_mac_address(mac).map_err(ApplyError::Conflict)?;
        }
    }
    for (field, text) in [
        ("Address", &answer.address),
        ("AddressIPv6", &answer.address_ipv6),
    ] {
        if text.is_empty() {
            continue;
        }
        let address: IpNet = text
            .parse()
            .map_err(|e| ApplyError::Invalid(format!("{field} {text:?}: {e}")))?;
        let slot = match address {
            IpNet::V4(_) => updated.address,
            IpNet::V6(_) => updated.address_ipv6,
        };
        if slot != Some(address) {
            updated
                .set_ip_address(address)
                .map_err(ApplyError::Conflict)?;
        }
    }
    Ok(updated)
}

/// Why an interface answer was not applied.
enum ApplyError {
    /// A field does not parse.
    Invalid(String),
    /// A field changes a set value.
    Conflict(libnetwork_driverapi::Error),
}

/// Reads a join answer into [`JoinInfo`].
fn parse_join(answer: &JoinResponse) -> Result<JoinInfo, String> {
    let interface = match &answer.interface_name {
        None => None,
        Some(names) if names.src_name.is_empty() => {
            return Err("InterfaceName has no SrcName".to_owned());
        }
        Some(names) => Some(JoinInterface::Host {
            src_name: names.src_name.clone(),
            dst_prefix: if names.dst_prefix.is_empty() {
                DEFAULT_DST_PREFIX.to_owned()
            } else {
                names.dst_prefix.clone()
            },
        }),
    };
    let gateway = parse_gateway("Gateway", &answer.gateway, false)?;
    let gateway_ipv6 = parse_gateway("GatewayIPv6", &answer.gateway_ipv6, true)?;
    let static_routes = answer
        .static_routes
        .iter()
        .map(|route| {
            let destination: IpNet = route
                .destination
                .parse()
                .map_err(|e| format!("static route destination {:?}: {e}", route.destination))?;
            match route.route_type {
                0 => {
                    let hop: IpAddr = route.next_hop.parse().map_err(|e| {
                        format!(
                            "static route {destination} next hop {:?}: {e}",
                            route.next_hop
                        )
                    })?;
                    Ok(StaticRoute {
                        destination,
                        route_type: RouteType::NextHop,
                        next_hop: Some(hop),
                    })
                }
                1 => Ok(StaticRoute {
                    destination,
                    route_type: RouteType::Connected,
                    next_hop: None,
                }),
                other => Err(format!(
                    "static route {destination}: route type {other} is neither 0 (next hop) nor 1 \
                     (connected)"
                )),
            }
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(JoinInfo {
        interface,
        gateway,
        gateway_ipv6,
        static_routes,
        disable_gateway_service: answer.disable_gateway_service,
        table_entries: Vec::new(),
    })
}

/// A gateway address of the right family, or none for an empty string.
fn parse_gateway(field: &str, text: &str, v6: bool) -> Result<Option<IpAddr>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    let ip: IpAddr = text.parse().map_err(|e| format!("{field} {text:?}: {e}"))?;
    if ip.is_ipv6() != v6 {
        return Err(format!("{field} {ip} is of the wrong ip version"));
    }
    Ok(Some(ip))
}

#[async_trait]
impl Driver for RemoteDriver {
    fn driver_type(&self) -> &str {
        &self.name
    }

    fn capability(&self) -> Capability {
        self.capability
    }

    fn is_built_in(&self) -> bool {
        false
    }

    async fn network_allocate(
        &self,
        network_id: &str,
        options: &Labels,
        ipv4: &[IpamData],
        ipv6: &[IpamData],
    ) -> Result<Labels, libnetwork_driverapi::Error> {
        let request = api::AllocateNetworkRequest {
            network_id: network_id.to_owned(),
            options: options.clone(),
            ipv4_data: ipv4.to_vec(),
            ipv6_data: ipv6.to_vec(),
        };
        let undo = NetworkRequest {
            network_id: network_id.to_owned(),
        };
        let answer: api::AllocateNetworkResponse = self
            .call_or_undo("AllocateNetwork", &request, "FreeNetwork", &undo)
            .await
            .map_err(|e| self.driver_error(e))?;
        Ok(answer.options)
    }

    async fn network_free(&self, network_id: &str) -> Result<(), libnetwork_driverapi::Error> {
        let request = NetworkRequest {
            network_id: network_id.to_owned(),
        };
        self.call::<api::Response>("FreeNetwork", &request, CALL)
            .await
            .map_err(|e| self.driver_error(e))?;
        Ok(())
    }

    async fn create_network(
        &self,
        request: &CreateNetworkRequest,
    ) -> Result<CreateNetworkResult, libnetwork_driverapi::Error> {
        let wire = api::CreateNetworkRequest {
            network_id: request.network_id.clone(),
            options: api::network_options(&request.options),
            ipv4_data: request.ipv4.clone(),
            ipv6_data: request.ipv6.clone(),
        };
        let undo = NetworkRequest {
            network_id: request.network_id.clone(),
        };
        self.call_or_undo::<api::Response>("CreateNetwork", &wire, "DeleteNetwork", &undo)
            .await
            .map_err(|e| self.driver_error(e))?;
        info!(plugin = %self.name, network_id = %request.network_id, "created network");
        Ok(CreateNetworkResult::default())
    }

    async fn delete_network(&self, network_id: &str) -> Result<(), libnetwork_driverapi::Error> {
        let request = NetworkRequest {
            network_id: network_id.to_owned(),
        };
        self.call::<api::Response>("DeleteNetwork", &request, CALL)
            .await
            .map_err(|e| self.driver_error(e))?;
        info!(plugin = %self.name, network_id, "deleted network");
        Ok(())
    }

    async fn create_endpoint(
        &self,
        network_id: &str,
        endpoint_id: &str,
        interface: &mut EndpointInterface,
        options: &EndpointOptions,
    ) -> Result<(), libnetwork_driverapi::Error> {
        let request = api::CreateEndpointRequest {
            network_id: network_id.to_owned(),
            endpoint_id: endpoint_id.to_owned(),
            interface: EndpointInterfaceJson::from(&*interface),
            options: api::endpoint_options(options),
        };
        let undo = EndpointRequest {
            network_id: network_id.to_owned(),
            endpoint_id: endpoint_id.to_owned(),
        };
        let answer: api::CreateEndpointResponse = self
            .call_or_undo("CreateEndpoint", &request, "DeleteEndpoint", &undo)
            .await
            .map_err(|e| self.driver_error(e))?;

        if let Some(returned) = &answer.interface {
            match apply_interface(interface, returned) {
                Ok(updated) => *interface = updated,
                Err(ApplyError::Invalid(reason)) => {
                    let e = self
                        .invalid_answer("CreateEndpoint", reason, "DeleteEndpoint", &undo)
                        .await;
                    return Err(self.driver_error(e));
                }
                Err(ApplyError::Conflict(source)) => {
                    let e = Error::InterfaceConflict {
                        plugin: self.name.clone(),
                        method: method("CreateEndpoint"),
                        source: Box::new(source),
                        compensation: self.undo("DeleteEndpoint", &undo).await,
                    };
                    return Err(self.driver_error(e));
                }
            }
        }
        debug!(plugin = %self.name, network_id, endpoint_id, "created endpoint");
        Ok(())
    }

    async fn delete_endpoint(
        &self,
        network_id: &str,
        endpoint_id: &str,
    ) -> Result<(), libnetwork_driverapi::Error> {
        let request = EndpointRequest {
            network_id: network_id.to_owned(),
            endpoint_id: endpoint_id.to_owned(),
        };
        self.call::<api::Response>("DeleteEndpoint", &request, CALL)
            .await
            .map_err(|e| self.driver_error(e))?;
        Ok(())
    }

    async fn endpoint_oper_info(
        &self,
        network_id: &str,
        endpoint_id: &str,
    ) -> Result<BTreeMap<String, serde_json::Value>, libnetwork_driverapi::Error> {
        let request = EndpointRequest {
            network_id: network_id.to_owned(),
            endpoint_id: endpoint_id.to_owned(),
        };
        let answer: api::EndpointInfoResponse = self
            .call("EndpointOperInfo", &request, READ)
            .await
            .map_err(|e| self.driver_error(e))?;
        Ok(answer.value)
    }

    async fn join(
        &self,
        network_id: &str,
        endpoint_id: &str,
        sandbox: &Sandbox,
        options: &JoinOptions,
    ) -> Result<JoinInfo, libnetwork_driverapi::Error> {
        let request = api::JoinRequest {
            network_id: network_id.to_owned(),
            endpoint_id: endpoint_id.to_owned(),
            sandbox_key: sandbox.key().display().to_string(),
            options: api::join_options(&options.driver_options),
        };
        let undo = EndpointRequest {
            network_id: network_id.to_owned(),
            endpoint_id: endpoint_id.to_owned(),
        };
        let answer: JoinResponse = self
            .call_or_undo("Join", &request, "Leave", &undo)
            .await
            .map_err(|e| self.driver_error(e))?;
        match parse_join(&answer) {
            Ok(info) => Ok(info),
            Err(reason) => {
                let e = self.invalid_answer("Join", reason, "Leave", &undo).await;
                Err(self.driver_error(e))
            }
        }
    }

    async fn leave(
        &self,
        network_id: &str,
        endpoint_id: &str,
    ) -> Result<(), libnetwork_driverapi::Error> {
        let request = EndpointRequest {
            network_id: network_id.to_owned(),
            endpoint_id: endpoint_id.to_owned(),
        };
        self.call::<api::Response>("Leave", &request, CALL)
            .await
            .map_err(|e| self.driver_error(e))?;
        Ok(())
    }

    async fn program_external_connectivity(
        &self,
        network_id: &str,
        endpoint_id: &str,
        options: &EndpointOptions,
    ) -> Result<(), libnetwork_driverapi::Error> {
        let request = api::ProgramExternalConnectivityRequest {
            network_id: network_id.to_owned(),
            endpoint_id: endpoint_id.to_owned(),
            options: api::endpoint_options(options),
        };
        let undo = EndpointRequest {
            network_id: network_id.to_owned(),
            endpoint_id: endpoint_id.to_owned(),
        };
        let result = self
            .call_or_undo::<api::Response>(
                "ProgramExternalConnectivity",
                &request,
                "RevokeExternalConnectivity",
                &undo,
            )
            .await;
        match result {
            // Plugins written before the method existed answer 404: nothing to program.
            Err(Error::Plugin(e)) if e.is_method_not_found() => Ok(()),
            Err(e) => Err(self.driver_error(e)),
            Ok(_) => Ok(()),
        }
    }

    async fn revoke_external_connectivity(
        &self,
        network_id: &str,
        endpoint_id: &str,
    ) -> Result<(), libnetwork_driverapi::Error> {
        let request = EndpointRequest {
            network_id: network_id.to_owned(),
            endpoint_id: endpoint_id.to_owned(),
        };
        match self
            .call::<api::Response>("RevokeExternalConnectivity", &request, CALL)
            .await
        {
            Err(e) if e.is_method_not_found() => Ok(()),
            Err(e) => Err(self.driver_error(e)),
            Ok(_) => Ok(()),
        }
    }

    async fn discover_new(&self, data: &DiscoveryData) -> Result<(), libnetwork_driverapi::Error> {
        self.discover("DiscoverNew", data).await
    }

    async fn discover_delete(
        &self,
        data: &DiscoveryData,
    ) -> Result<(), libnetwork_driverapi::Error> {
        self.discover("DiscoverDelete", data).await
    }
}

impl RemoteDriver {
    /// Forwards node discovery notifications; the others are not for plugins (libnetwork).
    async fn discover(
        &self,
        name: &str,
        data: &DiscoveryData,
    ) -> Result<(), libnetwork_driverapi::Error> {
        let DiscoveryData::NodeDiscovery(node) = data else {
            return Ok(());
        };
        let notification = api::DiscoveryNotification {
            discovery_type: data.discovery_type(),
            discovery_data: serde_json::json!({
                "Address": node.address,
                "BindAddress": node.bind_address,
                "Self": node.self_node,
            }),
        };
        self.call::<api::Response>(name, &notification, CALL)
            .await
            .map_err(|e| self.driver_error(e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network_api::{InterfaceName, StaticRouteJson};

    fn caps(scope: &str, connectivity: &str) -> api::GetCapabilityResponse {
        api::GetCapabilityResponse {
            err: String::new(),
            scope: scope.into(),
            connectivity_scope: connectivity.into(),
        }
    }

    #[test]
    fn connectivity_scope_defaults_to_the_data_scope() {
        let c = parse_capability("p", &caps("global", "")).unwrap();
        assert_eq!(c, Capability::GLOBAL);
        let c = parse_capability("p", &caps("local", "global")).unwrap();
        assert_eq!(c.data_scope, Scope::Local);
        assert_eq!(c.connectivity_scope, Scope::Global);
    }

    #[test]
    fn scopes_other_than_local_and_global_are_refused() {
        for (scope, connectivity, field) in [
            ("", "", "Scope"),
            ("fake", "", "Scope"),
            ("Local", "", "Scope"),
            ("local", "swarm", "ConnectivityScope"),
        ] {
            let err = parse_capability("p", &caps(scope, connectivity)).unwrap_err();
            assert!(
                matches!(&err, Error::InvalidCapability { field: f, .. } if *f == field),
                "{scope}/{connectivity}: {err}"
            );
        }
    }

    #[test]
    fn an_interface_answer_fills_unset_fields_and_accepts_echoes() {
        let current = EndpointInterface {
            address: Some("10.0.0.2/24".parse().unwrap()),
            ..Default::default()
        };
        let answer = EndpointInterfaceJson {
            address: "10.0.0.2/24".into(),
            address_ipv6: "fd00::2/64".into(),
            mac_address: "02:42:0a:00:00:02".into(),
        };
        let Ok(updated) = apply_interface(&current, &answer) else {
            panic!("answer refused");
        };
        assert_eq!(updated.address, current.address);
        assert_eq!(updated.address_ipv6, Some("fd00::2/64".parse().unwrap()));
        assert_eq!(updated.mac.unwrap().to_string(), "02:42:0a:00:00:02");
        let Ok(same) = apply_interface(&current, &EndpointInterfaceJson::default()) else {
            panic!("empty answer refused");
        };
        assert_eq!(same, current);
    }

    #[test]
    fn an_interface_answer_changing_a_set_field_or_unparsable_is_refused() {
        let current = EndpointInterface {
            address: Some("10.0.0.2/24".parse().unwrap()),
            ..Default::default()
        };
        let change = EndpointInterfaceJson {
            address: "10.0.0.3/24".into(),
            ..Default::default()
        };
        assert!(matches!(
            apply_interface(&current, &change),
            Err(ApplyError::Conflict(_))
        ));
        for bad in [
            EndpointInterfaceJson {
                mac_address: "zz".into(),
                ..Default::default()
            },
            EndpointInterfaceJson {
                address_ipv6: "fd00::2".into(),
                ..Default::default()
            },
        ] {
            assert!(matches!(
                apply_interface(&current, &bad),
                Err(ApplyError::Invalid(_))
            ));
        }
    }

    fn join_answer() -> JoinResponse {
        JoinResponse {
            interface_name: Some(InterfaceName {
                src_name: "veth0".into(),
                dst_prefix: String::new(),
                dst_name: String::new(),
            }),
            gateway: "10.0.0.1".into(),
            gateway_ipv6: "fd00::1".into(),
            static_routes: vec![
                StaticRouteJson {
                    destination: "10.9.0.0/16".into(),
                    route_type: 0,
                    next_hop: "10.0.0.254".into(),
                },
                StaticRouteJson {
                    destination: "192.0.2.0/24".into(),
                    route_type: 1,
                    next_hop: String::new(),
                },
            ],
            disable_gateway_service: true,
            ..Default::default()
        }
    }

    #[test]
    fn a_join_answer_becomes_join_info() {
        let info = parse_join(&join_answer()).unwrap();
        assert_eq!(
            info.interface,
            Some(JoinInterface::Host {
                src_name: "veth0".into(),
                dst_prefix: "eth".into()
            })
        );
        assert_eq!(info.gateway, Some("10.0.0.1".parse().unwrap()));
        assert_eq!(info.gateway_ipv6, Some("fd00::1".parse().unwrap()));
        assert_eq!(info.static_routes[0].route_type, RouteType::NextHop);
        assert_eq!(
            info.static_routes[0].next_hop,
            Some("10.0.0.254".parse().unwrap())
        );
        assert_eq!(info.static_routes[1].route_type, RouteType::Connected);
        assert!(info.disable_gateway_service);
        assert_eq!(
            parse_join(&JoinResponse::default()).unwrap(),
            JoinInfo::default()
        );
    }

    #[test]
    fn unusable_join_answers_are_refused_with_the_reason() {
        type Change = Box<dyn Fn(&mut JoinResponse)>;
        let cases: Vec<(Change, &str)> = vec![
            (
                Box::new(|a| a.gateway = "bogus".into()),
                "Gateway \"bogus\"",
            ),
            (
                Box::new(|a| a.gateway = "fd00::1".into()),
                "wrong ip version",
            ),
            (
                Box::new(|a| a.gateway_ipv6 = "10.0.0.1".into()),
                "wrong ip version",
            ),
            (
                Box::new(|a| a.interface_name.as_mut().unwrap().src_name.clear()),
                "no SrcName",
            ),
            (
                Box::new(|a| a.static_routes[0].route_type = 7),
                "route type 7",
            ),
            (
                Box::new(|a| a.static_routes[0].next_hop.clear()),
                "next hop",
            ),
            (
                Box::new(|a| a.static_routes[1].destination = "x".into()),
                "destination",
            ),
        ];
        for (change, needle) in cases {
            let mut answer = join_answer();
            change(&mut answer);
            let reason = parse_join(&answer).unwrap_err();
            assert!(reason.contains(needle), "{needle}: {reason}");
        }
    }
}
