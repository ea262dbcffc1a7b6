//! The setters of [`EndpointInterface`] (libnetwork's `InterfaceInfo.SetMacAddress` and
//! `SetIPAddress`): a driver completes what the controller left unset and never overwrites.

use ipnet::IpNet;

use crate::{EndpointInterface, Error, MacAddr};

impl EndpointInterface {
    /// Sets the MAC address.
    ///
    /// # Errors
    /// [`Error::InterfaceFieldSet`] when a MAC address is set already (even the same one);
    /// nothing changes.
    pub fn set_mac_address(&mut self, mac: MacAddr) -> Result<(), Error> {
        set_once(&mut self.mac, mac, "mac address")
    }

    /// Sets the IPv4 or the IPv6 address, by the family of `address`.
    ///
    /// # Errors
    /// [`Error::InterfaceFieldSet`] when the address of that family is set already (even to
    /// the same value); nothing changes.
    pub fn set_ip_address(&mut self, address: IpNet) -> Result<(), Error> {
        match address {
            IpNet::V4(_) => set_once(&mut self.address, address, "ipv4 address"),
            IpNet::V6(_) => set_once(&mut self.address_ipv6, address, "ipv6 address"),
        }
    }
}

/// Stores `value` in an unset `slot`.
fn set_once<T: std::fmt::Display>(
    slot: &mut Option<T>,
    value: T,
    field: &'static str,
) -> Result<(), Error> {
    if let Some(current) = slot {
        return Err(Error::InterfaceFieldSet {
            field,
            current: current.to_string(),
            requested: value.to_string(),
        });
    }
    *slot = Some(value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use libnetwork_types::ErrorKind;

    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().expect("test network")
    }

    #[test]
    fn mac_address_is_set_once_and_a_second_set_changes_nothing() {
        let mut iface = EndpointInterface::default();
        let first = MacAddr([0x02, 0x42, 10, 0, 0, 2]);
        iface.set_mac_address(first).unwrap();
        assert_eq!(iface.mac, Some(first));

        let err = iface
            .set_mac_address(MacAddr([0x02, 0x42, 10, 0, 0, 3]))
            .expect_err("second mac accepted");
        assert_eq!(err.kind(), ErrorKind::Conflict);
        assert_eq!(
            err.to_string(),
            "set endpoint interface mac address: already set to 02:42:0a:00:00:02, \
             cannot change it to 02:42:0a:00:00:03"
        );
        assert_eq!(iface.mac, Some(first));
        // Even the same value is refused: the driver must look before it sets.
        assert!(iface.set_mac_address(first).is_err());
    }

    #[test]
    fn ip_address_goes_to_the_slot_of_its_family() {
        let mut iface = EndpointInterface::default();
        iface.set_ip_address(net("2001:db8::5/64")).unwrap();
        assert_eq!(iface.address, None);
        assert_eq!(iface.address_ipv6, Some(net("2001:db8::5/64")));

        iface.set_ip_address(net("172.17.0.5/16")).unwrap();
        assert_eq!(iface.address, Some(net("172.17.0.5/16")));
        assert_eq!(iface.address_ipv6, Some(net("2001:db8::5/64")));
    }

    #[test]
    fn ip_address_already_set_is_refused_and_kept() {
        let mut iface = EndpointInterface {
            address: Some(net("10.0.0.2/24")),
            address_ipv6: Some(net("fd00::2/64")),
            ..Default::default()
        };
        let err = iface
            .set_ip_address(net("10.0.0.3/24"))
            .expect_err("v4 overwritten");
        assert_eq!(err.kind(), ErrorKind::Conflict);
        assert!(
            err.to_string()
                .contains("ipv4 address: already set to 10.0.0.2/24"),
            "{err}"
        );
        let err = iface
            .set_ip_address(net("fd00::3/64"))
            .expect_err("v6 overwritten");
        assert!(
            err.to_string()
                .contains("ipv6 address: already set to fd00::2/64"),
            "{err}"
        );
        assert_eq!(iface.address, Some(net("10.0.0.2/24")));
        assert_eq!(iface.address_ipv6, Some(net("fd00::2/64")));
    }
}
