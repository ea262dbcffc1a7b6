//! [`SubnetKey`]: a pool's identity, whose string form is the pool id.

use std::fmt;
use std::str::FromStr;

use ipnet::IpNet;
use libnetwork_ipamapi::Error as ApiError;

/// A pool's identity: its address space, its network, and for a sub-pool the range inside it.
///
/// The string form, `<address space>/<subnet>` or `<address space>/<subnet>/<child subnet>`
/// (for example `LocalDefault/172.28.0.0/16/172.28.30.0/24`), is the pool id handed to callers,
/// as in libnetwork.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SubnetKey {
    /// The address space (it contains no `/`).
    pub address_space: String,
    /// The pool's network.
    pub subnet: IpNet,
    /// For a sub-pool, the range addresses are handed out from.
    pub child: Option<IpNet>,
}

impl SubnetKey {
    /// The key of the whole pool this key belongs to (itself for a pool without a child).
    pub fn master(&self) -> Self {
        Self {
            address_space: self.address_space.clone(),
            subnet: self.subnet,
            child: None,
        }
    }
}

impl fmt::Display for SubnetKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address_space, self.subnet)?;
        if let Some(child) = &self.child {
            write!(f, "/{child}")?;
        }
        Ok(())
    }
}

impl FromStr for SubnetKey {
    type Err = ApiError;

    /// Parses `AS/ip/len` or `AS/ip/len/ip/len`. Errors: [`ApiError::InvalidPoolId`] for any
    /// other form, an empty address space, or networks that do not parse.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || ApiError::InvalidPoolId(s.to_owned());
        let parts: Vec<&str> = s.split('/').collect();
        if !matches!(parts.len(), 3 | 5) || parts[0].is_empty() {
            return Err(invalid());
        }
        let net = |ip: &str, len: &str| {
            format!("{ip}/{len}")
                .parse::<IpNet>()
                .map_err(|_| invalid())
        };
        let subnet = net(parts[1], parts[2])?;
        let child = match parts.len() {
            5 => Some(net(parts[3], parts[4])?),
            _ => None,
        };
        Ok(Self {
            address_space: parts[0].to_owned(),
            subnet,
            child,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_string_is_address_space_subnet_and_optional_child() {
        let k = SubnetKey {
            address_space: "default".into(),
            subnet: "172.27.0.0/16".parse().unwrap(),
            child: None,
        };
        assert_eq!(k.to_string(), "default/172.27.0.0/16");
        assert_eq!("default/172.27.0.0/16".parse::<SubnetKey>().unwrap(), k);

        let c = SubnetKey {
            child: Some("172.27.3.0/24".parse().unwrap()),
            ..k.clone()
        };
        assert_eq!(c.to_string(), "default/172.27.0.0/16/172.27.3.0/24");
        assert_eq!(
            "default/172.27.0.0/16/172.27.3.0/24"
                .parse::<SubnetKey>()
                .unwrap(),
            c
        );
        assert_eq!(c.master(), k);

        let v6: SubnetKey = "GlobalDefault/2001:db8::/64".parse().unwrap();
        assert_eq!(v6.to_string(), "GlobalDefault/2001:db8::/64");
    }

    #[test]
    fn malformed_key_strings_are_invalid_pool_ids() {
        for bad in [
            "",
            "LocalDefault",
            "LocalDefault/10.0.0.0",
            "LocalDefault/10.0.0.0/8/10.1.0.0",
            "LocalDefault/10.0.0.0/8/10.1.0.0/16/x",
            "/10.0.0.0/8",
            "LocalDefault/10.0.0.0/33",
            "LocalDefault/not-an-ip/8",
        ] {
            let err = bad.parse::<SubnetKey>().unwrap_err();
            assert!(
                matches!(err, ApiError::InvalidPoolId(ref s) if s == bad),
                "{bad}: {err}"
            );
        }
    }
}
