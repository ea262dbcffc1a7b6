//! The UDP proxy on loopback.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use libnetwork_types::Protocol;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::{LOCALHOST, binding, in_netns, in_netns_paused, mapper};

/// A container stand-in on `127.0.0.1:port` answering each datagram with `echo:` and the
/// datagram; reports the source address of each datagram on the returned channel.
async fn echo(port: u16) -> anyhow::Result<mpsc::UnboundedReceiver<SocketAddr>> {
    let socket = UdpSocket::bind((LOCALHOST, port)).await?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut buf = vec![0_u8; 65_536];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let _ = tx.send(from);
            let mut answer = b"echo:".to_vec();
            answer.extend_from_slice(&buf[..n]);
            let _ = socket.send_to(&answer, from).await;
        }
    });
    Ok(rx)
}

/// Sends `msg` from `client` to `127.0.0.1:host_port` and returns the answer and who sent it.
async fn round_trip(
    client: &UdpSocket,
    host_port: u16,
    msg: &[u8],
) -> anyhow::Result<(Vec<u8>, SocketAddr)> {
    client.send_to(msg, (LOCALHOST, host_port)).await?;
    let mut buf = vec![0_u8; 65_536];
    let (n, from) = client.recv_from(&mut buf).await?;
    buf.truncate(n);
    Ok((buf, from))
}

fn udp(port: u16, host_port: u16) -> libnetwork_types::PortBinding {
    binding(Protocol::Udp, port, host_port, 0)
}

#[test]
fn udp_datagrams_round_trip_through_the_proxy() {
    in_netns("udp_datagrams_round_trip_through_the_proxy", || async {
        let _seen = echo(7000).await?;
        let pm = mapper(true);
        pm.map("br0", LOCALHOST, &[udp(7000, 5353)]).await?;
        let client = UdpSocket::bind((LOCALHOST, 0)).await?;
        let (answer, from) = round_trip(&client, 5353, b"hello").await?;
        assert_eq!(answer, b"echo:hello");
        // The answer comes from the published port.
        assert_eq!(from, SocketAddr::new(LOCALHOST, 5353));
        // A datagram near the largest IPv4 payload goes through whole.
        let big = vec![7_u8; 60_000];
        let (answer, _) = round_trip(&client, 5353, &big).await?;
        assert_eq!(answer.len(), 60_005);
        Ok(())
    });
}

#[test]
fn each_udp_client_gets_its_own_flow_and_answers() {
    in_netns("each_udp_client_gets_its_own_flow_and_answers", || async {
        let mut seen = echo(7000).await?;
        let pm = mapper(true);
        pm.map("br0", LOCALHOST, &[udp(7000, 5353)]).await?;
        let a = UdpSocket::bind((LOCALHOST, 0)).await?;
        let b = UdpSocket::bind((LOCALHOST, 0)).await?;
        let (answer_a, _) = round_trip(&a, 5353, b"from-a").await?;
        let (answer_b, _) = round_trip(&b, 5353, b"from-b").await?;
        let (again_a, _) = round_trip(&a, 5353, b"again-a").await?;
        assert_eq!(
            (answer_a.as_slice(), answer_b.as_slice()),
            (&b"echo:from-a"[..], &b"echo:from-b"[..])
        );
        assert_eq!(again_a, b"echo:again-a");
        // The container sees one proxy address per client, the same for a client's datagrams.
        let (flow_a, flow_b, flow_a2) = (seen.recv().await, seen.recv().await, seen.recv().await);
        assert_ne!(flow_a, flow_b);
        assert_eq!(flow_a, flow_a2);
        Ok(())
    });
}

#[test]
fn udp_flow_survives_a_container_that_stops_listening() {
    in_netns_paused(
        "udp_flow_survives_a_container_that_stops_listening",
        || async {
            let pm = mapper(true);
            pm.map("br0", LOCALHOST, &[udp(7000, 5353)]).await?;
            let client = UdpSocket::bind((LOCALHOST, 0)).await?;
            // A container that receives one datagram and goes away.
            let gone = UdpSocket::bind((LOCALHOST, 7000)).await?;
            client.send_to(b"first", (LOCALHOST, 5353)).await?;
            let mut buf = [0_u8; 64];
            let (_, flow) = gone.recv_from(&mut buf).await?;
            drop(gone);
            // Nothing listens now: the kernel answers the proxy's datagrams with port unreachable,
            // which the flow's socket reports as connection refused.
            for _ in 0..3 {
                client.send_to(b"lost", (LOCALHOST, 5353)).await?;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            let mut seen = echo(7000).await?;
            client.send_to(b"found", (LOCALHOST, 5353)).await?;
            // Time is paused: this bound only turns a lost datagram into a failure, not a hang.
            let n = tokio::time::timeout(Duration::from_secs(10), client.recv(&mut buf)).await??;
            assert_eq!(&buf[..n], b"echo:found");
            // Still the same flow.
            assert_eq!(seen.recv().await, Some(flow));
            Ok(())
        },
    );
}

/// Whether the proxy's socket of a flow, seen by the container as `flow`, is closed (its port
/// can be bound again).
fn flow_is_closed(flow: SocketAddr) -> bool {
    std::net::UdpSocket::bind(SocketAddr::from(([0, 0, 0, 0], flow.port()))).is_ok()
}

#[test]
fn udp_flow_expires_after_the_idle_timeout() {
    in_netns_paused("udp_flow_expires_after_the_idle_timeout", || async {
        let mut seen = echo(7000).await?;
        let pm = mapper(true);
        assert_eq!(pm.config().udp_idle_timeout, Duration::from_secs(90));
        pm.map("br0", LOCALHOST, &[udp(7000, 5353)]).await?;
        let client = UdpSocket::bind((LOCALHOST, 0)).await?;
        round_trip(&client, 5353, b"one").await?;
        let flow = seen.recv().await.expect("the container saw the datagram");
        tokio::time::sleep(Duration::from_secs(89)).await;
        assert!(!flow_is_closed(flow), "flow closed before the idle timeout");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(
            flow_is_closed(flow),
            "flow still open after the idle timeout"
        );
        // The client gets a new flow.
        let (answer, _) = round_trip(&client, 5353, b"two").await?;
        assert_eq!(answer, b"echo:two");
        Ok(())
    });
}

#[test]
fn udp_traffic_keeps_its_flow_alive() {
    in_netns_paused("udp_traffic_keeps_its_flow_alive", || async {
        let mut seen = echo(7000).await?;
        let pm = mapper(true);
        pm.map("br0", LOCALHOST, &[udp(7000, 5353)]).await?;
        let client = Arc::new(UdpSocket::bind((LOCALHOST, 0)).await?);
        round_trip(&client, 5353, b"one").await?;
        let flow = seen.recv().await.expect("the container saw the datagram");
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_secs(60)).await;
            round_trip(&client, 5353, b"again").await?;
            assert_eq!(seen.recv().await, Some(flow), "a new flow was opened");
        }
        tokio::time::sleep(Duration::from_secs(91)).await;
        assert!(flow_is_closed(flow));
        Ok(())
    });
}

#[test]
fn datagrams_from_the_client_alone_keep_its_flow_alive() {
    in_netns_paused(
        "datagrams_from_the_client_alone_keep_its_flow_alive",
        || async {
            // A container that never answers.
            let sink = UdpSocket::bind((LOCALHOST, 7000)).await?;
            let pm = mapper(true);
            pm.map("br0", LOCALHOST, &[udp(7000, 5353)]).await?;
            let client = UdpSocket::bind((LOCALHOST, 0)).await?;
            let mut buf = [0_u8; 64];
            client.send_to(b"one", (LOCALHOST, 5353)).await?;
            let (_, flow) = sink.recv_from(&mut buf).await?;
            for _ in 0..3 {
                tokio::time::sleep(Duration::from_secs(60)).await;
                client.send_to(b"again", (LOCALHOST, 5353)).await?;
                let (_, from) = sink.recv_from(&mut buf).await?;
                assert_eq!(from, flow, "a new flow was opened");
            }
            Ok(())
        },
    );
}

#[test]
fn unmap_closes_the_udp_port_and_its_flows() {
    in_netns("unmap_closes_the_udp_port_and_its_flows", || async {
        let mut seen = echo(7000).await?;
        let pm = mapper(true);
        let published = pm.map("br0", LOCALHOST, &[udp(7000, 5353)]).await?;
        let client = UdpSocket::bind((LOCALHOST, 0)).await?;
        round_trip(&client, 5353, b"one").await?;
        let flow = seen.recv().await.expect("the container saw the datagram");
        pm.unmap(&published).await?;
        std::net::UdpSocket::bind("0.0.0.0:5353")?;
        assert!(flow_is_closed(flow));
        Ok(())
    });
}
