//! Tests of the allocator (pure core) and of the driver with its stores.
//!
//! Many follow libnetwork's `allocator_test.go`; the name of the Go test is given where one is
//! the model.

mod addresses;
mod model;
mod persistence;
mod pools;

use std::net::IpAddr;

use ipnet::IpNet;
use libnetwork_ipamapi::Error as ApiError;

use crate::{AddressRequest, Allocator, GLOBAL_ADDRESS_SPACE, LOCAL_ADDRESS_SPACE};

const LOCAL: &str = LOCAL_ADDRESS_SPACE;
const GLOBAL: &str = GLOBAL_ADDRESS_SPACE;

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

const ANY: AddressRequest = AddressRequest {
    serial: false,
    gateway: false,
};

const SERIAL: AddressRequest = AddressRequest {
    serial: true,
    gateway: false,
};

/// Reserves an explicit pool in `LocalDefault` and returns its id.
fn pool(a: &mut Allocator, cidr: &str) -> String {
    a.request_pool(LOCAL, Some(net(cidr)), None, false)
        .unwrap()
        .pool_id
}

/// Reserves a sub-pool in `LocalDefault` and returns its id.
fn sub_pool(a: &mut Allocator, cidr: &str, sub: &str) -> String {
    a.request_pool(LOCAL, Some(net(cidr)), Some(net(sub)), false)
        .unwrap()
        .pool_id
}

/// Requests an address of the pool and returns it without its prefix length.
fn take(a: &mut Allocator, pool_id: &str, how: AddressRequest) -> Result<IpAddr, ApiError> {
    a.request_address(pool_id, None, how).map(|n| n.addr())
}
