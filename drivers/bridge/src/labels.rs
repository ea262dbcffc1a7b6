//! The option and label keys the bridge driver reads (libnetwork's `netlabel` keys and the
//! bridge's own `com.docker.network.bridge.*` keys), and the value parsers libnetwork uses for
//! them. The keys are the driver contract's [`netlabel`] constants, named here as the bridge
//! uses them.

use libnetwork_driverapi::netlabel;

/// Prefix of every libnetwork label (`netlabel.Prefix`).
pub const PREFIX: &str = netlabel::PREFIX;
/// Prefix of the bridge driver's own options; an unknown key under it is a bad request.
pub const BRIDGE_PREFIX: &str = "com.docker.network.bridge.";

/// The bridge's name (`BridgeName`).
pub const BRIDGE_NAME: &str = netlabel::BRIDGE_NAME;
/// Masquerade traffic leaving the network (`EnableIPMasquerade`).
pub const ENABLE_IP_MASQUERADE: &str = netlabel::BRIDGE_ENABLE_IP_MASQUERADE;
/// Inter-container communication (`EnableICC`).
pub const ENABLE_ICC: &str = netlabel::BRIDGE_ENABLE_ICC;
/// Leave the bridge without an IPv4 address (`InhibitIPv4`).
pub const INHIBIT_IPV4: &str = netlabel::BRIDGE_INHIBIT_IPV4;
/// The network is Docker's default bridge, `docker0` (`DefaultBridge`).
pub const DEFAULT_BRIDGE: &str = netlabel::BRIDGE_DEFAULT_BRIDGE;
/// Default host address of published ports (`DefaultBindingIP`).
pub const HOST_BINDING_IPV4: &str = netlabel::BRIDGE_HOST_BINDING_IPV4;
/// MTU of the bridge and of its veths (`netlabel.DriverMTU`).
pub const MTU: &str = netlabel::DRIVER_MTU;
/// IPv6 on the network (`netlabel.EnableIPv6`).
pub const ENABLE_IPV6: &str = netlabel::ENABLE_IPV6;
/// No traffic to or from outside the network (`netlabel.Internal`).
pub const INTERNAL: &str = netlabel::INTERNAL;
/// Prefix of the container interface names (`netlabel.ContainerIfacePrefix`).
pub const CONTAINER_IFACE_PREFIX: &str = netlabel::CONTAINER_IFACE_PREFIX;
/// Source address of outgoing traffic instead of masquerading (`netlabel.HostIP`).
pub const HOST_IPV4: &str = netlabel::HOST_IP;

/// Endpoint operational data: exposed ports (`netlabel.ExposedPorts`).
pub const EXPOSED_PORTS: &str = netlabel::EXPOSED_PORTS;
/// Endpoint operational data: published ports (`netlabel.PortMap`).
pub const PORT_MAP: &str = netlabel::PORT_MAP;
/// Endpoint operational data: MAC address (`netlabel.MacAddress`).
pub const MAC_ADDRESS: &str = netlabel::MAC_ADDRESS;

/// IPAM auxiliary address naming the IPv4 default gateway of the containers.
pub const DEFAULT_GATEWAY_V4_AUX: &str = "DefaultGatewayIPv4";
/// IPAM auxiliary address naming the IPv6 default gateway of the containers.
pub const DEFAULT_GATEWAY_V6_AUX: &str = "DefaultGatewayIPv6";

/// Parses a boolean as Go's `strconv.ParseBool` does: `1 t T TRUE true True` and
/// `0 f F FALSE false False`.
pub fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Whether `name` is a valid Linux interface name: 1 to 15 bytes, not `.` or `..`, without
/// `/`, `:` or whitespace (the kernel's `dev_valid_name`, plus `:` which `ip` refuses).
pub fn valid_interface_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c == '\0')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_parse_like_go_strconv() {
        for t in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(parse_bool(t), Some(true), "{t}");
        }
        for f in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(parse_bool(f), Some(false), "{f}");
        }
        for bad in ["", "yes", "tRuE", "2"] {
            assert_eq!(parse_bool(bad), None, "{bad}");
        }
    }

    #[test]
    fn interface_names_follow_the_kernel_rules() {
        assert!(valid_interface_name("br-0123456789a"));
        assert!(valid_interface_name("docker0"));
        for bad in ["", ".", "..", "a/b", "a b", "a:b", "0123456789abcdef"] {
            assert!(!valid_interface_name(bad), "{bad}");
        }
    }
}
