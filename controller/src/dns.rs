//! Service discovery: the per-network DNS records fed to the embedded resolver's directory,
//! and the names an endpoint is known by (libnetwork's `svcRecords` and `updateSvcRecord`).
//!
//! An endpoint is published under its name (or, when anonymous, its first alias) with an
//! address and a reverse record, and under each alias and DNS name with an address record only,
//! for its IPv4 and IPv6 addresses. Docker names endpoints after their containers, so the
//! endpoint name is the container name on the network. Endpoints created with
//! `disable_resolution` and endpoints of the host and null networks publish nothing.

use std::net::IpAddr;

use libnetwork_resolver::RecordKind;
use tracing::debug;

use crate::controller::Inner;
use crate::records::{EndpointRecord, NetworkRecord};

/// Adds a network to the record directory.
pub(crate) fn add_network(inner: &Inner, record: &NetworkRecord) {
    if let Err(e) = inner.dns.add_network(&record.id, &record.name) {
        debug!(network_id = %record.id, error = %e, "network not added to the dns directory");
    }
}

/// Removes a network (and all its records) from the record directory.
pub(crate) fn remove_network(inner: &Inner, record: &NetworkRecord) {
    if let Err(e) = inner.dns.remove_network(&record.id) {
        debug!(network_id = %record.id, error = %e, "network not in the dns directory");
    }
}

/// The names an endpoint is published under, with their kind, deduplicated (case
/// insensitively), in order: the primary name, then aliases, then DNS names.
pub(crate) fn endpoint_names(ep: &EndpointRecord) -> Vec<(String, RecordKind)> {
    let mut out: Vec<(String, RecordKind)> = Vec::new();
    let mut push = |name: &str, kind| {
        if name.is_empty() || out.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
            return;
        }
        out.push((name.to_owned(), kind));
    };
    let primary = if ep.anonymous {
        ep.my_aliases.first().map(String::as_str)
    } else {
        Some(ep.name.as_str())
    };
    if let Some(p) = primary {
        push(p, RecordKind::Primary);
    }
    for alias in ep.my_aliases.iter().chain(&ep.dns_names) {
        push(alias, RecordKind::Alias);
    }
    out
}

/// The endpoint's addresses (IPv4 first).
pub(crate) fn endpoint_ips(ep: &EndpointRecord) -> Vec<IpAddr> {
    ep.iface
        .addr
        .iter()
        .chain(ep.iface.addrv6.iter())
        .map(|n| n.addr())
        .collect()
}

/// Publishes an endpoint's names on its network.
pub(crate) fn add_endpoint(inner: &Inner, ep: &EndpointRecord) {
    if ep.disable_resolution {
        return;
    }
    for (name, kind) in endpoint_names(ep) {
        for ip in endpoint_ips(ep) {
            if let Err(e) = inner.dns.add_record(&ep.nid, &name, ip, kind) {
                debug!(endpoint_id = %ep.id, name, %ip, error = %e, "dns record not added");
            }
        }
    }
}

/// Withdraws an endpoint's names from its network.
pub(crate) fn remove_endpoint(inner: &Inner, ep: &EndpointRecord) {
    if ep.disable_resolution {
        return;
    }
    for (name, kind) in endpoint_names(ep) {
        for ip in endpoint_ips(ep) {
            if let Err(e) = inner.dns.remove_record(&ep.nid, &name, ip, kind) {
                debug!(endpoint_id = %ep.id, name, %ip, error = %e, "dns record not removed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_is_known_by_its_name_aliases_and_dns_names_once_each() {
        let mut ep = EndpointRecord::new("web", "e", "n", "local", true);
        ep.my_aliases = vec!["www".into(), "WEB".into()];
        ep.dns_names = vec!["site".into(), "www".into()];
        let names = endpoint_names(&ep);
        assert_eq!(
            names,
            vec![
                ("web".to_owned(), RecordKind::Primary),
                ("www".to_owned(), RecordKind::Alias),
                ("site".to_owned(), RecordKind::Alias),
            ]
        );
    }

    #[test]
    fn an_anonymous_endpoint_is_known_by_its_first_alias() {
        let mut ep = EndpointRecord::new("gateway_x", "e", "n", "local", true);
        ep.anonymous = true;
        assert!(endpoint_names(&ep).is_empty());
        ep.my_aliases = vec!["a1".into(), "a2".into()];
        let names = endpoint_names(&ep);
        assert_eq!(names[0], ("a1".to_owned(), RecordKind::Primary));
        assert_eq!(names[1], ("a2".to_owned(), RecordKind::Alias));
        assert_eq!(names.len(), 2);
    }
}
