//! The JSON of the `NetworkDriver` plugin protocol (libnetwork's `drivers/remote/api`), with
//! Docker's field names, and the conversions from the driver contract's typed options.
//!
//! Requests are written the way Docker writes them (every field present, unset addresses as
//! empty strings, empty lists as `[]`). Answers are read the way Go reads them: missing or
//! `null` fields are empty, unknown fields are ignored. Every answer may carry `Err`, the
//! plugin's error message.

use std::collections::BTreeMap;

use base64::Engine;
use libnetwork_driverapi::netlabel;
use libnetwork_driverapi::{EndpointInterface, EndpointOptions, IpamData, Labels, NetworkOptions};
use libnetwork_plugins::json::null_as_default;
use libnetwork_types::{PortBinding, TransportPort};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A free-form JSON object (Go's `map[string]interface{}`).
pub type Object = Map<String, Value>;

/// An answer with nothing but the error field (`DeleteNetwork`, `Leave`, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// The plugin's error message; empty on success.
    #[serde(rename = "Err", default, deserialize_with = "null_as_default")]
    pub err: String,
}

/// The answer to `GetCapabilities`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetCapabilityResponse {
    /// The plugin's error message.
    #[serde(rename = "Err", default, deserialize_with = "null_as_default")]
    pub err: String,
    /// Data scope: `local` or `global`.
    #[serde(rename = "Scope", default, deserialize_with = "null_as_default")]
    pub scope: String,
    /// Connectivity scope: `local`, `global`, or empty for the data scope.
    #[serde(
        rename = "ConnectivityScope",
        default,
        deserialize_with = "null_as_default"
    )]
    pub connectivity_scope: String,
}

/// `AllocateNetwork` (manager side of a global network).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocateNetworkRequest {
    /// The network.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// Driver options.
    #[serde(rename = "Options")]
    pub options: Labels,
    /// IPv4 pools.
    #[serde(rename = "IPv4Data")]
    pub ipv4_data: Vec<IpamData>,
    /// IPv6 pools.
    #[serde(rename = "IPv6Data")]
    pub ipv6_data: Vec<IpamData>,
}

/// The answer to `AllocateNetwork`: options to pass to `CreateNetwork` on every node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocateNetworkResponse {
    /// The plugin's error message.
    #[serde(rename = "Err", default, deserialize_with = "null_as_default")]
    pub err: String,
    /// The options.
    #[serde(rename = "Options", default, deserialize_with = "null_as_default")]
    pub options: Labels,
}

/// A request naming only a network (`DeleteNetwork`, `FreeNetwork`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkRequest {
    /// The network.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
}

/// `CreateNetwork`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CreateNetworkRequest {
    /// The network.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// Options: `com.docker.network.generic` (the driver options),
    /// `com.docker.network.enable_ipv6`, and `com.docker.network.internal` when set.
    #[serde(rename = "Options")]
    pub options: Object,
    /// IPv4 pools.
    #[serde(rename = "IPv4Data")]
    pub ipv4_data: Vec<IpamData>,
    /// IPv6 pools.
    #[serde(rename = "IPv6Data")]
    pub ipv6_data: Vec<IpamData>,
}

/// The interface of an endpoint as text: CIDR addresses and a MAC, empty when unset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointInterfaceJson {
    /// IPv4 address with prefix length (`10.0.0.2/24`).
    #[serde(rename = "Address", default, deserialize_with = "null_as_default")]
    pub address: String,
    /// IPv6 address with prefix length.
    #[serde(rename = "AddressIPv6", default, deserialize_with = "null_as_default")]
    pub address_ipv6: String,
    /// MAC address (`02:42:0a:00:00:02`).
    #[serde(rename = "MacAddress", default, deserialize_with = "null_as_default")]
    pub mac_address: String,
}

impl From<&EndpointInterface> for EndpointInterfaceJson {
    fn from(iface: &EndpointInterface) -> Self {
        let text = |v: Option<String>| v.unwrap_or_default();
        Self {
            address: text(iface.address.map(|a| a.to_string())),
            address_ipv6: text(iface.address_ipv6.map(|a| a.to_string())),
            mac_address: text(iface.mac.map(|m| m.to_string())),
        }
    }
}

/// `CreateEndpoint`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CreateEndpointRequest {
    /// The network.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// The endpoint.
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    /// What the controller set of the interface.
    #[serde(rename = "Interface")]
    pub interface: EndpointInterfaceJson,
    /// Endpoint options (see [`endpoint_options`]).
    #[serde(rename = "Options")]
    pub options: Object,
}

/// The answer to `CreateEndpoint`: what the plugin fills in of the interface.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateEndpointResponse {
    /// The plugin's error message.
    #[serde(rename = "Err", default, deserialize_with = "null_as_default")]
    pub err: String,
    /// The interface; `null` or empty fields leave the controller's values.
    #[serde(rename = "Interface", default)]
    pub interface: Option<EndpointInterfaceJson>,
}

/// A request naming an endpoint: `DeleteEndpoint`, `EndpointOperInfo`, `Leave` and
/// `RevokeExternalConnectivity` (Docker has one type of this shape per method).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointRequest {
    /// The network.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// The endpoint.
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
}

/// The answer to `EndpointOperInfo`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EndpointInfoResponse {
    /// The plugin's error message.
    #[serde(rename = "Err", default, deserialize_with = "null_as_default")]
    pub err: String,
    /// Operational data by key.
    #[serde(rename = "Value", default, deserialize_with = "null_as_default")]
    pub value: BTreeMap<String, Value>,
}

/// `Join`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JoinRequest {
    /// The network.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// The endpoint.
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    /// The sandbox's namespace file.
    #[serde(rename = "SandboxKey")]
    pub sandbox_key: String,
    /// Join options (the driver options).
    #[serde(rename = "Options")]
    pub options: Object,
}

/// The names of the interface a join hands over.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceName {
    /// Its name in the host namespace.
    #[serde(rename = "SrcName", default, deserialize_with = "null_as_default")]
    pub src_name: String,
    /// The prefix of its name in the sandbox (`eth`).
    #[serde(rename = "DstPrefix", default, deserialize_with = "null_as_default")]
    pub dst_prefix: String,
    /// An exact name in the sandbox, sent by newer plugins; not used (the controller numbers
    /// interfaces after the prefix).
    #[serde(
        rename = "DstName",
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub dst_name: String,
}

/// A static route in a join answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaticRouteJson {
    /// The destination (CIDR).
    #[serde(rename = "Destination", default, deserialize_with = "null_as_default")]
    pub destination: String,
    /// 0: through `NextHop`; 1: directly on the interface.
    #[serde(rename = "RouteType", default, deserialize_with = "null_as_default")]
    pub route_type: i64,
    /// The next hop address, for route type 0.
    #[serde(rename = "NextHop", default, deserialize_with = "null_as_default")]
    pub next_hop: String,
}

/// The answer to `Join`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinResponse {
    /// The plugin's error message.
    #[serde(rename = "Err", default, deserialize_with = "null_as_default")]
    pub err: String,
    /// The interface to move into the sandbox; `null` for none.
    #[serde(rename = "InterfaceName", default)]
    pub interface_name: Option<InterfaceName>,
    /// IPv4 default gateway, empty for none.
    #[serde(rename = "Gateway", default, deserialize_with = "null_as_default")]
    pub gateway: String,
    /// IPv6 default gateway, empty for none.
    #[serde(rename = "GatewayIPv6", default, deserialize_with = "null_as_default")]
    pub gateway_ipv6: String,
    /// Extra routes.
    #[serde(rename = "StaticRoutes", default, deserialize_with = "null_as_default")]
    pub static_routes: Vec<StaticRouteJson>,
    /// The plugin provides no default gateway service.
    #[serde(
        rename = "DisableGatewayService",
        default,
        deserialize_with = "null_as_default"
    )]
    pub disable_gateway_service: bool,
}

/// `ProgramExternalConnectivity`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProgramExternalConnectivityRequest {
    /// The network.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// The endpoint.
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    /// Endpoint options (see [`endpoint_options`]).
    #[serde(rename = "Options")]
    pub options: Object,
}

/// `DiscoverNew` / `DiscoverDelete`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DiscoveryNotification {
    /// libnetwork's discovery type (1: node discovery).
    #[serde(rename = "DiscoveryType")]
    pub discovery_type: u8,
    /// The payload; for node discovery `{"Address", "BindAddress", "Self"}`.
    #[serde(rename = "DiscoveryData")]
    pub discovery_data: Value,
}

/// The `Options` of `CreateNetwork`, as Docker builds them: the driver options under
/// `com.docker.network.generic`, `com.docker.network.enable_ipv6`, and
/// `com.docker.network.internal` for internal networks. Labels are not sent.
pub fn network_options(options: &NetworkOptions) -> Object {
    let mut map = Object::new();
    map.insert(
        netlabel::GENERIC_DATA.to_owned(),
        labels_value(&options.driver_options),
    );
    map.insert(
        netlabel::ENABLE_IPV6.to_owned(),
        Value::Bool(options.enable_ipv6),
    );
    if options.internal {
        map.insert(netlabel::INTERNAL.to_owned(), Value::Bool(true));
    }
    map
}

/// The `Options` of `CreateEndpoint` and `ProgramExternalConnectivity`, as Docker builds them:
/// each driver option at the top level, `com.docker.network.endpoint.exposedports` and
/// `com.docker.network.portmap` (always, `[]` when empty, with numeric protocols), and
/// `com.docker.network.endpoint.macaddress` when a MAC was asked for (base64 of the six
/// bytes: Go encodes its `net.HardwareAddr` as a byte slice).
pub fn endpoint_options(options: &EndpointOptions) -> Object {
    let mut map: Object = options
        .driver_options
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let exposed: Vec<Value> = options.exposed_ports.iter().map(transport_port).collect();
    map.insert(netlabel::EXPOSED_PORTS.to_owned(), Value::Array(exposed));
    let bindings: Vec<Value> = options.port_bindings.iter().map(port_binding).collect();
    map.insert(netlabel::PORT_MAP.to_owned(), Value::Array(bindings));
    if let Some(mac) = options.mac_address {
        let encoded = base64::engine::general_purpose::STANDARD.encode(mac.0);
        map.insert(netlabel::MAC_ADDRESS.to_owned(), Value::String(encoded));
    }
    map
}

/// The `Options` of `Join`: the driver options at the top level.
pub fn join_options(driver_options: &Labels) -> Object {
    driver_options
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect()
}

/// A string map as a JSON object.
fn labels_value(labels: &Labels) -> Value {
    Value::Object(
        labels
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

/// libnetwork's `types.TransportPort` JSON: the protocol as its number.
fn transport_port(port: &TransportPort) -> Value {
    serde_json::json!({ "Proto": port.proto.number(), "Port": port.port })
}

/// libnetwork's `types.PortBinding` JSON: numeric protocol, addresses as text (empty when
/// unset).
fn port_binding(binding: &PortBinding) -> Value {
    let ip = |ip: Option<std::net::IpAddr>| ip.map(|ip| ip.to_string()).unwrap_or_default();
    serde_json::json!({
        "Proto": binding.proto.number(),
        "IP": ip(binding.ip),
        "Port": binding.port,
        "HostIP": ip(binding.host_ip),
        "HostPort": binding.host_port,
        "HostPortEnd": binding.host_port_end,
    })
}

#[cfg(test)]
mod tests {
    use libnetwork_types::{MacAddr, Protocol};
    use serde_json::json;

    use super::*;

    fn to_json(v: &impl Serialize) -> Value {
        serde_json::to_value(v).unwrap()
    }

    #[test]
    fn create_network_is_written_with_dockers_names_and_options() {
        let mut driver_options = Labels::new();
        driver_options.insert("vlan".into(), "42".into());
        let request = CreateNetworkRequest {
            network_id: "n1".into(),
            options: network_options(&NetworkOptions {
                driver_options,
                enable_ipv6: false,
                internal: true,
                ..Default::default()
            }),
            ipv4_data: vec![IpamData {
                address_space: "LocalDefault".into(),
                pool: "10.30.30.0/23".parse().unwrap(),
                gateway: Some("10.30.30.1/23".parse().unwrap()),
                aux_addresses: BTreeMap::new(),
            }],
            ipv6_data: vec![],
        };
        assert_eq!(
            to_json(&request),
            json!({
                "NetworkID": "n1",
                "Options": {
                    "com.docker.network.generic": {"vlan": "42"},
                    "com.docker.network.enable_ipv6": false,
                    "com.docker.network.internal": true
                },
                "IPv4Data": [{
                    "AddressSpace": "LocalDefault",
                    "Gateway": "10.30.30.1/23",
                    "Pool": "10.30.30.0/23"
                }],
                "IPv6Data": []
            })
        );
        let plain = network_options(&NetworkOptions::default());
        assert_eq!(
            Value::Object(plain),
            json!({"com.docker.network.generic": {}, "com.docker.network.enable_ipv6": false})
        );
    }

    #[test]
    fn create_endpoint_sends_unset_fields_as_empty_strings_and_dockers_options() {
        let iface = EndpointInterface {
            address: Some("10.30.30.32/23".parse().unwrap()),
            ..Default::default()
        };
        let mut driver_options = Labels::new();
        driver_options.insert("com.example.tag".into(), "blue".into());
        let options = EndpointOptions {
            mac_address: Some(MacAddr([0x02, 0x42, 0xac, 0x11, 0x00, 0x02])),
            exposed_ports: vec![TransportPort {
                proto: Protocol::Tcp,
                port: 80,
            }],
            port_bindings: vec![PortBinding {
                proto: Protocol::Udp,
                ip: None,
                port: 53,
                host_ip: Some("127.0.0.1".parse().unwrap()),
                host_port: 5353,
                host_port_end: 0,
            }],
            driver_options,
        };
        let request = CreateEndpointRequest {
            network_id: "n1".into(),
            endpoint_id: "e1".into(),
            interface: EndpointInterfaceJson::from(&iface),
            options: endpoint_options(&options),
        };
        assert_eq!(
            to_json(&request),
            json!({
                "NetworkID": "n1",
                "EndpointID": "e1",
                "Interface": {"Address": "10.30.30.32/23", "AddressIPv6": "", "MacAddress": ""},
                "Options": {
                    "com.example.tag": "blue",
                    "com.docker.network.endpoint.exposedports": [{"Proto": 6, "Port": 80}],
                    "com.docker.network.portmap": [{
                        "Proto": 17, "IP": "", "Port": 53,
                        "HostIP": "127.0.0.1", "HostPort": 5353, "HostPortEnd": 0
                    }],
                    "com.docker.network.endpoint.macaddress": "AkKsEQAC"
                }
            })
        );
        assert_eq!(
            Value::Object(endpoint_options(&EndpointOptions::default())),
            json!({
                "com.docker.network.endpoint.exposedports": [],
                "com.docker.network.portmap": []
            })
        );
    }

    #[test]
    fn endpoint_join_and_discovery_requests_use_dockers_names() {
        let ep = EndpointRequest {
            network_id: "n".into(),
            endpoint_id: "e".into(),
        };
        assert_eq!(to_json(&ep), json!({"NetworkID": "n", "EndpointID": "e"}));
        let mut opts = Labels::new();
        opts.insert("k".into(), "v".into());
        let join = JoinRequest {
            network_id: "n".into(),
            endpoint_id: "e".into(),
            sandbox_key: "/var/run/docker/netns/fc2ac21230fc".into(),
            options: join_options(&opts),
        };
        assert_eq!(
            to_json(&join),
            json!({
                "NetworkID": "n", "EndpointID": "e",
                "SandboxKey": "/var/run/docker/netns/fc2ac21230fc",
                "Options": {"k": "v"}
            })
        );
        assert_eq!(
            to_json(&NetworkRequest {
                network_id: "n".into()
            }),
            json!({"NetworkID": "n"})
        );
        let alloc = AllocateNetworkRequest {
            network_id: "n".into(),
            ..Default::default()
        };
        assert_eq!(
            to_json(&alloc),
            json!({"NetworkID": "n", "Options": {}, "IPv4Data": [], "IPv6Data": []})
        );
        let notification = DiscoveryNotification {
            discovery_type: 1,
            discovery_data: json!({"Address": "192.0.2.1", "BindAddress": "0.0.0.0", "Self": true}),
        };
        assert_eq!(
            to_json(&notification),
            json!({
                "DiscoveryType": 1,
                "DiscoveryData": {"Address": "192.0.2.1", "BindAddress": "0.0.0.0", "Self": true}
            })
        );
    }

    #[test]
    fn answers_are_read_like_go_reads_them() {
        let caps: GetCapabilityResponse =
            serde_json::from_value(json!({"Scope": "local", "ConnectivityScope": "global"}))
                .unwrap();
        assert_eq!(caps.scope, "local");
        assert_eq!(caps.connectivity_scope, "global");
        assert_eq!(caps.err, "");

        let join: JoinResponse = serde_json::from_value(json!({
            "InterfaceName": {"SrcName": "veth1", "DstPrefix": "eth"},
            "Gateway": "10.0.0.1",
            "GatewayIPv6": null,
            "StaticRoutes": [{"Destination": "10.1.0.0/16", "RouteType": 0, "NextHop": "10.0.0.9"}],
            "DisableGatewayService": true,
            "SomethingNew": 1
        }))
        .unwrap();
        assert_eq!(
            join.interface_name,
            Some(InterfaceName {
                src_name: "veth1".into(),
                dst_prefix: "eth".into(),
                dst_name: String::new()
            })
        );
        assert_eq!(join.gateway, "10.0.0.1");
        assert_eq!(join.gateway_ipv6, "");
        assert_eq!(join.static_routes[0].next_hop, "10.0.0.9");
        assert!(join.disable_gateway_service);

        let empty: JoinResponse = serde_json::from_value(json!({})).unwrap();
        assert_eq!(empty, JoinResponse::default());
        let ep: CreateEndpointResponse =
            serde_json::from_value(json!({"Interface": {"MacAddress": "02:42:0a:00:00:09"}}))
                .unwrap();
        assert_eq!(
            ep.interface.unwrap().mac_address,
            "02:42:0a:00:00:09".to_owned()
        );
        let ep: CreateEndpointResponse =
            serde_json::from_value(json!({"Interface": null, "Err": null})).unwrap();
        assert_eq!(ep, CreateEndpointResponse::default());
        let info: EndpointInfoResponse =
            serde_json::from_value(json!({"Value": {"id": "x", "n": 2}})).unwrap();
        assert_eq!(info.value["n"], json!(2));
        let alloc: AllocateNetworkResponse =
            serde_json::from_value(json!({"Options": {"vni": "4096"}})).unwrap();
        assert_eq!(alloc.options["vni"], "4096");
    }
}
