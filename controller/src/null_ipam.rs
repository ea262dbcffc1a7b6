//! The `null` IPAM driver (libnetwork's `ipams/null`): networks without addresses.
//!
//! Every pool request gets the whole address family (`0.0.0.0/0` or `::/0`) under the pool id
//! `null/<pool>`, and no address is ever handed out. The controller gives a network driver no
//! pool at all for such networks (the bridge driver then refuses the network, as libnetwork's
//! does with "ipv4 pool is empty"), and endpoints get no address.

use std::net::IpAddr;

use libnetwork_ipamapi::{
    AllocatedAddress, AllocatedPool, Capability, Error, IpNet, Ipam, NULL_IPAM, Options,
};

/// The address space name of the null driver.
const ADDRESS_SPACE: &str = "null";

/// The `null` IPAM driver.
#[derive(Debug, Default)]
pub(crate) struct NullIpam;

fn pool_of(v6: bool) -> IpNet {
    if v6 {
        "::/0".parse().expect("valid network")
    } else {
        "0.0.0.0/0".parse().expect("valid network")
    }
}

impl Ipam for NullIpam {
    fn default_address_spaces(&self) -> Result<(String, String), Error> {
        Ok((ADDRESS_SPACE.to_owned(), ADDRESS_SPACE.to_owned()))
    }

    fn request_pool(
        &self,
        address_space: &str,
        pool: Option<IpNet>,
        sub_pool: Option<IpNet>,
        _options: &Options,
        v6: bool,
    ) -> Result<AllocatedPool, Error> {
        if address_space != ADDRESS_SPACE {
            return Err(Error::InvalidAddressSpace(address_space.to_owned()));
        }
        if let Some(p) = pool.or(sub_pool) {
            return Err(Error::InvalidPool {
                pool: p,
                reason: format!("the {NULL_IPAM} ipam driver takes no pool"),
            });
        }
        let pool = pool_of(v6);
        Ok(AllocatedPool {
            pool_id: format!("{ADDRESS_SPACE}/{pool}"),
            pool,
            meta: Options::new(),
        })
    }

    fn release_pool(&self, pool_id: &str) -> Result<(), Error> {
        if pool_id.starts_with("null/") {
            Ok(())
        } else {
            Err(Error::InvalidPoolId(pool_id.to_owned()))
        }
    }

    fn request_address(
        &self,
        _pool_id: &str,
        _preferred: Option<IpAddr>,
        _options: &Options,
    ) -> Result<AllocatedAddress, Error> {
        Err(Error::NoIpReturned)
    }

    fn release_address(&self, _pool_id: &str, _address: IpAddr) -> Result<(), Error> {
        Ok(())
    }

    fn capabilities(&self) -> Capability {
        Capability::default()
    }

    fn is_built_in(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_cover_the_whole_family_and_no_address_is_given() {
        let ipam = NullIpam;
        let v4 = ipam
            .request_pool("null", None, None, &Options::new(), false)
            .unwrap();
        assert_eq!(v4.pool.to_string(), "0.0.0.0/0");
        assert_eq!(v4.pool_id, "null/0.0.0.0/0");
        let v6 = ipam
            .request_pool("null", None, None, &Options::new(), true)
            .unwrap();
        assert_eq!(v6.pool.to_string(), "::/0");
        assert!(
            ipam.request_address(&v4.pool_id, None, &Options::new())
                .is_err()
        );
        ipam.release_pool(&v4.pool_id).unwrap();
        assert!(
            ipam.request_pool("LocalDefault", None, None, &Options::new(), false)
                .is_err()
        );
    }
}
