//! Behaviour of resolv.conf handling: libnetwork's test list, the container derivation, the
//! file functions, and property tests of the parser.

use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use libnetwork_resolvconf::{
    ContainerDns, Directive, Error, Nameserver, ResolvConf, WriteMode, WriteOutcome,
    container_conf, embedded_resolver_conf, filter_nameservers, hash, host_path, read,
    write_atomic, write_if_unmodified, write_in_place,
};
use libnetwork_types::ErrorKind;
use proptest::prelude::*;

fn servers(text: &str) -> Vec<String> {
    ResolvConf::parse(text)
        .nameservers()
        .map(|s| s.to_string())
        .collect()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn ns(text: &str) -> Nameserver {
    text.parse().unwrap()
}

// ---- reading ----------------------------------------------------------------------------------

#[test]
fn read_returns_the_content_and_its_sha256() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("resolv.conf");
    fs::write(&path, "nameserver 1.2.3.4\n").unwrap();
    let file = read(&path).unwrap();
    assert_eq!(file.content, "nameserver 1.2.3.4\n");
    assert_eq!(
        file.hash,
        "sha256:fa98f5668f1a0c7c41c999de53a6947b87e7376ae4211b44ace4083527c02a2d"
    );
    assert_eq!(file.path, path);
    assert_eq!(
        hash(b""),
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

#[test]
fn reading_a_missing_file_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let err = read(&dir.path().join("missing")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.to_string().starts_with("read resolv.conf "), "{err}");
}

#[test]
fn invalid_utf8_is_read_leniently_and_hashed_raw() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("resolv.conf");
    let bytes = b"# caf\xe9\nnameserver 1.2.3.4\n";
    fs::write(&path, bytes).unwrap();
    let file = read(&path).unwrap();
    assert_eq!(file.hash, hash(bytes));
    assert_eq!(servers(&file.content), ["1.2.3.4"]);
}

// ---- libnetwork's parsing tests ---------------------------------------------------------------

#[test]
fn nameservers_are_listed_in_order_ignoring_comments() {
    let cases: [(&str, &[&str]); 8] = [
        ("", &[]),
        ("search example.com", &[]),
        ("  nameserver 1.2.3.4   ", &["1.2.3.4"]),
        (
            "search example.com\nnameserver 1.2.3.4\nnameserver 40.3.200.10",
            &["1.2.3.4", "40.3.200.10"],
        ),
        (
            "nameserver 1.2.3.4\nsearch example.com\nnameserver 4.30.20.100",
            &["1.2.3.4", "4.30.20.100"],
        ),
        (
            "search example.com\nnameserver 1.2.3.4\n#nameserver 4.3.2.1",
            &["1.2.3.4"],
        ),
        (
            "search example.com\nnameserver 1.2.3.4 # not 4.3.2.1",
            &["1.2.3.4"],
        ),
        (
            "nameserver fe80::1%eth0\nnameserver 2001:db8::53",
            &["fe80::1%eth0", "2001:db8::53"],
        ),
    ];
    for (text, want) in cases {
        assert_eq!(servers(text), want, "{text:?}");
    }
}

#[test]
fn nameservers_as_cidr_are_host_prefixes() {
    let conf = ResolvConf::parse("nameserver 1.2.3.4\nnameserver fe80::1%eth0\n");
    let cidrs: Vec<String> = conf.nameservers().map(Nameserver::cidr).collect();
    assert_eq!(cidrs, ["1.2.3.4/32", "fe80::1/128"]);
}

#[test]
fn nameservers_can_be_selected_by_family() {
    let conf = ResolvConf::parse("nameserver 1.2.3.4\nnameserver 2001:db8::1\n");
    let v6: Vec<IpAddr> = conf
        .nameservers()
        .filter(|s| s.is_ipv6())
        .map(|s| s.addr())
        .collect();
    assert_eq!(v6, ["2001:db8::1".parse::<IpAddr>().unwrap()]);
}

#[test]
fn malformed_nameserver_lines_are_ignored_but_kept() {
    let text = "nameserver foo\nnameserver\nnameserver 1.2.3.4 5.6.7.8\nnameserver 1.2.3.4%eth0\n";
    let conf = ResolvConf::parse(text);
    assert_eq!(conf.nameservers().count(), 0);
    assert!(
        conf.lines()
            .iter()
            .all(|l| *l.directive() == Directive::Other)
    );
    assert_eq!(conf.render(), text);
}

#[test]
fn search_domains_come_from_the_last_search_line() {
    let cases: [(&str, Option<&[&str]>); 9] = [
        ("", None),
        ("# ignored", None),
        ("search example.com", Some(&["example.com"])),
        ("search example.com # ignored", Some(&["example.com"])),
        ("\t search example.com  ", Some(&["example.com"])),
        (
            "search foo.example.com example.com",
            Some(&["foo.example.com", "example.com"]),
        ),
        (
            "search a.com\nsearch b.com c.com",
            Some(&["b.com", "c.com"]),
        ),
        (
            "search a.com\nnameserver 1.2.3.4\nsearch b.com # c.com",
            Some(&["b.com"]),
        ),
        ("search", Some(&[])),
    ];
    for (text, want) in cases {
        let conf = ResolvConf::parse(text);
        assert_eq!(
            conf.search().map(|d| d.to_vec()),
            want.map(strings),
            "{text:?}"
        );
    }
}

#[test]
fn options_come_from_the_last_options_line() {
    let cases: [(&str, Option<&[&str]>); 7] = [
        ("", None),
        ("# ignored", None),
        ("options opt1", Some(&["opt1"])),
        ("options opt1 # ignored", Some(&["opt1"])),
        ("\t options   opt1 opt2  ", Some(&["opt1", "opt2"])),
        ("options opt1\noptions opt2 opt3", Some(&["opt2", "opt3"])),
        (
            "options opt1\nnameserver 1.2.3.4\noptions ndots:5 # x",
            Some(&["ndots:5"]),
        ),
    ];
    for (text, want) in cases {
        let conf = ResolvConf::parse(text);
        assert_eq!(
            conf.options().map(|o| o.to_vec()),
            want.map(strings),
            "{text:?}"
        );
    }
}

#[test]
fn ndots_is_read_and_malformed_values_are_bad_requests() {
    assert_eq!(
        ResolvConf::parse("options ndots:3 rotate").ndots().unwrap(),
        Some(3)
    );
    assert_eq!(ResolvConf::parse("options rotate").ndots().unwrap(), None);
    assert_eq!(ResolvConf::parse("").ndots().unwrap(), None);
    for (text, want) in [
        ("options ndots", "invalid ndots option \"ndots\""),
        ("options ndots:1:2", "invalid ndots option \"ndots:1:2\""),
        (
            "options ndots:foo",
            "invalid number for ndots option \"foo\"",
        ),
        ("options ndots:-1", "invalid number for ndots option \"-1\""),
        ("options ndots:", "invalid number for ndots option \"\""),
    ] {
        let err = ResolvConf::parse(text).ndots().unwrap_err();
        assert!(err.to_string().ends_with(want), "{text}: {err}");
        assert_eq!(err.kind(), ErrorKind::BadRequest);
    }
}

// ---- building (libnetwork's Build tests) ------------------------------------------------------

fn overrides(search: &[&str], options: &[&str]) -> ContainerDns {
    ContainerDns {
        nameservers: Some(vec![ns("10.0.0.1"), ns("10.0.0.2"), ns("10.0.0.3")]),
        search: Some(strings(search)),
        options: Some(strings(options)),
        ..ContainerDns::default()
    }
}

#[test]
fn build_writes_search_nameservers_and_options() {
    let conf = container_conf(&ResolvConf::default(), &overrides(&["search1"], &["opt1"])).unwrap();
    let want = "search search1\nnameserver 10.0.0.1\nnameserver 10.0.0.2\nnameserver 10.0.0.3\noptions opt1\n";
    assert_eq!(conf.render(), want);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("resolv.conf");
    let written_hash = write_atomic(&path, conf.render().as_bytes()).unwrap();
    let file = read(&path).unwrap();
    assert_eq!(file.content, want);
    assert_eq!(file.hash, written_hash);
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o644
    );
}

#[test]
fn a_dot_search_domain_suppresses_the_search_line() {
    let host = ResolvConf::parse("search corp.example\nnameserver 10.1.1.1\n");
    let conf = container_conf(&host, &overrides(&["."], &["opt1"])).unwrap();
    assert_eq!(
        conf.render(),
        "nameserver 10.0.0.1\nnameserver 10.0.0.2\nnameserver 10.0.0.3\noptions opt1\n"
    );
}

#[test]
fn empty_options_write_no_options_line() {
    let host = ResolvConf::parse("nameserver 10.1.1.1\noptions rotate\n");
    let conf = container_conf(&host, &overrides(&["search1"], &[])).unwrap();
    assert_eq!(
        conf.render(),
        "search search1\nnameserver 10.0.0.1\nnameserver 10.0.0.2\nnameserver 10.0.0.3\n"
    );
}

#[test]
fn overrides_replace_each_category_independently_and_keep_other_lines() {
    let host = ResolvConf::parse(
        "# generated by the host\nsearch host.example\nnameserver 10.1.1.1\noptions rotate\nsortlist 10.0.0.0/8\n",
    );
    let settings = ContainerDns {
        search: Some(strings(&["corp.example"])),
        ..ContainerDns::default()
    };
    let conf = container_conf(&host, &settings).unwrap();
    assert_eq!(
        conf.render(),
        "# generated by the host\nsearch corp.example\nnameserver 10.1.1.1\noptions rotate\nsortlist 10.0.0.0/8\n"
    );
}

#[test]
fn server_overrides_are_used_as_given() {
    let host = ResolvConf::parse("nameserver 10.1.1.1\n");
    let settings = ContainerDns {
        nameservers: Some(vec![ns("127.0.0.1"), ns("2001:db8::1")]),
        ..ContainerDns::default()
    };
    let conf = container_conf(&host, &settings).unwrap();
    assert_eq!(
        conf.render(),
        "nameserver 127.0.0.1\nnameserver 2001:db8::1\n"
    );
}

#[test]
fn host_loopback_servers_are_filtered_even_with_search_overrides() {
    let host = ResolvConf::parse("nameserver 127.0.0.53\n");
    let settings = ContainerDns {
        options: Some(strings(&["ndots:2"])),
        ..ContainerDns::default()
    };
    let conf = container_conf(&host, &settings).unwrap();
    assert_eq!(
        conf.render(),
        "nameserver 8.8.8.8\nnameserver 8.8.4.4\noptions ndots:2\n"
    );
}

#[test]
fn invalid_override_values_are_bad_requests_and_change_nothing() {
    let mut conf = ResolvConf::parse("search a.example\noptions rotate\n");
    let before = conf.clone();
    let err = conf
        .set_search(&strings(&["ok.example", "bad domain"]))
        .unwrap_err();
    assert!(matches!(err, Error::InvalidSearchDomain(ref d) if d == "bad domain"));
    assert_eq!(err.kind(), ErrorKind::BadRequest);
    let err = conf.set_options(&strings(&["#x"])).unwrap_err();
    assert!(matches!(err, Error::InvalidOption(_)));
    let err = conf.set_search(&strings(&[""])).unwrap_err();
    assert!(matches!(err, Error::InvalidSearchDomain(_)));
    assert_eq!(conf, before);
}

// ---- filtering (libnetwork's TestFilterResolvDns) ---------------------------------------------

fn filtered(text: &str, ipv6: bool) -> String {
    let mut conf = ResolvConf::parse(text);
    filter_nameservers(
        &mut conf,
        &ContainerDns {
            ipv6,
            ..ContainerDns::default()
        },
    );
    conf.render()
}

#[test]
fn loopback_servers_are_removed_in_any_position() {
    let want = "nameserver 10.16.60.14\nnameserver 10.16.60.21\n";
    for text in [
        "nameserver 127.0.0.1\nnameserver 10.16.60.14\nnameserver 10.16.60.21\n",
        "nameserver 10.16.60.14\nnameserver 127.0.0.1\nnameserver 10.16.60.21\n",
        "nameserver 10.16.60.14\nnameserver 10.16.60.21\nnameserver 127.0.0.1\n",
        "nameserver 10.16.60.14\nnameserver 127.0.1.1\nnameserver 10.16.60.21\n",
        "nameserver 127.3.4.5\nnameserver 10.16.60.14\nnameserver ::1\nnameserver 10.16.60.21\n",
    ] {
        assert_eq!(filtered(text, false), want, "{text:?}");
        assert_eq!(filtered(text, true), want, "{text:?}");
    }
}

#[test]
fn ipv6_servers_are_removed_without_ipv6_and_kept_with_it() {
    let text = "nameserver 10.16.60.14\nnameserver 2002:dead:beef::1\nnameserver 10.16.60.21\nnameserver ::1";
    assert_eq!(
        filtered(text, false),
        "nameserver 10.16.60.14\nnameserver 10.16.60.21\n"
    );
    assert_eq!(
        filtered(text, true),
        "nameserver 10.16.60.14\nnameserver 2002:dead:beef::1\nnameserver 10.16.60.21\n"
    );
}

#[test]
fn zoned_link_local_servers_are_removed_without_ipv6() {
    let text = "nameserver 10.16.60.14\nnameserver FE80::BB1%1\nnameserver FE80::BB1%eth0\nnameserver 10.16.60.21\n";
    assert_eq!(
        filtered(text, false),
        "nameserver 10.16.60.14\nnameserver 10.16.60.21\n"
    );
    assert_eq!(filtered(text, true), text);
}

#[test]
fn fallback_servers_are_added_only_when_none_are_left() {
    let text = "search example.com\nnameserver 127.0.0.1\nnameserver ::1\noptions rotate\n";
    assert_eq!(
        filtered(text, false),
        "search example.com\noptions rotate\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n"
    );
    assert_eq!(
        filtered(text, true),
        "search example.com\noptions rotate\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n\
         nameserver 2001:4860:4860::8888\nnameserver 2001:4860:4860::8844\n"
    );
    assert_eq!(
        filtered("nameserver 10.0.0.1\n", true),
        "nameserver 10.0.0.1\n"
    );
    assert_eq!(
        filtered("", false),
        "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"
    );
}

#[test]
fn fallback_servers_are_configurable() {
    let mut conf = ResolvConf::parse("nameserver 127.0.0.1\n");
    let settings = ContainerDns {
        fallback_ipv4: vec![ns("9.9.9.9")],
        ..ContainerDns::default()
    };
    assert!(filter_nameservers(&mut conf, &settings));
    assert_eq!(conf.render(), "nameserver 9.9.9.9\n");
}

#[test]
fn comments_and_unknown_lines_survive_filtering_in_place() {
    let text = "# head\ndomain example.com\nnameserver 127.0.0.1 # local\n; old style\nnameserver 10.0.0.1\n";
    assert_eq!(
        filtered(text, false),
        "# head\ndomain example.com\n; old style\nnameserver 10.0.0.1\n"
    );
}

// ---- embedded resolver (rebuildDNS) -----------------------------------------------------------

#[test]
fn embedded_resolver_conf_puts_the_resolver_first_and_adds_ndots_zero() {
    let host = ResolvConf::parse(
        "search pommesfrites.fr\nnameserver 12.34.56.78\nnameserver 2001:4860:4860::8888\n",
    );
    let (conf, ndots_set) = embedded_resolver_conf(&host, "127.0.0.11".parse().unwrap()).unwrap();
    assert!(!ndots_set);
    assert_eq!(
        conf.render(),
        "search pommesfrites.fr\nnameserver 127.0.0.11\nnameserver 2001:4860:4860::8888\noptions ndots:0\n"
    );
}

#[test]
fn embedded_resolver_conf_keeps_a_user_ndots() {
    let host = ResolvConf::parse("nameserver 10.0.0.1\noptions ndots:0 rotate\n");
    let (conf, ndots_set) = embedded_resolver_conf(&host, "127.0.0.11".parse().unwrap()).unwrap();
    assert!(ndots_set);
    assert_eq!(
        conf.render(),
        "nameserver 127.0.0.11\noptions ndots:0 rotate\n"
    );
}

#[test]
fn embedded_resolver_conf_rejects_a_malformed_ndots() {
    let host = ResolvConf::parse("nameserver 10.0.0.1\noptions ndots:foo\n");
    let err = embedded_resolver_conf(&host, "127.0.0.11".parse().unwrap()).unwrap_err();
    assert!(matches!(err, Error::InvalidNdotsNumber(_)));
}

// ---- systemd-resolved -------------------------------------------------------------------------

fn write(dir: &Path, name: &str, content: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    fs::write(&path, content).unwrap();
    path
}

#[test]
fn the_stub_only_host_file_is_replaced_by_resolveds_upstream_file() {
    let dir = tempfile::tempdir().unwrap();
    let host = write(
        dir.path(),
        "resolv.conf",
        "# stub\nnameserver 127.0.0.53\noptions edns0\n",
    );
    let upstream = write(dir.path(), "upstream.conf", "nameserver 10.0.0.53\n");
    assert_eq!(host_path(&host, &upstream), upstream);
    let file = libnetwork_resolvconf::read_host(&host, &upstream).unwrap();
    assert_eq!(file.content, "nameserver 10.0.0.53\n");
}

#[test]
fn the_host_file_is_kept_when_it_lists_other_servers_or_upstream_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = write(dir.path(), "upstream.conf", "nameserver 10.0.0.53\n");
    let two = write(
        dir.path(),
        "two.conf",
        "nameserver 127.0.0.53\nnameserver 10.0.0.1\n",
    );
    assert_eq!(host_path(&two, &upstream), two);
    let other = write(dir.path(), "other.conf", "nameserver 127.0.0.1\n");
    assert_eq!(host_path(&other, &upstream), other);
    let stub = write(dir.path(), "stub.conf", "nameserver 127.0.0.53\n");
    let missing = dir.path().join("missing.conf");
    assert_eq!(host_path(&stub, &missing), stub);
    let absent_host = dir.path().join("absent.conf");
    assert_eq!(host_path(&absent_host, &upstream), absent_host);
}

// ---- writing ----------------------------------------------------------------------------------

#[test]
fn atomic_write_replaces_the_inode_and_leaves_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "resolv.conf", "nameserver 1.1.1.1\n");
    let before = fs::metadata(&path).unwrap().ino();
    write_atomic(&path, b"nameserver 2.2.2.2\n").unwrap();
    assert_ne!(fs::metadata(&path).unwrap().ino(), before);
    assert_eq!(fs::read_to_string(&path).unwrap(), "nameserver 2.2.2.2\n");
    let names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["resolv.conf"]);
}

#[test]
fn in_place_write_keeps_the_inode_and_truncates() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "resolv.conf",
        "nameserver 10.10.10.10\nnameserver 10.10.10.11\n",
    );
    let before = fs::metadata(&path).unwrap().ino();
    let new_hash = write_in_place(&path, b"nameserver 2.2.2.2\n").unwrap();
    assert_eq!(fs::metadata(&path).unwrap().ino(), before);
    assert_eq!(fs::read_to_string(&path).unwrap(), "nameserver 2.2.2.2\n");
    assert_eq!(new_hash, hash(b"nameserver 2.2.2.2\n"));
}

#[test]
fn in_place_write_creates_a_missing_file_with_mode_0644() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("resolv.conf");
    write_in_place(&path, b"nameserver 2.2.2.2\n").unwrap();
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o644
    );
}

#[test]
fn atomic_write_into_a_missing_directory_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let err = write_atomic(&dir.path().join("nope/resolv.conf"), b"x\n").unwrap_err();
    assert!(matches!(err, Error::Io { .. }));
    assert!(err.to_string().starts_with("write resolv.conf "), "{err}");
}

#[test]
fn rewrite_happens_only_when_the_file_is_unmodified() {
    for mode in [WriteMode::Atomic, WriteMode::InPlace] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("resolv.conf");
        let first = write_atomic(&path, b"nameserver 1.1.1.1\n").unwrap();

        // Unmodified: rewritten, and the new hash is returned.
        let outcome = write_if_unmodified(&path, b"nameserver 2.2.2.2\n", &first, mode).unwrap();
        let second = hash(b"nameserver 2.2.2.2\n");
        assert_eq!(
            outcome,
            WriteOutcome::Written {
                hash: second.clone()
            }
        );
        assert_eq!(fs::read_to_string(&path).unwrap(), "nameserver 2.2.2.2\n");

        // The user edits the file: it is left alone.
        fs::write(&path, "nameserver 9.9.9.9\n").unwrap();
        let outcome = write_if_unmodified(&path, b"nameserver 3.3.3.3\n", &second, mode).unwrap();
        assert_eq!(
            outcome,
            WriteOutcome::UserModified {
                current_hash: hash(b"nameserver 9.9.9.9\n")
            }
        );
        assert_eq!(fs::read_to_string(&path).unwrap(), "nameserver 9.9.9.9\n");
    }
}

#[test]
fn rewriting_a_deleted_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("resolv.conf");
    let err = write_if_unmodified(&path, b"x\n", &hash(b""), WriteMode::Atomic).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(!path.exists());
}

// ---- properties -------------------------------------------------------------------------------

/// Lines that look like resolv.conf, well-formed or not, so the properties exercise every
/// directive and not only random noise.
fn line() -> impl Strategy<Value = String> {
    let token = "[a-z0-9.:%#-]{0,12}";
    let addr = prop_oneof![
        Just("1.2.3.4".to_owned()),
        Just("127.0.0.1".to_owned()),
        Just("::1".to_owned()),
        Just("fe80::1%eth0".to_owned()),
        Just("2001:db8::53".to_owned()),
        token.prop_map(String::from),
    ];
    let space = "[ \t]{0,2}";
    prop_oneof![
        (space, addr, space, "(# [a-z ]{0,8})?")
            .prop_map(|(a, addr, b, c)| format!("{a}nameserver {addr}{b}{c}")),
        proptest::collection::vec(token, 0..4).prop_map(|t| format!("search {}", t.join(" "))),
        proptest::collection::vec(token, 0..4).prop_map(|t| format!("options {}", t.join(" "))),
        "#[ -~]{0,20}",
        "[ -~\t\r]{0,30}",
        "\\PC{0,20}",
    ]
}

fn document() -> impl Strategy<Value = String> {
    (proptest::collection::vec(line(), 0..12), any::<bool>()).prop_map(|(lines, newline)| {
        let mut text = lines.join("\n");
        if newline {
            text.push('\n');
        }
        text
    })
}

proptest! {
    #[test]
    fn parsing_arbitrary_text_never_panics(text in "\\PC*|[\\s\\S]*") {
        let conf = ResolvConf::parse(&text);
        let _ = conf.render();
        let _ = conf.ndots();
        let _ = conf.search();
        let _ = container_conf(&conf, &ContainerDns::default());
    }

    #[test]
    fn parse_render_parse_is_stable(text in document()) {
        let conf = ResolvConf::parse(&text);
        let rendered = conf.render();
        // Rendering reproduces the input, adding only a missing final newline.
        if text.is_empty() || text.ends_with('\n') {
            prop_assert_eq!(&rendered, &text);
        } else {
            prop_assert_eq!(&rendered, &format!("{text}\n"));
        }
        prop_assert_eq!(ResolvConf::parse(&rendered), conf);
    }

    #[test]
    fn arbitrary_text_round_trips_too(text in "[\\s\\S]{0,200}") {
        let conf = ResolvConf::parse(&text);
        prop_assert_eq!(ResolvConf::parse(&conf.render()), conf);
    }

    #[test]
    fn container_files_have_servers_and_no_host_loopback(text in document(), ipv6 in any::<bool>()) {
        let host = ResolvConf::parse(&text);
        let conf = container_conf(&host, &ContainerDns { ipv6, ..ContainerDns::default() }).unwrap();
        prop_assert!(conf.nameservers().next().is_some());
        prop_assert!(conf.nameservers().all(|s| !s.is_loopback() && (ipv6 || !s.is_ipv6())));
        // What the container gets survives a write and a read.
        prop_assert_eq!(ResolvConf::parse(&conf.render()), conf);
    }

    #[test]
    fn overrides_render_to_what_was_asked(
        domains in proptest::collection::vec("[a-z]{1,8}\\.example", 1..4),
        options in proptest::collection::vec("[a-z]{1,6}(:[0-9])?", 0..4),
        text in document(),
    ) {
        let settings = ContainerDns {
            search: Some(domains.clone()),
            options: Some(options.clone()),
            ..ContainerDns::default()
        };
        let conf = ResolvConf::parse(&container_conf(&ResolvConf::parse(&text), &settings).unwrap().render());
        prop_assert_eq!(conf.search(), Some(domains.as_slice()));
        if options.is_empty() {
            prop_assert_eq!(conf.options(), None);
        } else {
            prop_assert_eq!(conf.options(), Some(options.as_slice()));
        }
    }
}
