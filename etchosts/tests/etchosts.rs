//! Behaviour of hosts files: libnetwork's test list, both write modes, foreign edits, failures,
//! concurrency, and property tests of the model.

use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use libnetwork_etchosts::{
    BuildOptions, DEFAULT_LINES, Error, Hosts, HostsFile, Record, WriteMode,
};
use libnetwork_types::ErrorKind;
use proptest::prelude::*;

const MODES: [WriteMode; 2] = [WriteMode::Atomic, WriteMode::InPlace];

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn record(addr: &str, hosts: &str) -> Record {
    Record::from_hosts(ip(addr), hosts).unwrap()
}

fn defaults() -> String {
    DEFAULT_LINES
        .iter()
        .map(|line| format!("{line}\n"))
        .collect()
}

fn temp_path() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hosts");
    (dir, path)
}

fn build(path: &Path, options: &BuildOptions, mode: WriteMode) -> Hosts {
    Hosts::build(path, options, mode).unwrap()
}

fn on_disk(path: &Path) -> String {
    fs::read_to_string(path).unwrap()
}

fn own(addr: &str, hostname: &str, domainname: &str) -> BuildOptions {
    BuildOptions {
        ip: Some(ip(addr)),
        hostname: hostname.to_owned(),
        domainname: domainname.to_owned(),
        extra: Vec::new(),
    }
}

// ---- libnetwork's tests -----------------------------------------------------------------------

#[test]
fn default_build_has_the_localhost_and_ipv6_lines_in_order() {
    let (_dir, path) = temp_path();
    for mode in MODES {
        for _ in 0..5 {
            build(&path, &BuildOptions::default(), mode);
            assert_eq!(
                on_disk(&path),
                "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
                 fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n\
                 ff02::2\tip6-allrouters\n"
            );
        }
    }
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o644
    );
}

#[test]
fn build_with_hostname_and_domainname_lists_the_fqdn_first() {
    let (_dir, path) = temp_path();
    build(
        &path,
        &own("10.11.12.13", "testhostname", "testdomainname"),
        WriteMode::Atomic,
    );
    assert_eq!(
        on_disk(&path),
        format!(
            "10.11.12.13\ttesthostname.testdomainname testhostname\n{}",
            defaults()
        )
    );
}

#[test]
fn build_with_hostname_only_lists_the_hostname() {
    let (_dir, path) = temp_path();
    build(
        &path,
        &own("10.11.12.13", "testhostname", ""),
        WriteMode::Atomic,
    );
    assert_eq!(
        on_disk(&path),
        format!("10.11.12.13\ttesthostname\n{}", defaults())
    );
}

#[test]
fn build_with_a_dotted_hostname_adds_the_short_name() {
    let (_dir, path) = temp_path();
    build(
        &path,
        &own("10.11.12.13", "testhostname.testdomainname", ""),
        WriteMode::Atomic,
    );
    assert!(on_disk(&path).starts_with("10.11.12.13\ttesthostname.testdomainname testhostname\n"));
}

#[test]
fn build_without_address_has_no_own_line() {
    let (_dir, path) = temp_path();
    let options = BuildOptions {
        hostname: "testhostname".to_owned(),
        ..BuildOptions::default()
    };
    build(&path, &options, WriteMode::Atomic);
    assert_eq!(on_disk(&path), defaults());
}

#[test]
fn build_puts_extra_hosts_after_the_defaults() {
    let (_dir, path) = temp_path();
    let options = BuildOptions {
        extra: vec![
            record("1.2.3.4", "db"),
            record("2001:db8::1", "db6 db6.example"),
        ],
        ..own("10.0.0.2", "web", "")
    };
    build(&path, &options, WriteMode::Atomic);
    assert_eq!(
        on_disk(&path),
        format!(
            "10.0.0.2\tweb\n{}1.2.3.4\tdb\n2001:db8::1\tdb6 db6.example\n",
            defaults()
        )
    );
}

#[test]
fn build_with_an_address_but_no_hostname_is_refused_and_writes_nothing() {
    let (_dir, path) = temp_path();
    let err = Hosts::build(&path, &own("10.0.0.2", "", ""), WriteMode::Atomic).unwrap_err();
    assert!(matches!(err, Error::MissingHostname));
    assert_eq!(err.kind(), ErrorKind::BadRequest);
    assert!(!path.exists());
}

#[test]
fn update_changes_the_address_of_the_fqdn_line() {
    for mode in MODES {
        let (_dir, path) = temp_path();
        let hosts = build(
            &path,
            &own("10.11.12.13", "testhostname", "testdomainname"),
            mode,
        );
        assert_eq!(hosts.update(ip("1.1.1.1"), "testhostname").unwrap(), 1);
        assert_eq!(
            on_disk(&path),
            format!(
                "1.1.1.1\ttesthostname.testdomainname testhostname\n{}",
                defaults()
            )
        );
        assert_eq!(hosts.content(), on_disk(&path));
    }
}

#[test]
fn update_ignores_a_longer_hostname_with_the_same_prefix() {
    for mode in MODES {
        let (_dir, path) = temp_path();
        let hosts = build(&path, &BuildOptions::default(), mode);
        hosts
            .add(&[
                record("2.2.2.2", "prefix"),
                record("3.3.3.3", "prefixAndMore"),
            ])
            .unwrap();
        hosts.update(ip("4.4.4.4"), "prefix").unwrap();
        let content = on_disk(&path);
        assert!(content.contains("4.4.4.4\tprefix\n"), "{content}");
        assert!(content.contains("3.3.3.3\tprefixAndMore\n"), "{content}");
        assert!(!content.contains("2.2.2.2"), "{content}");
    }
}

#[test]
fn delete_ignores_a_longer_hostname_with_the_same_prefix() {
    for mode in MODES {
        let (_dir, path) = temp_path();
        let hosts = build(&path, &BuildOptions::default(), mode);
        hosts
            .add(&[
                record("2.2.2.2", "prefix"),
                record("3.3.3.3", "prefixAndMore"),
            ])
            .unwrap();
        assert_eq!(hosts.delete(&[record("2.2.2.2", "prefix")]).unwrap(), 1);
        let content = on_disk(&path);
        assert!(!content.contains("\tprefix\n"), "{content}");
        assert!(content.contains("3.3.3.3\tprefixAndMore\n"), "{content}");
    }
}

#[test]
fn adding_nothing_changes_nothing() {
    let (_dir, path) = temp_path();
    let hosts = build(&path, &BuildOptions::default(), WriteMode::Atomic);
    let inode = fs::metadata(&path).unwrap().ino();
    hosts.add(&[]).unwrap();
    assert_eq!(on_disk(&path), defaults());
    assert_eq!(
        fs::metadata(&path).unwrap().ino(),
        inode,
        "no write happened"
    );
}

#[test]
fn add_appends_records() {
    for mode in MODES {
        let (_dir, path) = temp_path();
        let hosts = build(&path, &BuildOptions::default(), mode);
        hosts.add(&[record("2.2.2.2", "testhostname")]).unwrap();
        assert_eq!(
            on_disk(&path),
            format!("{}2.2.2.2\ttesthostname\n", defaults())
        );
    }
}

#[test]
fn deleting_nothing_changes_nothing() {
    let (_dir, path) = temp_path();
    let hosts = build(&path, &BuildOptions::default(), WriteMode::InPlace);
    assert_eq!(hosts.delete(&[]).unwrap(), 0);
    assert_eq!(on_disk(&path), defaults());
}

#[test]
fn delete_works_on_a_file_holding_only_a_newline() {
    for mode in MODES {
        let (_dir, path) = temp_path();
        fs::write(&path, "\n").unwrap();
        let hosts = Hosts::open(&path, mode).unwrap();
        assert_eq!(
            hosts.delete(&[record("1.1.1.1", "testhostname1")]).unwrap(),
            0
        );
        assert_eq!(on_disk(&path), "\n");
    }
}

#[test]
fn delete_removes_only_the_matching_records() {
    for mode in MODES {
        let (_dir, path) = temp_path();
        let hosts = build(&path, &BuildOptions::default(), mode);
        hosts
            .add(&[
                record("1.1.1.1", "testhostname1"),
                record("2.2.2.2", "testhostname2"),
            ])
            .unwrap();
        // The address is ignored: names decide.
        assert_eq!(
            hosts.delete(&[record("9.9.9.9", "testhostname1")]).unwrap(),
            1
        );
        let content = on_disk(&path);
        assert!(content.contains("2.2.2.2\ttesthostname2\n"), "{content}");
        assert!(!content.contains("testhostname1"), "{content}");
        assert_eq!(content, hosts.content());
    }
}

#[test]
fn delete_requires_all_names_to_match() {
    let (_dir, path) = temp_path();
    let hosts = build(&path, &BuildOptions::default(), WriteMode::InPlace);
    hosts.add(&[record("1.1.1.1", "web web.example")]).unwrap();
    assert_eq!(hosts.delete(&[record("1.1.1.1", "web")]).unwrap(), 0);
    assert_eq!(
        hosts
            .delete(&[record("1.1.1.1", "web web.example")])
            .unwrap(),
        1
    );
    assert_eq!(on_disk(&path), defaults());
}

#[test]
fn comments_and_blank_lines_survive_changes() {
    for mode in MODES {
        let (_dir, path) = temp_path();
        fs::write(
            &path,
            "# managed\n\n10.0.0.1 a # first\n10.0.0.2\tb\n# end\n",
        )
        .unwrap();
        let hosts = Hosts::open(&path, mode).unwrap();
        hosts.update(ip("10.0.0.9"), "a").unwrap();
        hosts.delete(&[record("0.0.0.0", "b")]).unwrap();
        assert_eq!(on_disk(&path), "# managed\n\n10.0.0.9 a # first\n# end\n");
    }
}

#[test]
fn update_with_an_invalid_hostname_is_a_bad_request() {
    let (_dir, path) = temp_path();
    let hosts = build(&path, &BuildOptions::default(), WriteMode::InPlace);
    for bad in ["", "a b", "a#b"] {
        let err = hosts.update(ip("1.1.1.1"), bad).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadRequest, "{bad:?}");
    }
    assert_eq!(on_disk(&path), defaults());
}

#[test]
fn concurrent_writers_keep_the_initial_record() {
    for mode in MODES {
        let (_dir, path) = temp_path();
        let hosts = Arc::new(build(&path, &BuildOptions::default(), mode));
        hosts.add(&[record("1.1.1.1", "inithostname")]).unwrap();
        std::thread::scope(|s| {
            for t in 0..8 {
                let hosts = Arc::clone(&hosts);
                s.spawn(move || {
                    for i in 0..50 {
                        let rec = record(&format!("2.2.{t}.{i}"), &format!("host{t}x{i}"));
                        hosts.add(std::slice::from_ref(&rec)).unwrap();
                        hosts
                            .update(ip(&format!("3.3.{t}.{i}")), &format!("host{t}x{i}"))
                            .unwrap();
                        assert_eq!(hosts.delete(&[rec]).unwrap(), 1);
                    }
                });
            }
        });
        let content = on_disk(&path);
        assert_eq!(
            content,
            format!("{}1.1.1.1\tinithostname\n", defaults()),
            "{mode:?}"
        );
        assert_eq!(hosts.content(), content);
    }
}

// ---- write modes ------------------------------------------------------------------------------

#[test]
fn in_place_writes_keep_the_inode_and_atomic_writes_replace_it() {
    for mode in MODES {
        let (_dir, path) = temp_path();
        let hosts = build(&path, &BuildOptions::default(), mode);
        let before = fs::metadata(&path).unwrap().ino();
        hosts.add(&[record("1.1.1.1", "a")]).unwrap();
        let after = fs::metadata(&path).unwrap().ino();
        assert_eq!(before == after, mode == WriteMode::InPlace, "{mode:?}");
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["hosts"], "no temporary file is left");
    }
}

#[test]
fn in_place_writes_shrink_the_file() {
    let (_dir, path) = temp_path();
    let hosts = build(&path, &BuildOptions::default(), WriteMode::InPlace);
    hosts
        .add(&[record("10.0.0.100", "a"), record("10.0.0.101", "b")])
        .unwrap();
    hosts.update(ip("1.1.1.1"), "a").unwrap();
    assert_eq!(
        on_disk(&path),
        format!("{}1.1.1.1\ta\n10.0.0.101\tb\n", defaults())
    );
    hosts.delete(&[record("0.0.0.0", "b")]).unwrap();
    assert_eq!(on_disk(&path), format!("{}1.1.1.1\ta\n", defaults()));
}

#[test]
fn build_over_a_longer_file_replaces_it_whole() {
    for mode in MODES {
        let (_dir, path) = temp_path();
        fs::write(&path, "x".repeat(4096)).unwrap();
        build(&path, &BuildOptions::default(), mode);
        assert_eq!(on_disk(&path), defaults(), "{mode:?}");
    }
}

#[test]
fn edits_made_by_others_are_kept() {
    for mode in MODES {
        let (_dir, path) = temp_path();
        let hosts = build(&path, &BuildOptions::default(), mode);
        hosts.add(&[record("1.1.1.1", "a")]).unwrap();

        // Someone appends a line, the way `echo >> /etc/hosts` in a container would.
        let mut edited = on_disk(&path);
        edited.push_str("192.168.1.1\tuser-added\n");
        fs::write(&path, &edited).unwrap();

        hosts.add(&[record("2.2.2.2", "b")]).unwrap();
        assert_eq!(on_disk(&path), format!("{edited}2.2.2.2\tb\n"), "{mode:?}");
        assert_eq!(hosts.content(), on_disk(&path));
    }
}

#[test]
fn a_file_replaced_by_others_is_re_read() {
    let (_dir, path) = temp_path();
    let hosts = build(&path, &BuildOptions::default(), WriteMode::InPlace);
    let other = path.with_file_name("other");
    fs::write(&other, "10.9.9.9\tz\n").unwrap();
    fs::rename(&other, &path).unwrap();
    hosts.add(&[record("1.1.1.1", "a")]).unwrap();
    assert_eq!(on_disk(&path), "10.9.9.9\tz\n1.1.1.1\ta\n");
}

#[test]
fn a_deleted_file_is_an_error_that_changes_nothing() {
    for mode in MODES {
        let (_dir, path) = temp_path();
        let hosts = build(&path, &BuildOptions::default(), mode);
        fs::remove_file(&path).unwrap();
        let err = hosts.add(&[record("1.1.1.1", "a")]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert!(err.to_string().starts_with("check hosts file "), "{err}");
        assert_eq!(hosts.content(), defaults());
    }
}

#[test]
fn a_missing_final_newline_is_repaired_on_the_next_change() {
    for mode in MODES {
        let (_dir, path) = temp_path();
        fs::write(&path, "10.0.0.1\ta").unwrap();
        let hosts = Hosts::open(&path, mode).unwrap();
        hosts.add(&[record("10.0.0.2", "b")]).unwrap();
        assert_eq!(on_disk(&path), "10.0.0.1\ta\n10.0.0.2\tb\n");
    }
}

/// Write failures roll the change back in memory; after a torn in-place write the next change
/// rewrites the whole file. Needs a tiny tmpfs, so it runs in a private mount namespace.
#[test]
fn failed_writes_roll_back_and_the_next_change_repairs_the_file() {
    if !libnetwork_testutil::privileged(
        "failed_writes_roll_back_and_the_next_change_repairs_the_file",
    ) {
        return;
    }
    libnetwork_testutil::in_new_netns(|| {
        for mode in MODES {
            let dir = tempfile::tempdir().unwrap();
            nix::mount::mount(
                Some("tmpfs"),
                dir.path(),
                Some("tmpfs"),
                nix::mount::MsFlags::empty(),
                Some("size=8k"),
            )
            .unwrap();
            let path = dir.path().join("hosts");
            let hosts = build(&path, &BuildOptions::default(), mode);

            // Fill the file system, then ask for a change that needs another page.
            let filler = dir.path().join("filler");
            let _ = fs::write(&filler, vec![b'x'; 8192]);
            let big: Vec<Record> = (0..200)
                .map(|i| {
                    record(
                        &format!("10.0.{}.{}", i / 250, i % 250),
                        &format!("host-number-{i}"),
                    )
                })
                .collect();
            let err = hosts.add(&big).unwrap_err();
            assert!(matches!(err, Error::Io { .. }), "{mode:?}: {err}");
            assert_eq!(
                hosts.content(),
                defaults(),
                "{mode:?}: the change is undone in memory"
            );
            if mode == WriteMode::Atomic {
                assert_eq!(
                    on_disk(&path),
                    defaults(),
                    "an atomic write leaves the file alone"
                );
            }

            // With space again, the next change leaves the file exactly as the model.
            fs::remove_file(&filler).unwrap();
            hosts.add(&[record("1.1.1.1", "a")]).unwrap();
            assert_eq!(
                on_disk(&path),
                format!("{}1.1.1.1\ta\n", defaults()),
                "{mode:?}"
            );
            drop(hosts);
            nix::mount::umount(dir.path()).unwrap();
        }
    });
}

// ---- properties -------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    Add(u8, Vec<String>),
    Delete(Vec<String>),
    Update(u8, String),
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("web".to_owned()),
        Just("web.example".to_owned()),
        Just("webserver".to_owned()),
        Just("db".to_owned()),
        Just("db.x".to_owned()),
        "[a-z]{1,3}",
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (any::<u8>(), proptest::collection::vec(name(), 1..3)).prop_map(|(n, v)| Op::Add(n, v)),
        proptest::collection::vec(name(), 1..3).prop_map(Op::Delete),
        (any::<u8>(), name()).prop_map(|(n, h)| Op::Update(n, h)),
    ]
}

fn addr(n: u8) -> IpAddr {
    IpAddr::from([10, 0, n / 16, n])
}

/// libnetwork's way, written plainly: the file as a list of lines, every change a pass over
/// all of them.
fn reference(lines: &mut Vec<String>, op: &Op) {
    let fields = |line: &str| -> Option<(String, Vec<String>)> {
        let content = line.split('#').next().unwrap();
        let mut parts = content.split_whitespace();
        let ip = parts.next()?.to_owned();
        let names: Vec<String> = parts.map(str::to_owned).collect();
        (!names.is_empty()).then_some((ip, names))
    };
    match op {
        Op::Add(n, names) => lines.push(format!("{}\t{}", addr(*n), names.join(" "))),
        Op::Delete(names) => lines.retain(|line| fields(line).is_none_or(|(_, n)| n != *names)),
        Op::Update(n, host) => {
            for line in lines.iter_mut() {
                let Some((ip, names)) = fields(line) else {
                    continue;
                };
                let first = &names[0];
                if first == host || first.starts_with(&format!("{host}.")) {
                    *line = line.replacen(&ip, &addr(*n).to_string(), 1);
                }
            }
        }
    }
}

fn apply(file: &mut HostsFile, op: &Op) {
    match op {
        Op::Add(n, names) => file.add(&[Record::new(addr(*n), names.clone()).unwrap()]),
        Op::Delete(names) => {
            file.delete(&[Record::new(addr(0), names.clone()).unwrap()]);
        }
        Op::Update(n, host) => {
            file.update(addr(*n), host).unwrap();
        }
    }
}

proptest! {
    #[test]
    fn parsing_arbitrary_text_never_panics(text in "[\\s\\S]{0,300}") {
        let mut file = HostsFile::parse(&text);
        let _ = file.records().count();
        file.update(addr(1), "web").unwrap();
        file.delete(&[record("1.1.1.1", "web")]);
        file.add(&[record("1.1.1.1", "web")]);
        prop_assert_eq!(HostsFile::parse(file.render()), file);
    }

    #[test]
    fn model_matches_the_rewrite_everything_reference(
        start in "(#[a-z ]{0,5}\n|10\\.0\\.0\\.[0-9][ \t]web(\\.example)?( db)?( #x)?\n|\n|single\n){0,8}",
        ops in proptest::collection::vec(op(), 0..30),
    ) {
        let mut file = HostsFile::parse(&start);
        let mut lines: Vec<String> = start.lines().map(str::to_owned).collect();
        for op in &ops {
            apply(&mut file, op);
            reference(&mut lines, op);
            let want: String = lines.iter().map(|l| format!("{l}\n")).collect();
            prop_assert_eq!(file.render(), want.as_str(), "after {:?}", op);
        }
        // parse(render(x)) == x, including the record view.
        let reparsed = HostsFile::parse(file.render());
        prop_assert_eq!(reparsed.records().collect::<Vec<_>>(), file.records().collect::<Vec<_>>());
        prop_assert_eq!(reparsed, file);
    }

    #[test]
    fn handle_and_disk_agree_after_any_changes(
        ops in proptest::collection::vec(op(), 1..15),
        in_place in any::<bool>(),
    ) {
        let mode = if in_place { WriteMode::InPlace } else { WriteMode::Atomic };
        let (_dir, path) = temp_path();
        let hosts = build(&path, &BuildOptions::default(), mode);
        let mut model = HostsFile::parse(&defaults());
        for op in &ops {
            match op {
                Op::Add(n, names) => hosts.add(&[Record::new(addr(*n), names.clone()).unwrap()]).unwrap(),
                Op::Delete(names) => {
                    hosts.delete(&[Record::new(addr(0), names.clone()).unwrap()]).unwrap();
                }
                Op::Update(n, host) => {
                    hosts.update(addr(*n), host).unwrap();
                }
            }
            apply(&mut model, op);
            prop_assert_eq!(on_disk(&path), model.render());
        }
    }
}
