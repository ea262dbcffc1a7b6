//! Validation and display of [`IpamData`] (libnetwork's `IPAMData.Validate`, `IsV6`,
//! `String`).

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::{Error, IpamData};

impl IpamData {
    /// Whether the pool is an IPv6 one.
    pub fn is_v6(&self) -> bool {
        matches!(self.pool, IpNet::V6(_))
    }

    /// Checks that the gateway (when there is one) and every auxiliary address are of the
    /// pool's family and inside the pool. The pool itself is required by the type.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the first offending address.
    pub fn validate(&self) -> Result<(), Error> {
        if let Some(gateway) = self.gateway {
            self.check_member("gateway", gateway.addr())?;
        }
        for (name, aux) in &self.aux_addresses {
            self.check_member(&format!("auxiliary address {name}"), aux.addr())?;
        }
        Ok(())
    }

    /// Checks one address of the pool's data: same family as the pool, inside it.
    fn check_member(&self, what: &str, address: IpAddr) -> Result<(), Error> {
        let invalid = |reason: String| Error::InvalidArgument {
            context: format!("validate ipam data of pool {}", self.pool),
            reason,
        };
        if address.is_ipv6() != self.is_v6() {
            return Err(invalid(format!(
                "{what} {address} is not of the pool's ip version"
            )));
        }
        if !self.pool.contains(&address) {
            return Err(invalid(format!("{what} {address} is outside the pool")));
        }
        Ok(())
    }
}

impl fmt::Display for IpamData {
    /// `AddressSpace: … Pool: … Gateway: … AuxAddresses: …` on one line, auxiliary addresses as
    /// `name=cidr` in name order.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "AddressSpace: {}, Pool: {}, Gateway: ",
            self.address_space, self.pool
        )?;
        match self.gateway {
            Some(gateway) => write!(f, "{gateway}")?,
            None => f.write_str("none")?,
        }
        f.write_str(", AuxAddresses: [")?;
        for (i, (name, address)) in self.aux_addresses.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{name}={address}")?;
        }
        f.write_str("]")
    }
}

#[cfg(test)]
mod tests {
    use libnetwork_types::ErrorKind;

    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().expect("test network")
    }

    fn data(pool: &str, gateway: Option<&str>, aux: &[(&str, &str)]) -> IpamData {
        IpamData {
            address_space: "giallo".into(),
            pool: net(pool),
            gateway: gateway.map(net),
            aux_addresses: aux.iter().map(|(k, v)| ((*k).to_owned(), net(v))).collect(),
        }
    }

    impl IpamData {
        fn with_space(mut self, space: &str) -> Self {
            self.address_space = space.into();
            self
        }
    }

    fn assert_invalid(d: &IpamData, needle: &str) {
        let err = d.validate().expect_err("invalid ipam data accepted");
        assert_eq!(err.kind(), ErrorKind::BadRequest);
        assert!(matches!(err, Error::InvalidArgument { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains(needle), "{msg:?} does not name {needle:?}");
    }

    #[test]
    fn json_round_trip_keeps_libnetworks_field_names_and_host_bits() {
        let d = data(
            "10.10.10.8/24",
            Some("10.10.10.254/24"),
            &[("ip1", "10.10.10.1/24"), ("ip2", "10.10.10.2/24")],
        );
        let json = serde_json::to_value(&d).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "AddressSpace": "giallo",
                "Pool": "10.10.10.8/24",
                "Gateway": "10.10.10.254/24",
                "AuxAddresses": {"ip1": "10.10.10.1/24", "ip2": "10.10.10.2/24"},
            })
        );
        let back: IpamData = serde_json::from_value(json).unwrap();
        assert_eq!(back, d);
    }

    #[test]
    fn json_written_by_libnetwork_parses() {
        // Go's encoder sorts the keys of the map libnetwork marshals.
        let go = r#"{"AddressSpace":"","AuxAddresses":{"DefaultGatewayIPv6":"2001:db8::fe/64"},"Gateway":"2001:db8::1/64","Pool":"2001:db8::/64"}"#;
        let d: IpamData = serde_json::from_str(go).unwrap();
        assert_eq!(
            d,
            data(
                "2001:db8::/64",
                Some("2001:db8::1/64"),
                &[("DefaultGatewayIPv6", "2001:db8::fe/64")]
            )
            .with_space("")
        );
    }

    #[test]
    fn json_without_gateway_or_aux_addresses_omits_them_and_parses_back() {
        let d = data("172.17.0.0/16", None, &[]);
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(json, r#"{"AddressSpace":"giallo","Pool":"172.17.0.0/16"}"#);
        assert_eq!(serde_json::from_str::<IpamData>(&json).unwrap(), d);
    }

    #[test]
    fn json_without_a_pool_or_with_a_bad_cidr_is_rejected() {
        assert!(serde_json::from_str::<IpamData>(r#"{"AddressSpace":"x"}"#).is_err());
        assert!(
            serde_json::from_str::<IpamData>(r#"{"AddressSpace":"x","Pool":"10.0.0.0"}"#).is_err()
        );
        assert!(
            serde_json::from_str::<IpamData>(
                r#"{"AddressSpace":"x","Pool":"10.0.0.0/8","Gateway":"10.0.0.300/8"}"#
            )
            .is_err()
        );
    }

    #[test]
    fn is_v6_follows_the_pool_family() {
        assert!(!data("10.0.0.0/8", None, &[]).is_v6());
        assert!(data("2001:db8::/64", None, &[]).is_v6());
    }

    #[test]
    fn consistent_data_validates() {
        data(
            "10.10.10.0/24",
            Some("10.10.10.1/24"),
            &[("a", "10.10.10.200/24"), ("b", "10.10.10.255/32")],
        )
        .validate()
        .unwrap();
        data(
            "2001:db8:1::/64",
            Some("2001:db8:1::1/64"),
            &[("DefaultGatewayIPv6", "2001:db8:1::fe/64")],
        )
        .validate()
        .unwrap();
        // No gateway (a null IPAM) is fine.
        data("0.0.0.0/0", None, &[]).validate().unwrap();
    }

    #[test]
    fn gateway_of_the_other_family_is_rejected() {
        assert_invalid(
            &data("10.10.10.0/24", Some("2001:db8::1/64"), &[]),
            "gateway",
        );
        assert_invalid(
            &data("2001:db8::/64", Some("10.10.10.1/24"), &[]),
            "gateway",
        );
    }

    #[test]
    fn gateway_outside_the_pool_is_rejected() {
        assert_invalid(
            &data("10.10.10.0/24", Some("10.10.15.1/24"), &[]),
            "gateway 10.10.15.1 is outside the pool",
        );
        assert_invalid(
            &data("2001:db8:1::/64", Some("2001:db8:2::1/64"), &[]),
            "outside",
        );
    }

    #[test]
    fn auxiliary_address_of_the_other_family_or_outside_the_pool_is_rejected() {
        assert_invalid(
            &data(
                "10.10.10.0/24",
                Some("10.10.10.1/24"),
                &[("ip1", "2001:db8::1/64")],
            ),
            "auxiliary address ip1",
        );
        assert_invalid(
            &data(
                "10.10.10.0/24",
                Some("10.10.10.1/24"),
                &[("ip2", "10.10.11.1/24")],
            ),
            "auxiliary address ip2 10.10.11.1 is outside the pool",
        );
    }

    #[test]
    fn membership_uses_the_pools_network_even_when_it_has_host_bits() {
        // libnetwork keeps host bits in pools it parses; the network still decides.
        data("10.10.10.8/24", Some("10.10.10.254/24"), &[])
            .validate()
            .unwrap();
        assert_invalid(
            &data("10.10.10.8/30", Some("10.10.10.12/30"), &[]),
            "outside",
        );
    }

    #[test]
    fn display_names_every_part() {
        let d = data("10.1.0.0/16", Some("10.1.0.1/16"), &[("a", "10.1.0.2/16")]);
        assert_eq!(
            d.to_string(),
            "AddressSpace: giallo, Pool: 10.1.0.0/16, Gateway: 10.1.0.1/16, AuxAddresses: [a=10.1.0.2/16]"
        );
        let none = data("10.1.0.0/16", None, &[]);
        assert_eq!(
            none.to_string(),
            "AddressSpace: giallo, Pool: 10.1.0.0/16, Gateway: none, AuxAddresses: []"
        );
    }
}
