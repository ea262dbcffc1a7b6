//! The contract between the network controller and IPAM (IP address management) drivers:
//! libnetwork's `ipamapi` package, plus the discovery payloads of its `discoverapi` package.
//!
//! An IPAM driver hands out address pools (subnets) to networks and addresses to endpoints.
//! The built-in `default` driver lives in the `libnetwork-ipam` crate; remote plugins (endpoint
//! type [`PLUGIN_ENDPOINT_TYPE`]) will implement the same [`Ipam`] trait over HTTP.
//!
//! # Mapping to libnetwork
//! - `ipamapi.Ipam` is the [`Ipam`] trait: `GetDefaultAddressSpaces`, `RequestPool`,
//!   `ReleasePool`, `RequestAddress`, `ReleaseAddress`, `IsBuiltIn`, and the embedded
//!   `discoverapi.Discover` (`DiscoverNew`, `DiscoverDelete`) as provided methods. The driver's
//!   capabilities, which libnetwork passes at registration, are [`Ipam::capabilities`].
//! - Pools and sub-pools are typed ([`IpNet`]) where libnetwork passes strings: parsing text is
//!   the job of the API layer, and an unparsable pool never reaches a driver. A pool given with
//!   host bits set (`10.1.2.3/16`) means its network (`10.1.0.0/16`), as Go's `ParseCIDR` gives.
//! - The well-known error variables become the variants of one [`Error`] enum, with the kinds
//!   mapped onto [`ErrorKind`] (see the table on [`Error`]).
//! - The constants keep their libnetwork values: [`DEFAULT_IPAM`], [`NULL_IPAM`],
//!   [`PLUGIN_ENDPOINT_TYPE`], [`REQUEST_ADDRESS_TYPE`], [`GATEWAY_ADDRESS_TYPE`], [`PREFIX`],
//!   [`ALLOC_SERIAL_PREFIX`].
//! - `Callback` (the registration interface) belongs to the driver registry and is not here.
//!
//! # Layout
//! - this file: the constants, [`Ipam`], [`Capability`], [`AllocatedPool`],
//!   [`AllocatedAddress`], [`Options`] and the option helpers.
//! - [`error`]: [`Error`] and its [`ErrorKind`] mapping.
//! - [`discover`]: discovery notifications ([`discover::DiscoveryData`]) shared with network
//!   drivers.
//!
//! # Design decisions
//! - The trait is blocking and object safe (`Arc<dyn Ipam>`), `Send + Sync`: the default driver
//!   sits on a blocking store, and async callers use `spawn_blocking`.
//! - Every method takes `&self`; a driver synchronises internally.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

pub use ipnet::IpNet;

pub mod discover;
pub mod error;

pub use crate::error::Error;
pub use libnetwork_types::ErrorKind;

/// Name of the built-in IPAM driver.
pub const DEFAULT_IPAM: &str = "default";

/// Name of the null IPAM driver (networks without addresses).
pub const NULL_IPAM: &str = "null";

/// The plugin endpoint type remote IPAM drivers register for.
pub const PLUGIN_ENDPOINT_TYPE: &str = "IpamDriver";

/// Prefix of libnetwork's well-known option keys.
pub const PREFIX: &str = "com.docker.network";

/// Option key of [`Ipam::request_address`] telling what the address is for; with the value
/// [`GATEWAY_ADDRESS_TYPE`] the request is for the network's gateway.
pub const REQUEST_ADDRESS_TYPE: &str = "RequestAddressType";

/// Value of [`REQUEST_ADDRESS_TYPE`] marking a gateway request (libnetwork's
/// `netlabel.Gateway`).
pub const GATEWAY_ADDRESS_TYPE: &str = "com.docker.network.gateway";

/// Option key turning on serial allocation when its value is `"true"`: addresses are handed out
/// in a round-robin fashion, so a released address is not reused at once.
pub const ALLOC_SERIAL_PREFIX: &str = "com.docker.network.ipam.serial";

/// Driver options and metadata: string keys to string values, as in libnetwork.
pub type Options = BTreeMap<String, String>;

/// Whether `options` ask for serial allocation ([`ALLOC_SERIAL_PREFIX`] = `"true"`).
pub fn is_serial(options: &Options) -> bool {
    options
        .get(ALLOC_SERIAL_PREFIX)
        .is_some_and(|v| v == "true")
}

/// Whether `options` mark a gateway request ([`REQUEST_ADDRESS_TYPE`] =
/// [`GATEWAY_ADDRESS_TYPE`]).
pub fn is_gateway_request(options: &Options) -> bool {
    options
        .get(REQUEST_ADDRESS_TYPE)
        .is_some_and(|v| v == GATEWAY_ADDRESS_TYPE)
}

/// What a driver needs from the controller.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Capability {
    /// The driver wants the endpoint's MAC address in the `RequestAddress` options.
    pub requires_mac_address: bool,
    /// The driver keeps no state across restarts: the controller must request every pool and
    /// address again at start-up ("request replay").
    pub requires_request_replay: bool,
}

/// A pool handed out by [`Ipam::request_pool`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllocatedPool {
    /// The driver's identifier of the pool, passed back in every later call for it.
    pub pool_id: String,
    /// The pool's network (for a sub-pool request, the whole pool the range lies in).
    pub pool: IpNet,
    /// Driver metadata (for example [`GATEWAY_ADDRESS_TYPE`] with a gateway the driver chose).
    pub meta: Options,
}

/// An address handed out by [`Ipam::request_address`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllocatedAddress {
    /// The address, with the prefix length of its pool.
    pub address: IpNet,
    /// Driver metadata.
    pub meta: Options,
}

/// An IPAM driver.
///
/// Every method blocks until the driver (and its store, if any) answered. A method that fails
/// changes nothing.
pub trait Ipam: Send + Sync + fmt::Debug {
    /// The driver's default local and global address space names, in that order.
    ///
    /// # Errors
    /// Only drivers that have to ask someone (remote plugins) fail.
    fn default_address_spaces(&self) -> Result<(String, String), Error>;

    /// Reserves a pool in `address_space`.
    ///
    /// - No `pool`: the driver picks a free pool of the requested family (`v6`).
    /// - `pool` only: exactly that pool.
    /// - `pool` and `sub_pool`: addresses are handed out from `sub_pool`, a range inside
    ///   `pool`; the returned [`AllocatedPool::pool`] is `pool`.
    ///
    /// # Errors
    /// [`Error::InvalidAddressSpace`], [`Error::InvalidSubPool`] (a sub-pool without a pool, or
    /// outside it), [`Error::PoolOverlap`], [`Error::NoAvailablePool`], store failures.
    fn request_pool(
        &self,
        address_space: &str,
        pool: Option<IpNet>,
        sub_pool: Option<IpNet>,
        options: &Options,
        v6: bool,
    ) -> Result<AllocatedPool, Error>;

    /// Releases a pool reserved by [`Ipam::request_pool`].
    ///
    /// # Errors
    /// [`Error::InvalidPoolId`], [`Error::PoolNotFound`], store failures.
    fn release_pool(&self, pool_id: &str) -> Result<(), Error>;

    /// Reserves an address of the pool: `preferred` if given, otherwise one the driver picks.
    /// `options` may ask for serial allocation ([`ALLOC_SERIAL_PREFIX`]) or mark the request as
    /// the gateway's ([`REQUEST_ADDRESS_TYPE`]).
    ///
    /// # Errors
    /// [`Error::InvalidPoolId`], [`Error::PoolNotFound`], [`Error::IpOutOfRange`],
    /// [`Error::IpAlreadyAllocated`], [`Error::NoAvailableIps`], store failures.
    fn request_address(
        &self,
        pool_id: &str,
        preferred: Option<IpAddr>,
        options: &Options,
    ) -> Result<AllocatedAddress, Error>;

    /// Releases an address of the pool. Releasing an address that is not allocated is not an
    /// error.
    ///
    /// # Errors
    /// [`Error::InvalidPoolId`], [`Error::PoolNotFound`], [`Error::IpOutOfRange`], store
    /// failures.
    fn release_address(&self, pool_id: &str, address: IpAddr) -> Result<(), Error>;

    /// What the driver needs from the controller.
    fn capabilities(&self) -> Capability;

    /// Whether the driver is built into the daemon (as opposed to a plugin).
    fn is_built_in(&self) -> bool;

    /// A discovery notification: something appeared (libnetwork's `DiscoverNew`). Drivers that
    /// do not care accept and ignore it, which is what this default does.
    ///
    /// # Errors
    /// Driver specific.
    fn discover_new(&self, data: &discover::DiscoveryData) -> Result<(), Error> {
        let _ = data;
        Ok(())
    }

    /// A discovery notification: something went away (libnetwork's `DiscoverDelete`). Ignored
    /// by default.
    ///
    /// # Errors
    /// Driver specific.
    fn discover_delete(&self, data: &discover::DiscoveryData) -> Result<(), Error> {
        let _ = data;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// A minimal driver, to prove the trait can be used as an object.
    #[derive(Debug)]
    struct Echo;

    impl Ipam for Echo {
        fn default_address_spaces(&self) -> Result<(String, String), Error> {
            Ok(("local".into(), "global".into()))
        }
        fn request_pool(
            &self,
            address_space: &str,
            pool: Option<IpNet>,
            _sub_pool: Option<IpNet>,
            _options: &Options,
            _v6: bool,
        ) -> Result<AllocatedPool, Error> {
            let pool = pool.ok_or(Error::NoAvailablePool {
                address_space: address_space.into(),
                v6: false,
            })?;
            Ok(AllocatedPool {
                pool_id: format!("{address_space}/{pool}"),
                pool,
                meta: Options::new(),
            })
        }
        fn release_pool(&self, _pool_id: &str) -> Result<(), Error> {
            Ok(())
        }
        fn request_address(
            &self,
            _pool_id: &str,
            preferred: Option<IpAddr>,
            _options: &Options,
        ) -> Result<AllocatedAddress, Error> {
            let ip = preferred.ok_or(Error::NoIpReturned)?;
            Ok(AllocatedAddress {
                address: IpNet::from(ip),
                meta: Options::new(),
            })
        }
        fn release_address(&self, _pool_id: &str, _address: IpAddr) -> Result<(), Error> {
            Ok(())
        }
        fn capabilities(&self) -> Capability {
            Capability::default()
        }
        fn is_built_in(&self) -> bool {
            false
        }
    }

    #[test]
    fn the_driver_trait_is_object_safe_and_shareable_across_threads() {
        let driver: Arc<dyn Ipam> = Arc::new(Echo);
        let other = driver.clone();
        let handle = std::thread::spawn(move || other.default_address_spaces());
        assert_eq!(
            handle.join().unwrap().unwrap(),
            ("local".to_owned(), "global".to_owned())
        );
        let pool = driver
            .request_pool(
                "local",
                Some("10.0.0.0/8".parse().unwrap()),
                None,
                &Options::new(),
                false,
            )
            .unwrap();
        assert_eq!(pool.pool_id, "local/10.0.0.0/8");
        // The provided discovery methods accept and ignore notifications.
        let data = discover::DiscoveryData::NodeDiscovery(discover::NodeDiscoveryData {
            address: "192.0.2.1".into(),
            bind_address: "0.0.0.0".into(),
            self_node: true,
        });
        driver.discover_new(&data).unwrap();
        driver.discover_delete(&data).unwrap();
    }

    #[test]
    fn constants_keep_libnetwork_values() {
        assert_eq!(DEFAULT_IPAM, "default");
        assert_eq!(NULL_IPAM, "null");
        assert_eq!(PLUGIN_ENDPOINT_TYPE, "IpamDriver");
        assert_eq!(REQUEST_ADDRESS_TYPE, "RequestAddressType");
        assert_eq!(GATEWAY_ADDRESS_TYPE, "com.docker.network.gateway");
        assert_eq!(ALLOC_SERIAL_PREFIX, "com.docker.network.ipam.serial");
        assert!(ALLOC_SERIAL_PREFIX.starts_with(PREFIX));
    }

    #[test]
    fn serial_is_on_only_for_the_value_true() {
        let mut opts = Options::new();
        assert!(!is_serial(&opts));
        opts.insert(ALLOC_SERIAL_PREFIX.into(), "false".into());
        assert!(!is_serial(&opts));
        opts.insert(ALLOC_SERIAL_PREFIX.into(), "TRUE".into());
        assert!(!is_serial(&opts));
        opts.insert(ALLOC_SERIAL_PREFIX.into(), "true".into());
        assert!(is_serial(&opts));
    }

    #[test]
    fn gateway_request_needs_the_gateway_address_type() {
        let mut opts = Options::new();
        assert!(!is_gateway_request(&opts));
        opts.insert(REQUEST_ADDRESS_TYPE.into(), "something-else".into());
        assert!(!is_gateway_request(&opts));
        opts.insert(REQUEST_ADDRESS_TYPE.into(), GATEWAY_ADDRESS_TYPE.into());
        assert!(is_gateway_request(&opts));
        // The gateway label as a key (not as the value) does not count.
        let mut wrong = Options::new();
        wrong.insert(GATEWAY_ADDRESS_TYPE.into(), "true".into());
        assert!(!is_gateway_request(&wrong));
    }
}
