//! Rule-structure tests for both backends: what `new`, `add_*` and `remove_*` leave in the
//! ruleset, each in a private network namespace.

mod common;

use std::collections::HashSet;

use libnetwork_firewall::{Backend, BackendChoice, Firewall, FirewallConfig, PortMapping};
use libnetwork_types::{ErrorKind, Protocol};

use common::{mapping_count, network, nft_elements, nft_rules, ruleset, sh, tcp_mapping};

fn firewall(backend: BackendChoice) -> Firewall {
    Firewall::new(FirewallConfig {
        backend,
        ipv6: true,
    })
    .unwrap()
}

/// A network with every feature on: IPv6, SNAT, hairpin.
fn full_network() -> libnetwork_firewall::NetworkRules {
    let mut net = network("br-a", "172.30.1.0/24");
    net.ipv6_subnet = Some("fd00:30:1::/64".parse().unwrap());
    net.snat_source = Some("192.168.77.3".parse().unwrap());
    net
}

/// Mappings of every shape: single, same-port range, shifted range, host address (IPv4 and
/// IPv6), IPv6, UDP.
fn mappings(bridge: &str) -> Vec<PortMapping> {
    vec![
        tcp_mapping(bridge, 8080..=8080, "172.30.1.2", 80),
        tcp_mapping(bridge, 8000..=8999, "172.30.1.2", 8000),
        tcp_mapping(bridge, 9100..=9199, "172.30.1.2", 9000),
        PortMapping {
            protocol: Protocol::Udp,
            host_ip: Some("192.168.77.1".parse().unwrap()),
            host_ports: 53..=53,
            container_ip: "172.30.1.2".parse().unwrap(),
            container_port: 53,
            bridge: bridge.to_string(),
        },
        PortMapping {
            protocol: Protocol::Tcp,
            host_ip: None,
            host_ports: 8443..=8444,
            container_ip: "fd00:30:1::2".parse().unwrap(),
            container_port: 443,
            bridge: bridge.to_string(),
        },
        PortMapping {
            protocol: Protocol::Sctp,
            host_ip: Some("fd00:77::1".parse().unwrap()),
            host_ports: 8053..=8060,
            container_ip: "fd00:30:1::2".parse().unwrap(),
            container_port: 8053,
            bridge: bridge.to_string(),
        },
    ]
}

fn ipv6_mappings(bridge: &str) -> usize {
    mappings(bridge)
        .iter()
        .filter(|m| m.container_ip.is_ipv6())
        .count()
}

fn sorted_lines(s: &str) -> Vec<&str> {
    let mut lines: Vec<&str> = s.lines().collect();
    lines.sort_unstable();
    lines
}

fn set(mappings: Vec<PortMapping>) -> HashSet<PortMapping> {
    mappings.into_iter().collect()
}

/// Adds `rule` to the user chain of `backend`.
fn add_user_rule(backend: Backend) {
    match backend {
        Backend::Nftables => {
            sh(
                "nft",
                &["add rule inet libnetwork docker-user ip saddr 10.9.9.9 drop"],
            );
        }
        Backend::Iptables => {
            sh(
                "iptables",
                &["-w", "-A", "DOCKER-USER", "-s", "10.9.9.9", "-j", "DROP"],
            );
        }
    }
}

fn user_rule_present(backend: Backend) -> bool {
    match backend {
        Backend::Nftables => sh(
            "nft",
            &["list", "chain", "inet", "libnetwork", "docker-user"],
        )
        .contains("ip saddr 10.9.9.9 drop"),
        Backend::Iptables => {
            sh("iptables-save", &["-t", "filter"]).contains("-A DOCKER-USER -s 10.9.9.9/32 -j DROP")
        }
    }
}

both_backends!(
    /// A restarted process finds everything and duplicates nothing.
    new_again_keeps_one_copy_of_everything
);
fn new_again_keeps_one_copy_of_everything(backend: BackendChoice) {
    let first = firewall(backend);
    first.add_network(&full_network()).unwrap();
    first
        .add_network(&network("br-b", "172.30.2.0/24"))
        .unwrap();
    first.add_port_mappings(&mappings("br-a")).unwrap();
    let before = ruleset(backend);

    let second = firewall(backend);
    assert_eq!(ruleset(backend), before);
    assert_eq!(set(second.port_mappings()), set(mappings("br-a")));

    // Re-adding what exists changes nothing either.
    second.add_network(&full_network()).unwrap();
    second.add_port_mappings(&mappings("br-a")).unwrap();
    assert_eq!(ruleset(backend).len(), before.len());
    assert_eq!(mapping_count(second.backend()), mappings("br-a").len());
}

both_backends!(
    /// The user chain is created, jumped to first, and its rules are never touched.
    the_user_chain_survives_restarts_and_changes
);
fn the_user_chain_survives_restarts_and_changes(backend: BackendChoice) {
    let first = firewall(backend);
    add_user_rule(first.backend());
    if first.backend() == Backend::Iptables {
        // Someone puts a rule in front of ours; the next start moves ours back to the top.
        sh("iptables", &["-w", "-I", "FORWARD", "1", "-j", "ACCEPT"]);
    }

    let second = firewall(backend);
    second.add_network(&full_network()).unwrap();
    second.remove_network("br-a").unwrap();
    second.reapply().unwrap();
    assert!(user_rule_present(second.backend()), "{}", ruleset(backend));

    match second.backend() {
        Backend::Nftables => {
            let forward = sh("nft", &["list", "chain", "inet", "libnetwork", "forward"]);
            let first_rule = forward
                .lines()
                .find(|l| l.contains("jump") || l.contains("vmap"));
            // The first rule may carry the base batch's mark as its comment.
            assert!(
                first_rule.is_some_and(|r| r.trim().starts_with("jump docker-user")),
                "{forward}"
            );
        }
        Backend::Iptables => {
            let save = sh("iptables-save", &["-t", "filter"]);
            let forward: Vec<&str> = save
                .lines()
                .filter(|l| l.starts_with("-A FORWARD "))
                .collect();
            assert_eq!(
                forward[..2],
                ["-A FORWARD -j DOCKER-USER", "-A FORWARD -j DOCKER-FORWARD"]
            );
            assert_eq!(
                forward.iter().filter(|l| l.contains("DOCKER-USER")).count(),
                1,
                "{save}"
            );
        }
    }
}

both_backends!(
    /// Removing a network removes its rules and mappings and nothing else, whatever its settings.
    removing_a_network_leaves_nothing_of_it
);
fn removing_a_network_leaves_nothing_of_it(backend: BackendChoice) {
    let fw = firewall(backend);
    fw.add_network(&network("br-b", "172.30.2.0/24")).unwrap();
    fw.add_port_mappings(&[tcp_mapping("br-b", 7000..=7000, "172.30.2.2", 7000)])
        .unwrap();
    let before = ruleset(backend);

    let mut variants = vec![full_network()];
    let mut internal = network("br-a", "172.30.1.0/24");
    internal.internal = true;
    internal.icc = false;
    variants.push(internal);
    let mut plain = network("br-a", "172.30.1.0/24");
    plain.masquerade = false;
    plain.hairpin = false;
    variants.push(plain);

    for net in variants {
        fw.add_network(&net).unwrap();
        if !net.internal {
            fw.add_port_mappings(&mappings("br-a")).unwrap();
        }
        assert_ne!(ruleset(backend), before, "{net:?} added nothing");
        fw.remove_network("br-a").unwrap();
        assert_eq!(ruleset(backend), before, "{net:?} left rules behind");
    }
    assert_eq!(fw.port_mappings().len(), 1);
    // Removing it again is a no-op.
    fw.remove_network("br-a").unwrap();
}

both_backends!(
    /// Removing port mappings removes exactly their rules.
    removing_port_mappings_leaves_nothing_of_them
);
fn removing_port_mappings_leaves_nothing_of_them(backend: BackendChoice) {
    let fw = firewall(backend);
    fw.add_network(&full_network()).unwrap();
    let keep = tcp_mapping("br-a", 7000..=7000, "172.30.1.3", 7000);
    fw.add_port_mappings(std::slice::from_ref(&keep)).unwrap();
    let before = ruleset(backend);

    fw.add_port_mappings(&mappings("br-a")).unwrap();
    assert_eq!(mapping_count(fw.backend()), 1 + mappings("br-a").len());
    fw.remove_port_mappings(&mappings("br-a")).unwrap();
    assert_eq!(ruleset(backend), before);
    assert_eq!(fw.port_mappings(), vec![keep.clone()]);

    // Unknown mappings are skipped, and an unspecified host address means "all addresses".
    fw.remove_port_mappings(&mappings("br-a")).unwrap();
    let mut same = keep;
    same.host_ip = Some("0.0.0.0".parse().unwrap());
    fw.remove_port_mappings(&[same]).unwrap();
    assert!(fw.port_mappings().is_empty());
    assert_eq!(mapping_count(fw.backend()), 0);
}

both_backends!(
    /// A range of ports costs no more rules than a single port: with iptables one rule, shifted
    /// or not; with nftables one map element (one per port when shifted) and no rule at all.
    a_port_range_is_one_rule_or_element
);
fn a_port_range_is_one_rule_or_element(backend: BackendChoice) {
    let fw = firewall(backend);
    fw.add_network(&full_network()).unwrap();
    let nft = fw.backend() == Backend::Nftables;
    let published = nft.then(|| nft_rules("published"));
    fw.add_port_mappings(&[
        tcp_mapping("br-a", 10000..=19999, "172.30.1.2", 10000),
        tcp_mapping("br-a", 30000..=30999, "172.30.1.2", 40000),
    ])
    .unwrap();
    assert_eq!(mapping_count(fw.backend()), 2, "{}", ruleset(backend));
    if nft {
        assert_eq!(Some(nft_rules("published")), published);
        let elements = nft_elements("pub");
        let count = |set: &str| elements.iter().filter(|(s, _)| s == set).count();
        assert_eq!(count("pub4"), 1);
        assert_eq!(count("pub4-port"), 1000);
        assert_eq!(elements.len(), 1001);
    }
}

both_backends!(
    /// Adding a network again replaces its rules instead of adding a second set.
    adding_a_network_again_replaces_its_rules
);
fn adding_a_network_again_replaces_its_rules(backend: BackendChoice) {
    let fw = firewall(backend);
    let mut closed = network("br-a", "172.30.1.0/24");
    closed.icc = false;
    closed.masquerade = false;
    fw.add_network(&closed).unwrap();
    let closed_rules = ruleset(backend);

    fw.add_network(&full_network()).unwrap();
    let full_rules = ruleset(backend);
    assert_ne!(full_rules, closed_rules);
    fw.add_network(&closed).unwrap();
    assert_eq!(ruleset(backend), closed_rules);
}

both_backends!(
    /// A restarted process can remove the mappings an earlier one installed.
    mappings_of_an_earlier_process_can_be_removed
);
fn mappings_of_an_earlier_process_can_be_removed(backend: BackendChoice) {
    let first = firewall(backend);
    first.add_network(&full_network()).unwrap();
    first
        .add_network(&network("br-b", "172.30.2.0/24"))
        .unwrap();
    let before = ruleset(backend);
    first.add_port_mappings(&mappings("br-a")).unwrap();
    drop(first);

    let second = firewall(backend);
    second
        .remove_port_mappings(&second.port_mappings())
        .unwrap();
    assert_eq!(ruleset(backend), before);
    // Networks found at start count as existing.
    second.add_port_mappings(&mappings("br-b")[..1]).unwrap();
    second.remove_network("br-b").unwrap();
    assert!(second.port_mappings().is_empty());
}

both_backends!(
    /// After another tool flushed the ruleset, reapply installs everything again.
    reapply_restores_a_flushed_ruleset
);
fn reapply_restores_a_flushed_ruleset(backend: BackendChoice) {
    let fw = firewall(backend);
    fw.add_network(&full_network()).unwrap();
    fw.add_port_mappings(&mappings("br-a")).unwrap();
    let before = ruleset(backend);

    sh("nft", &["flush ruleset"]);
    fw.reapply().unwrap();
    // Mapping rules may come back in another order, which does not matter.
    assert_eq!(sorted_lines(&ruleset(backend)), sorted_lines(&before));
    assert_eq!(set(fw.port_mappings()), set(mappings("br-a")));
    // The handles/specifications are current again: removal works.
    fw.remove_network("br-a").unwrap();
}

both_backends!(
    /// Bad requests and unknown bridges are refused without touching the ruleset.
    invalid_requests_change_nothing
);
fn invalid_requests_change_nothing(backend: BackendChoice) {
    let fw = firewall(backend);
    fw.add_network(&full_network()).unwrap();
    let before = ruleset(backend);

    let unknown = tcp_mapping("br-zz", 80..=80, "172.30.9.2", 80);
    assert_eq!(
        fw.add_port_mappings(&[unknown]).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    let mut bad_name = network("br a\"", "172.30.1.0/24");
    assert_eq!(
        fw.add_network(&bad_name).unwrap_err().kind(),
        ErrorKind::BadRequest
    );
    bad_name.bridge = "a-name-longer-than-15".into();
    assert_eq!(
        fw.add_network(&bad_name).unwrap_err().kind(),
        ErrorKind::BadRequest
    );
    let bad = [
        tcp_mapping("br-a", 0..=0, "172.30.1.2", 80),
        #[allow(clippy::reversed_empty_ranges)]
        tcp_mapping("br-a", 90..=80, "172.30.1.2", 80),
        tcp_mapping("br-a", 80..=90, "172.30.1.2", 65530),
        tcp_mapping("br-a", 80..=80, "0.0.0.0", 80),
        PortMapping {
            host_ip: Some("fd00::1".parse().unwrap()),
            ..tcp_mapping("br-a", 80..=80, "172.30.1.2", 80)
        },
    ];
    for m in bad {
        let good = tcp_mapping("br-a", 81..=81, "172.30.1.2", 81);
        let err = fw.add_port_mappings(&[good, m.clone()]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadRequest, "{m:?}: {err}");
    }
    assert_eq!(ruleset(backend), before);
}

both_backends!(
    /// With IPv6 rules off, IPv6 subnets and mappings are skipped.
    ipv6_parts_are_skipped_when_ipv6_is_off
);
fn ipv6_parts_are_skipped_when_ipv6_is_off(backend: BackendChoice) {
    let fw = Firewall::new(FirewallConfig {
        backend,
        ipv6: false,
    })
    .unwrap();
    fw.add_network(&full_network()).unwrap();
    fw.add_port_mappings(&mappings("br-a")).unwrap();
    let rules = ruleset(backend);
    assert!(!rules.contains("fd00:30:1"), "{rules}");
    assert_eq!(
        fw.port_mappings().len(),
        mappings("br-a").len() - ipv6_mappings("br-a")
    );
}

#[test]
fn auto_picks_nftables_where_it_works() {
    if !libnetwork_testutil::privileged("auto_picks_nftables_where_it_works") {
        return;
    }
    libnetwork_testutil::in_new_netns(|| {
        let fw = Firewall::new(FirewallConfig::default()).unwrap();
        assert_eq!(fw.backend(), Backend::Nftables);
    });
}

both_backends!(
    /// Removal still works when another tool deleted some of our rules or elements (iptables:
    /// stale specifications are read again and the removal retried; nftables: elements are
    /// deleted whether they are there or not).
    removal_copes_with_rules_deleted_behind_its_back
);
fn removal_copes_with_rules_deleted_behind_its_back(backend: BackendChoice) {
    let fw = firewall(backend);
    let before = ruleset(backend);
    fw.add_network(&full_network()).unwrap();
    fw.add_port_mappings(&mappings("br-a")).unwrap();
    match fw.backend() {
        Backend::Nftables => {
            // Some mapping elements (a whole map, and one element of a shifted range) and some
            // network elements.
            sh("nft", &["flush map inet libnetwork pub4"]);
            sh(
                "nft",
                &["delete element inet libnetwork pub4-port { tcp . 9150 }"],
            );
            sh(
                "nft",
                &["delete element inet libnetwork bridges { \"br-a\" }"],
            );
            sh("nft", &["flush set inet libnetwork nets6"]);
        }
        Backend::Iptables => {
            sh("iptables", &["-w", "-t", "nat", "-F", "DOCKER"]);
            sh("ip6tables", &["-w", "-t", "nat", "-F", "DOCKER"]);
        }
    }
    fw.remove_port_mappings(&mappings("br-a")[..2]).unwrap();
    fw.remove_network("br-a").unwrap();
    assert_eq!(ruleset(backend), before);
    assert!(fw.port_mappings().is_empty());
}

both_backends!(
    /// A batch the backend rejects changes nothing, also across the IPv4 and IPv6 runs of
    /// iptables (the IPv4 part is undone when the IPv6 part fails).
    a_failed_batch_changes_nothing
);
fn a_failed_batch_changes_nothing(backend: BackendChoice) {
    let fw = firewall(backend);
    fw.add_network(&full_network()).unwrap();
    // Break where our IPv6 mappings go (nftables: the map of shifted IPv6 ports, which the
    // IPv6 mapping needs while the IPv4 ones go to other maps).
    match fw.backend() {
        Backend::Nftables => {
            sh("nft", &["flush chain inet libnetwork published"]);
            sh("nft", &["delete map inet libnetwork pub6-port"]);
        }
        Backend::Iptables => {
            sh("ip6tables", &["-w", "-t", "nat", "-F"]);
            sh("ip6tables", &["-w", "-t", "nat", "-X", "DOCKER"]);
        }
    }
    let before = ruleset(backend);
    let err = fw.add_port_mappings(&mappings("br-a")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Internal, "{err}");
    assert_eq!(ruleset(backend), before);
    assert!(fw.port_mappings().is_empty());
}

/// Runs `body` with an nftables firewall in a new network namespace, when privileged.
fn nft_only(name: &str, body: fn(Firewall)) {
    if !libnetwork_testutil::privileged(name) {
        return;
    }
    libnetwork_testutil::in_new_netns(|| body(firewall(BackendChoice::Nftables)));
}

#[test]
fn nft_shows_the_elements_as_it_would_write_them() {
    // The kernel got the bytes nft itself would send: nft decodes them back to these.
    nft_only("nft_shows_the_elements_as_it_would_write_them", |fw| {
        fw.add_network(&full_network()).unwrap();
        fw.add_port_mappings(&mappings("br-a")).unwrap();
        let rules = ruleset(BackendChoice::Nftables);
        let net = "comment \"lnbr,br-a,172.30.1.0/24,fd00:30:1::/64,192.168.77.3,mch\"";
        let tag = |m: &str| format!("comment \"lnmap,{m},br-a\"");
        let expected = [
            format!("\"br-a\" {net}"),
            format!("\"br-a\" . \"br-a\" {net}"),
            format!("172.30.1.0/24 . \"br-a\" {net}"),
            format!("fd00:30:1::/64 . \"br-a\" {net}"),
            format!("\"br-a\" {net} : 192.168.77.3"),
            format!(
                "tcp . 8080 {} : 172.30.1.2 . 80",
                tag("tcp,*,8080-8080,172.30.1.2,80")
            ),
            format!(
                "tcp . 8000-8999 {} : 172.30.1.2",
                tag("tcp,*,8000-8999,172.30.1.2,8000")
            ),
            format!(
                "tcp . 9199 {} : 172.30.1.2 . 9099",
                tag("tcp,*,9100-9199,172.30.1.2,9000")
            ),
            format!(
                "192.168.77.1 . udp . 53 {} : 172.30.1.2 . 53",
                tag("udp,192.168.77.1,53-53,172.30.1.2,53")
            ),
            format!(
                "tcp . 8444 {} : fd00:30:1::2 . 444",
                tag("tcp,*,8443-8444,fd00:30:1::2,443")
            ),
            format!(
                "fd00:77::1 . sctp . 8053-8060 {} : fd00:30:1::2",
                tag("sctp,fd00:77::1,8053-8060,fd00:30:1::2,8053")
            ),
        ];
        for element in expected {
            assert!(rules.contains(&element), "{element} not in\n{rules}");
        }
    });
}

both_backends!(
    /// A restarted process removes a network it found, with its mappings, completely.
    a_network_found_at_start_is_removed_completely
);
fn a_network_found_at_start_is_removed_completely(backend: BackendChoice) {
    let first = firewall(backend);
    first
        .add_network(&network("br-b", "172.30.2.0/24"))
        .unwrap();
    let before = ruleset(backend);
    first.add_network(&full_network()).unwrap();
    first.add_port_mappings(&mappings("br-a")).unwrap();
    drop(first);

    let second = firewall(backend);
    second.remove_network("br-a").unwrap();
    assert_eq!(ruleset(backend), before);
    assert!(second.port_mappings().is_empty());
}

#[test]
fn reapply_re_creates_the_networks_found_at_start() {
    // nftables keeps each network's settings in its elements' comments.
    nft_only("reapply_re_creates_the_networks_found_at_start", |first| {
        first.add_network(&full_network()).unwrap();
        first.add_port_mappings(&mappings("br-a")).unwrap();
        let before = ruleset(BackendChoice::Nftables);
        drop(first);

        let second = firewall(BackendChoice::Nftables);
        sh("nft", &["flush ruleset"]);
        second.reapply().unwrap();
        assert_eq!(
            sorted_lines(&ruleset(BackendChoice::Nftables)),
            sorted_lines(&before)
        );
    });
}

#[test]
fn replacing_a_network_copes_with_elements_deleted_behind_its_back() {
    nft_only(
        "replacing_a_network_copes_with_elements_deleted_behind_its_back",
        |fw| {
            let mut closed = network("br-a", "172.30.1.0/24");
            closed.icc = false;
            closed.masquerade = false;
            fw.add_network(&closed).unwrap();
            let closed_rules = ruleset(BackendChoice::Nftables);
            fw.add_network(&full_network()).unwrap();
            sh("nft", &["flush set inet libnetwork nets6"]);
            sh(
                "nft",
                &["delete element inet libnetwork same { \"br-a\" . \"br-a\" }"],
            );
            fw.add_network(&closed).unwrap();
            assert_eq!(ruleset(BackendChoice::Nftables), closed_rules);
        },
    );
}

#[test]
fn an_overlapping_mapping_of_the_same_kind_is_refused_and_changes_nothing() {
    // Two same-port ranges over the same ports would be two overlapping elements of one map;
    // the port allocator never asks for that, and the kernel refuses it.
    nft_only(
        "an_overlapping_mapping_of_the_same_kind_is_refused_and_changes_nothing",
        |fw| {
            fw.add_network(&full_network()).unwrap();
            fw.add_port_mappings(&[tcp_mapping("br-a", 8000..=8999, "172.30.1.2", 8000)])
                .unwrap();
            let before = ruleset(BackendChoice::Nftables);
            let err = fw
                .add_port_mappings(&[
                    tcp_mapping("br-a", 7000..=7000, "172.30.1.3", 7000),
                    tcp_mapping("br-a", 8500..=8600, "172.30.1.3", 8500),
                ])
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Internal, "{err}");
            assert!(err.to_string().contains("pub4"), "{err}");
            assert_eq!(ruleset(BackendChoice::Nftables), before);
            assert_eq!(fw.port_mappings().len(), 1);
        },
    );
}
