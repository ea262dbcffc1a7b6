//! Encoding and decoding of networkdb messages (libnetwork's `networkdb.proto`).
//!
//! Every message travels as a [`GossipMessage`] whose `type` says what its `data` holds.
//! Several messages share one datagram inside a [`CompoundMessage`]. Decoding accepts any
//! bytes: malformed input is an error, never a panic, and a compound may not nest another.
//!
//! Datagrams carry one more byte in front, before any encryption, that tells foca's SWIM
//! packets ([`KIND_FOCA`]) from networkdb's ([`KIND_GOSSIP`]); streams carry a bare
//! [`GossipMessage`].

use prost::Message as _;

use crate::error::{Error, Result};
use crate::proto::{
    BulkSyncMessage, CompoundMessage, GossipMessage, MessageType, NetworkEvent, NetworkPushPull,
    NodeEvent, TableEvent, compound_message::SimpleMessage,
};

/// First byte of a datagram holding a foca (membership) packet.
pub const KIND_FOCA: u8 = 1;
/// First byte of a datagram holding a networkdb [`GossipMessage`].
pub const KIND_GOSSIP: u8 = 2;

/// One decoded networkdb message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A node joined or left the cluster.
    Node(NodeEvent),
    /// A node joined or left a network.
    Network(NetworkEvent),
    /// A table entry changed.
    Table(TableEvent),
    /// A node's view of all network attachments.
    PushPull(NetworkPushPull),
    /// Part of a bulk sync.
    BulkSync(BulkSyncMessage),
}

impl Message {
    /// Encodes the message in its [`GossipMessage`] envelope.
    pub fn encode(&self) -> Vec<u8> {
        let (kind, data) = match self {
            Self::Node(m) => (MessageType::NodeEvent, m.encode_to_vec()),
            Self::Network(m) => (MessageType::NetworkEvent, m.encode_to_vec()),
            Self::Table(m) => (MessageType::TableEvent, m.encode_to_vec()),
            Self::PushPull(m) => (MessageType::PushPull, m.encode_to_vec()),
            Self::BulkSync(m) => (MessageType::BulkSync, m.encode_to_vec()),
        };
        envelope(kind, data)
    }
}

fn envelope(kind: MessageType, data: Vec<u8>) -> Vec<u8> {
    GossipMessage {
        r#type: kind as i32,
        data,
    }
    .encode_to_vec()
}

/// Wraps already encoded [`GossipMessage`]s into one compound [`GossipMessage`].
pub fn encode_compound(payloads: Vec<Vec<u8>>) -> Vec<u8> {
    let compound = CompoundMessage {
        messages: payloads
            .into_iter()
            .map(|payload| SimpleMessage { payload })
            .collect(),
    };
    envelope(MessageType::Compound, compound.encode_to_vec())
}

/// The bytes a payload of `len` bytes adds to a compound message.
pub fn compound_cost(len: usize) -> usize {
    let simple = 1 + prost::length_delimiter_len(len) + len;
    1 + prost::length_delimiter_len(simple) + simple
}

/// The bytes of a compound envelope around `content` bytes of [`compound_cost`]s.
pub fn compound_envelope_cost(content: usize) -> usize {
    // type field (tag + one-byte varint) + data field (tag + length + content)
    2 + 1 + prost::length_delimiter_len(content)
}

/// Decodes a [`GossipMessage`], expanding a compound into its parts.
///
/// # Errors
/// [`Error::Decode`] for malformed protobuf, an unknown or invalid type, or a nested compound.
pub fn decode(bytes: &[u8]) -> Result<Vec<Message>> {
    let msg = GossipMessage::decode(bytes).map_err(|e| Error::decode("gossip message", e))?;
    if msg.r#type == MessageType::Compound as i32 {
        let compound = CompoundMessage::decode(msg.data.as_slice())
            .map_err(|e| Error::decode("compound message", e))?;
        let mut out = Vec::with_capacity(compound.messages.len());
        for part in compound.messages {
            let inner = GossipMessage::decode(part.payload.as_slice())
                .map_err(|e| Error::decode("compound part", e))?;
            out.push(decode_single(inner)?);
        }
        return Ok(out);
    }
    Ok(vec![decode_single(msg)?])
}

fn decode_single(msg: GossipMessage) -> Result<Message> {
    let data = msg.data.as_slice();
    let kind = MessageType::try_from(msg.r#type)
        .map_err(|_| Error::decode("message type", format!("unknown type {}", msg.r#type)))?;
    Ok(match kind {
        MessageType::NodeEvent => {
            Message::Node(NodeEvent::decode(data).map_err(|e| Error::decode("node event", e))?)
        }
        MessageType::NetworkEvent => Message::Network(
            NetworkEvent::decode(data).map_err(|e| Error::decode("network event", e))?,
        ),
        MessageType::TableEvent => {
            Message::Table(TableEvent::decode(data).map_err(|e| Error::decode("table event", e))?)
        }
        MessageType::PushPull => Message::PushPull(
            NetworkPushPull::decode(data).map_err(|e| Error::decode("push pull", e))?,
        ),
        MessageType::BulkSync => Message::BulkSync(
            BulkSyncMessage::decode(data).map_err(|e| Error::decode("bulk sync", e))?,
        ),
        MessageType::Compound => {
            return Err(Error::decode("compound part", "nested compound message"));
        }
        MessageType::Invalid => return Err(Error::decode("message type", "type is INVALID")),
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::proto::table_event;

    fn table_event() -> TableEvent {
        TableEvent {
            r#type: table_event::Type::Create as i32,
            l_time: 5,
            node_name: "n1".into(),
            network_id: "net".into(),
            table_name: "t".into(),
            key: "k".into(),
            value: b"v".to_vec(),
            residual_reap_time: 0,
        }
    }

    // A TableEvent CREATE in its GossipMessage envelope, field by field.
    const TABLE_EVENT_BYTES: &[u8] = &[
        0x08, 0x02, // GossipMessage.type = TABLE_EVENT (2)
        0x12, 0x16, // GossipMessage.data, 22 bytes:
        0x08, 0x01, //   TableEvent.type = CREATE (1)
        0x10, 0x05, //   l_time = 5
        0x1a, 0x02, b'n', b'1', //   node_name = "n1"
        0x22, 0x03, b'n', b'e', b't', //   network_id = "net"
        0x2a, 0x01, b't', //   table_name = "t"
        0x32, 0x01, b'k', //   key = "k"
        0x3a, 0x01, b'v', //   value = "v"
    ]; // residual_reap_time = 0 is not encoded (proto3 default)

    #[test]
    fn a_table_event_matches_its_annotated_bytes_both_ways() {
        let msg = Message::Table(table_event());
        assert_eq!(msg.encode(), TABLE_EVENT_BYTES);
        assert_eq!(decode(TABLE_EVENT_BYTES).unwrap(), vec![msg]);
    }

    #[test]
    fn a_compound_message_decodes_to_its_parts_in_order() {
        let a = Message::Table(table_event());
        let b = Message::Network(NetworkEvent {
            r#type: 1,
            l_time: 2,
            node_name: "n2".into(),
            network_id: "net".into(),
        });
        let bytes = encode_compound(vec![a.encode(), b.encode()]);
        let content: usize = [a.encode().len(), b.encode().len()]
            .iter()
            .map(|&l| compound_cost(l))
            .sum();
        assert_eq!(bytes.len(), content + compound_envelope_cost(content));
        assert_eq!(decode(&bytes).unwrap(), vec![a, b]);
    }

    #[test]
    fn nested_compounds_and_invalid_types_are_rejected() {
        let inner = encode_compound(vec![Message::Table(table_event()).encode()]);
        let outer = encode_compound(vec![inner]);
        assert!(decode(&outer).is_err());
        assert!(decode(&envelope(MessageType::Invalid, vec![])).is_err());
        let unknown = GossipMessage {
            r#type: 99,
            data: vec![],
        }
        .encode_to_vec();
        assert!(decode(&unknown).is_err());
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn decoding_mutated_valid_messages_never_panics(
            flips in proptest::collection::vec((0usize..64, any::<u8>()), 1..8),
        ) {
            let mut bytes = encode_compound(vec![
                Message::Table(table_event()).encode(),
                Message::Table(table_event()).encode(),
            ]);
            for (i, b) in flips {
                let n = bytes.len();
                bytes[i % n] ^= b;
            }
            let _ = decode(&bytes);
        }
    }
}
