//! Well-known keys of option maps, driver options and labels (libnetwork's `netlabel`), plus
//! the bridge driver's label keys (libnetwork's `drivers/bridge/labels.go`), and the helpers
//! that split a `key=value` label.

/// Prefix of every key libnetwork defines.
pub const PREFIX: &str = "com.docker.network";

/// Prefix of driver option keys.
pub const DRIVER_PREFIX: &str = "com.docker.network.driver";

/// Prefix of keys that only the daemon passes to drivers (never accepted from users).
pub const DRIVER_PRIVATE_PREFIX: &str = "com.docker.network.driver.private";

/// Key of a driver's generic (structured) configuration.
pub const GENERIC_DATA: &str = "com.docker.network.generic";

/// Key of an endpoint's port bindings.
pub const PORT_MAP: &str = "com.docker.network.portmap";

/// Key of an endpoint's requested MAC address.
pub const MAC_ADDRESS: &str = "com.docker.network.endpoint.macaddress";

/// Key of an endpoint's exposed ports.
pub const EXPOSED_PORTS: &str = "com.docker.network.endpoint.exposedports";

/// Key of an endpoint's DNS servers.
pub const DNS_SERVERS: &str = "com.docker.network.endpoint.dnsservers";

/// Key turning IPv6 on for a network (`true`/`false`).
pub const ENABLE_IPV6: &str = "com.docker.network.enable_ipv6";

/// Key of a network's MTU (driver option, an integer).
pub const DRIVER_MTU: &str = "com.docker.network.driver.mtu";

/// Key of the interface the overlay driver binds its VXLAN traffic to.
pub const OVERLAY_BIND_INTERFACE: &str = "com.docker.network.driver.overlay.bind_interface";

/// Key of the overlay driver's neighbour address.
pub const OVERLAY_NEIGHBOR_IP: &str = "com.docker.network.driver.overlay.neighbor_ip";

/// Key of the VXLAN ids of an overlay network (comma-separated).
pub const OVERLAY_VXLAN_ID_LIST: &str = "com.docker.network.driver.overlay.vxlanid_list";

/// Key of a network's gateway (also the value that marks a gateway address request to IPAM).
pub const GATEWAY: &str = "com.docker.network.gateway";

/// Key making a network internal: no traffic to or from outside it (`true`/`false`).
pub const INTERNAL: &str = "com.docker.network.internal";

/// Key of the prefix of container interface names (`eth` by default).
pub const CONTAINER_IFACE_PREFIX: &str = "com.docker.network.container_iface_prefix";

/// Key of the host address used as source of the network's outgoing traffic (SNAT instead of
/// masquerade).
pub const HOST_IP: &str = "com.docker.network.host_ipv4";

/// Bridge driver: the bridge interface's name.
pub const BRIDGE_NAME: &str = "com.docker.network.bridge.name";

/// Bridge driver: masquerade outgoing traffic (`true`/`false`).
pub const BRIDGE_ENABLE_IP_MASQUERADE: &str = "com.docker.network.bridge.enable_ip_masquerade";

/// Bridge driver: allow traffic between containers of the network (`true`/`false`).
pub const BRIDGE_ENABLE_ICC: &str = "com.docker.network.bridge.enable_icc";

/// Bridge driver: give the bridge no IPv4 address (`true`/`false`).
pub const BRIDGE_INHIBIT_IPV4: &str = "com.docker.network.bridge.inhibit_ipv4";

/// Bridge driver: the network is the default bridge, `docker0` (`true`/`false`).
pub const BRIDGE_DEFAULT_BRIDGE: &str = "com.docker.network.bridge.default_bridge";

/// Bridge driver: the host address published ports bind to by default.
pub const BRIDGE_HOST_BINDING_IPV4: &str = "com.docker.network.bridge.host_binding_ipv4";

/// Splits a `key=value` label at its first `=`: the value may contain `=`, and a label
/// without one is all key, with an empty value.
pub fn key_value(label: &str) -> (&str, &str) {
    label.split_once('=').unwrap_or((label, ""))
}

/// The key of a `key=value` label (see [`key_value`]).
pub fn key(label: &str) -> &str {
    key_value(label).0
}

/// The value of a `key=value` label (see [`key_value`]).
pub fn value(label: &str) -> &str {
    key_value(label).1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_split_at_the_first_equals_sign() {
        let cases = [
            ("name=value", "name", "value"),
            ("name=value=another", "name", "value=another"),
            ("name=", "name", ""),
            ("name", "name", ""),
            ("=value", "", "value"),
            ("", "", ""),
            (
                "com.docker.network.driver.mtu=1450",
                "com.docker.network.driver.mtu",
                "1450",
            ),
        ];
        for (label, k, v) in cases {
            assert_eq!(key_value(label), (k, v), "{label:?}");
            assert_eq!(key(label), k, "{label:?}");
            assert_eq!(value(label), v, "{label:?}");
        }
    }

    #[test]
    fn keys_sit_under_their_prefixes() {
        for k in [
            GENERIC_DATA,
            PORT_MAP,
            MAC_ADDRESS,
            EXPOSED_PORTS,
            DNS_SERVERS,
            ENABLE_IPV6,
            GATEWAY,
            INTERNAL,
            CONTAINER_IFACE_PREFIX,
            HOST_IP,
            BRIDGE_NAME,
            BRIDGE_ENABLE_IP_MASQUERADE,
            BRIDGE_ENABLE_ICC,
            BRIDGE_INHIBIT_IPV4,
            BRIDGE_DEFAULT_BRIDGE,
            BRIDGE_HOST_BINDING_IPV4,
        ] {
            assert!(k.starts_with(&format!("{PREFIX}.")), "{k}");
        }
        for k in [
            DRIVER_MTU,
            DRIVER_PRIVATE_PREFIX,
            OVERLAY_BIND_INTERFACE,
            OVERLAY_NEIGHBOR_IP,
            OVERLAY_VXLAN_ID_LIST,
        ] {
            assert!(k.starts_with(&format!("{DRIVER_PREFIX}.")), "{k}");
        }
        assert_eq!(GATEWAY, libnetwork_ipamapi::GATEWAY_ADDRESS_TYPE);
        assert_eq!(PREFIX, libnetwork_ipamapi::PREFIX);
    }
}
