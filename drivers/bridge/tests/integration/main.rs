//! Kernel tests of the bridge driver, with real traffic. Each test runs in its own network and
//! mount namespace (`libnetwork_testutil::in_new_netns`), which plays the host; containers are
//! osl sandboxes and an "outside" namespace is joined to the host by a veth pair on
//! 198.51.100.0/24. Firewall tests run once per backend (nftables, iptables).

mod common;

mod cleanup;
mod endpoints;
mod ipv6;
mod options;
mod ports;
mod restore;
mod traffic;
