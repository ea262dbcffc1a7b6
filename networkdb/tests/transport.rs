//! Real sockets: several nodes on 127.0.0.1 with ephemeral ports.
#![cfg(feature = "tokio")]

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use libnetwork_networkdb::{Config, EventKind, Node, WatchFilter};

const NET: &str = "overlay-1";
const TABLE: &str = "endpoint_table";

/// Short intervals so a loopback cluster settles in well under a second.
fn fast(keys: Vec<Vec<u8>>) -> Config {
    Config {
        gossip_interval: Duration::from_millis(20),
        bulk_sync_interval: Duration::from_millis(500),
        push_pull_interval: Duration::from_millis(500),
        reconnect_interval: Duration::from_millis(100),
        probe_interval: Duration::from_millis(200),
        probe_timeout: Duration::from_millis(100),
        keys,
        ..Config::default()
    }
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// Polls `check` until it holds; gives up after 20 s (a generous bound, not a timing claim).
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..1000 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("never happened: {what}");
}

async fn start_cluster(n: usize, keys: Vec<Vec<u8>>) -> Vec<Node> {
    let mut nodes = Vec::new();
    for _ in 0..n {
        nodes.push(Node::start(fast(keys.clone()), loopback()).await.unwrap());
    }
    let seed = nodes[0].addr();
    for node in &nodes[1..] {
        node.join(vec![seed]).await.unwrap();
    }
    for node in &nodes {
        node.join_network(NET).await.unwrap();
    }
    eventually("every node sees every other in the network", || async {
        for node in &nodes {
            if node.peers(NET).await.unwrap().len() != n {
                return false;
            }
        }
        true
    })
    .await;
    nodes
}

async fn everyone_has(nodes: &[Node], key: &str, value: Option<&[u8]>) -> bool {
    for node in nodes {
        let got = node.get_entry(TABLE, NET, key).await.ok();
        if got.as_deref() != value {
            return false;
        }
    }
    true
}

#[tokio::test]
async fn a_loopback_cluster_replicates_entries_and_watchers_see_them() {
    let nodes = start_cluster(3, Vec::new()).await;
    let mut watch = nodes[2]
        .watch(WatchFilter {
            table: Some(TABLE.into()),
            ..WatchFilter::default()
        })
        .unwrap();

    nodes[0]
        .create_entry(TABLE, NET, "ep1", b"10.0.0.2".to_vec())
        .await
        .unwrap();
    eventually("create spread", || {
        everyone_has(&nodes, "ep1", Some(b"10.0.0.2"))
    })
    .await;
    nodes[0]
        .update_entry(TABLE, NET, "ep1", b"10.0.0.3".to_vec())
        .await
        .unwrap();
    eventually("update spread", || {
        everyone_has(&nodes, "ep1", Some(b"10.0.0.3"))
    })
    .await;
    nodes[0].delete_entry(TABLE, NET, "ep1").await.unwrap();
    eventually("delete spread", || everyone_has(&nodes, "ep1", None)).await;

    let mut kinds = Vec::new();
    while kinds.len() < 3 {
        let event = tokio::time::timeout(Duration::from_secs(20), watch.recv())
            .await
            .expect("event arrives")
            .expect("watch open");
        kinds.push(event.kind);
    }
    assert_eq!(
        kinds,
        vec![EventKind::Create, EventKind::Update, EventKind::Delete]
    );

    // A node that closes cleanly disappears from the others' views with its entries.
    nodes[1]
        .create_entry(TABLE, NET, "ep2", b"x".to_vec())
        .await
        .unwrap();
    eventually("second entry spread", || {
        everyone_has(&nodes, "ep2", Some(b"x"))
    })
    .await;
    nodes[1].close().await.unwrap();
    let rest = [nodes[0].clone(), nodes[2].clone()];
    eventually("closed node's entry removed", || {
        everyone_has(&rest, "ep2", None)
    })
    .await;
    eventually("closed node left the cluster", || async {
        rest[0].cluster_peers().await.unwrap().len() == 2
    })
    .await;
    assert!(nodes[1].get_entry(TABLE, NET, "ep1").await.is_err());
    for node in &rest {
        node.close().await.unwrap();
    }
}

#[tokio::test]
async fn a_late_joiner_gets_a_large_state_over_tcp() {
    let nodes = start_cluster(2, Vec::new()).await;
    for k in 0..3000 {
        nodes[0]
            .create_entry(TABLE, NET, &format!("ep{k}"), vec![7; 100])
            .await
            .unwrap();
    }
    let late = Node::start(fast(Vec::new()), loopback()).await.unwrap();
    late.join(vec![nodes[0].addr()]).await.unwrap();
    late.join_network(NET).await.unwrap();
    eventually("late joiner has all 3000 entries", || async {
        late.get_table(TABLE, NET).await.unwrap().len() == 3000
    })
    .await;
    late.close().await.unwrap();
    for node in &nodes {
        node.close().await.unwrap();
    }
}

#[tokio::test]
async fn an_encrypted_loopback_cluster_converges() {
    let key = vec![0x42; 32];
    let nodes = start_cluster(3, vec![key]).await;
    nodes[1]
        .create_entry(TABLE, NET, "secret", b"s".to_vec())
        .await
        .unwrap();
    eventually("encrypted entry spread", || {
        everyone_has(&nodes, "secret", Some(b"s"))
    })
    .await;
    for node in &nodes {
        node.close().await.unwrap();
    }
    assert!(
        nodes[0].cluster_peers().await.is_err(),
        "a closed node refuses calls"
    );
}
