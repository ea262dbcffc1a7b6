//! The TCP proxy on loopback.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use libnetwork_types::Protocol;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::{LOCALHOST, binding, in_netns, mapper, tcp};

/// A container stand-in on `127.0.0.1:port` that reads each connection to its end, then answers
/// `<port>:` followed by what it read, and closes.
async fn reply_after_eof(port: u16) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind((LOCALHOST, port)).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut got = Vec::new();
                conn.read_to_end(&mut got).await?;
                let mut answer = format!("{}:", addr.port()).into_bytes();
                answer.extend(got);
                conn.write_all(&answer).await?;
                conn.shutdown().await?;
                anyhow::Ok(())
            });
        }
    });
    Ok(addr)
}

/// A container stand-in on `127.0.0.1:0` that echoes every byte as it comes.
async fn echo() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind((LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = conn.split();
                tokio::io::copy(&mut r, &mut w).await
            });
        }
    });
    Ok(addr)
}

#[test]
fn tcp_bytes_flow_both_ways_through_the_proxy() {
    in_netns("tcp_bytes_flow_both_ways_through_the_proxy", || async {
        let backend = echo().await?;
        let pm = mapper(true);
        pm.map("br0", LOCALHOST, &[tcp(backend.port(), 8080)])
            .await?;
        let mut client = TcpStream::connect((LOCALHOST, 8080)).await?;
        let mut buf = [0_u8; 5];
        for round in 0..3 {
            let msg = format!("ping{round}");
            client.write_all(msg.as_bytes()).await?;
            client.read_exact(&mut buf).await?;
            assert_eq!(&buf, msg.as_bytes());
        }
        // A large transfer in both directions at once.
        let big: Vec<u8> = (0..1_000_000_u32).map(|i| (i % 251) as u8).collect();
        let (mut r, mut w) = client.into_split();
        let sent = big.clone();
        let writer = tokio::spawn(async move {
            w.write_all(&sent).await?;
            w.shutdown().await?;
            anyhow::Ok(())
        });
        let mut back = Vec::new();
        r.read_to_end(&mut back).await?;
        writer.await??;
        assert_eq!(back, big);
        Ok(())
    });
}

#[test]
fn tcp_half_close_reaches_the_container_and_its_answer_still_arrives() {
    in_netns(
        "tcp_half_close_reaches_the_container_and_its_answer_still_arrives",
        || async {
            let backend = reply_after_eof(7000).await?;
            let pm = mapper(true);
            pm.map("br0", LOCALHOST, &[tcp(backend.port(), 8080)])
                .await?;
            let mut client = TcpStream::connect((LOCALHOST, 8080)).await?;
            client.write_all(b"request").await?;
            // The container answers only once it sees the end of the request.
            client.shutdown().await?;
            let mut answer = String::new();
            client.read_to_string(&mut answer).await?;
            assert_eq!(answer, "7000:request");
            Ok(())
        },
    );
}

#[test]
fn tcp_range_forwards_each_host_port_to_its_container_port() {
    in_netns(
        "tcp_range_forwards_each_host_port_to_its_container_port",
        || async {
            for port in 7000..7003 {
                reply_after_eof(port).await?;
            }
            let pm = mapper(true);
            pm.map(
                "br0",
                LOCALHOST,
                &[binding(Protocol::Tcp, 7000, 9000, 9002)],
            )
            .await?;
            for i in 0..3 {
                let mut client = TcpStream::connect((LOCALHOST, 9000 + i)).await?;
                client.shutdown().await?;
                let mut answer = String::new();
                client.read_to_string(&mut answer).await?;
                assert_eq!(answer, format!("{}:", 7000 + i));
            }
            Ok(())
        },
    );
}

#[test]
fn tcp_over_an_ipv6_host_address_reaches_an_ipv4_container() {
    in_netns(
        "tcp_over_an_ipv6_host_address_reaches_an_ipv4_container",
        || async {
            let backend = reply_after_eof(7000).await?;
            let pm = mapper(true);
            let mut b = tcp(backend.port(), 8080);
            b.host_ip = Some(IpAddr::V6(Ipv6Addr::LOCALHOST));
            pm.map("br0", LOCALHOST, &[b]).await?;
            let mut client = TcpStream::connect((Ipv6Addr::LOCALHOST, 8080)).await?;
            client.write_all(b"six").await?;
            client.shutdown().await?;
            let mut answer = String::new();
            client.read_to_string(&mut answer).await?;
            assert_eq!(answer, "7000:six");
            Ok(())
        },
    );
}

#[test]
fn connection_to_a_container_that_does_not_listen_is_closed() {
    in_netns(
        "connection_to_a_container_that_does_not_listen_is_closed",
        || async {
            let pm = mapper(true);
            pm.map("br0", LOCALHOST, &[tcp(7999, 8080)]).await?;
            let mut client = TcpStream::connect((LOCALHOST, 8080)).await?;
            let mut buf = [0_u8; 16];
            // Closed (end of stream) or reset, never data; the listener goes on accepting.
            assert!(!matches!(client.read(&mut buf).await, Ok(n) if n > 0));
            TcpStream::connect((LOCALHOST, 8080)).await?;
            Ok(())
        },
    );
}

#[test]
fn unmap_stops_the_proxy_and_its_connections() {
    in_netns("unmap_stops_the_proxy_and_its_connections", || async {
        let backend = echo().await?;
        let pm = mapper(true);
        let published = pm
            .map("br0", LOCALHOST, &[tcp(backend.port(), 8080)])
            .await?;
        let mut client = TcpStream::connect((LOCALHOST, 8080)).await?;
        client.write_all(b"x").await?;
        let mut buf = [0_u8; 1];
        client.read_exact(&mut buf).await?;
        pm.unmap(&published).await?;
        // The open connection was closed, and no new one is accepted.
        let mut rest = Vec::new();
        let ended = client.read_to_end(&mut rest).await;
        assert!(matches!(ended, Ok(0)) || ended.is_err(), "{ended:?}");
        assert!(TcpStream::connect((LOCALHOST, 8080)).await.is_err());
        Ok(())
    });
}

#[test]
fn without_the_proxy_nothing_listens_on_the_host_port() {
    in_netns(
        "without_the_proxy_nothing_listens_on_the_host_port",
        || async {
            let backend = echo().await?;
            let pm = mapper(false);
            pm.map("br0", LOCALHOST, &[tcp(backend.port(), 8080)])
                .await?;
            assert!(TcpStream::connect((LOCALHOST, 8080)).await.is_err());
            Ok(())
        },
    );
}
