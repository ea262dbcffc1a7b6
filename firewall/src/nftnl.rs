//! A small nf_tables netlink client: adds and deletes set elements in one transaction, and
//! dumps the elements of a set and the rules of a table, without running `nft`.
//!
//! A batch is what `nft -f` would send for `add element` / `delete element` commands: a
//! `NFNL_MSG_BATCH_BEGIN` message (resource id `NFNL_SUBSYS_NFTABLES`), one `NFT_MSG_NEWSETELEM`
//! or `NFT_MSG_DELSETELEM` message per set and chunk of elements (each asks for an
//! acknowledgement), and `NFNL_MSG_BATCH_END`. The kernel applies the whole batch or none of it,
//! and answers every message before `send` returns.
//!
//! Element keys and data are the registers nft builds: each component of a concatenation is
//! padded to 4 bytes ([`Value`]). An element's comment travels in its user data as the TLV nft
//! writes (`NFTNL_UDATA_SET_ELEM_COMMENT`, length, bytes with the closing NUL), so `nft list`
//! shows it.

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_NETFILTER};
use nix::sys::socket::{setsockopt, sockopt};
use nix::sys::time::TimeVal;
use tracing::{debug, trace};

use crate::Error;

/// Netlink message types, flags and attributes (`linux/netlink.h`, `linux/netfilter/nfnetlink.h`,
/// `linux/netfilter/nf_tables.h`).
mod consts {
    pub(super) const NLMSG_HDRLEN: usize = 16;
    pub(super) const NLMSG_ERROR: u16 = 2;
    pub(super) const NLMSG_DONE: u16 = 3;
    pub(super) const NLM_F_DUMP: u16 = 0x300;
    pub(super) const NLM_F_REQUEST: u16 = 0x1;
    pub(super) const NLM_F_ACK: u16 = 0x4;
    pub(super) const NLM_F_CREATE: u16 = 0x400;
    pub(super) const NLA_F_NESTED: u16 = 0x8000;

    pub(super) const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
    pub(super) const NFNL_MSG_BATCH_END: u16 = 0x11;
    pub(super) const NFNL_SUBSYS_NFTABLES: u16 = 10;
    pub(super) const NFNETLINK_V0: u8 = 0;
    pub(super) const NFPROTO_UNSPEC: u8 = 0;
    pub(super) const NFPROTO_INET: u8 = 1;

    pub(super) const NFT_MSG_NEWRULE: u16 = 6;
    pub(super) const NFT_MSG_GETRULE: u16 = 7;
    pub(super) const NFT_MSG_NEWSETELEM: u16 = 12;
    pub(super) const NFT_MSG_GETSETELEM: u16 = 13;
    pub(super) const NFT_MSG_DELSETELEM: u16 = 14;

    pub(super) const NFTA_RULE_TABLE: u16 = 1;
    pub(super) const NFTA_RULE_CHAIN: u16 = 2;
    pub(super) const NFTA_RULE_USERDATA: u16 = 7;

    pub(super) const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
    pub(super) const NFTA_SET_ELEM_LIST_SET: u16 = 2;
    pub(super) const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
    pub(super) const NFTA_LIST_ELEM: u16 = 1;
    pub(super) const NFTA_SET_ELEM_KEY: u16 = 1;
    pub(super) const NFTA_SET_ELEM_DATA: u16 = 2;
    pub(super) const NFTA_SET_ELEM_USERDATA: u16 = 6;
    pub(super) const NFTA_SET_ELEM_KEY_END: u16 = 10;
    pub(super) const NFTA_DATA_VALUE: u16 = 1;

    /// `NFTNL_UDATA_SET_ELEM_COMMENT` (and `NFTNL_UDATA_RULE_COMMENT`), the user-data TLV type
    /// of an element's (a rule's) comment.
    pub(super) const UDATA_SET_ELEM_COMMENT: u8 = 0;
}
use consts::*;

/// The longest comment nft accepts (`NFTNL_UDATA_COMMENT_MAXLEN`), closing NUL included.
pub(crate) const COMMENT_MAX: usize = 128;

/// The most element bytes put in one message: the elements' nested attribute has a 16-bit
/// length, so large element lists are split over several messages of the same batch.
const ELEMENTS_PER_MESSAGE_MAX: usize = 60_000;

/// How long to wait for the kernel's answers (they are queued before `send` returns; this only
/// guards against a kernel that never answers).
const RECV_TIMEOUT: Duration = Duration::from_secs(5);

/// A key or data value: the concatenation of nft registers, each component padded to 4 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub(crate) struct Value(Vec<u8>);

impl Value {
    /// An empty value, to append components to.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Appends an interface name (`ifname`): 16 bytes, NUL-padded. Names are validated to be at
    /// most 15 bytes.
    pub(crate) fn ifname(mut self, name: &str) -> Self {
        let mut field = [0u8; 16];
        let len = name.len().min(15);
        field[..len].copy_from_slice(&name.as_bytes()[..len]);
        self.0.extend_from_slice(&field);
        self
    }

    /// Appends an IPv4 address (`ipv4_addr`, network order).
    pub(crate) fn ipv4(mut self, addr: Ipv4Addr) -> Self {
        self.0.extend_from_slice(&addr.octets());
        self
    }

    /// Appends an IPv6 address (`ipv6_addr`, network order).
    pub(crate) fn ipv6(mut self, addr: Ipv6Addr) -> Self {
        self.0.extend_from_slice(&addr.octets());
        self
    }

    /// Appends an IP protocol number (`inet_proto`: one byte, padded to 4).
    pub(crate) fn proto(mut self, proto: u8) -> Self {
        self.0.extend_from_slice(&[proto, 0, 0, 0]);
        self
    }

    /// Appends a port (`inet_service`: two bytes in network order, padded to 4).
    pub(crate) fn port(mut self, port: u16) -> Self {
        let [hi, lo] = port.to_be_bytes();
        self.0.extend_from_slice(&[hi, lo, 0, 0]);
        self
    }

    /// The bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Shown as `nft --debug=netlink` shows registers: each 4-byte word as a host-order `u32` in
/// hex, words separated by spaces.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, word) in self.0.chunks(4).enumerate() {
            let mut w = [0u8; 4];
            w[..word.len()].copy_from_slice(word);
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{:08x}", u32::from_ne_bytes(w))?;
        }
        Ok(())
    }
}

/// One set or map element.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Element {
    /// The key, or the first key of an interval.
    pub(crate) key: Value,
    /// The last key of an interval (sets with `flags interval` and a concatenated type, where
    /// nft uses the pipapo backend): given for every element of such sets, equal to `key` for a
    /// single value.
    pub(crate) key_end: Option<Value>,
    /// The data of a map element.
    pub(crate) data: Option<Value>,
    /// The element's comment (at most [`COMMENT_MAX`] - 1 bytes, no NUL).
    pub(crate) comment: Option<String>,
}

/// Shown as `nft --debug=netlink` shows it: `key [- key_end] [: data]`, and the comment.
impl fmt::Display for Element {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.key)?;
        if let Some(end) = &self.key_end {
            write!(f, " - {end}")?;
        }
        if let Some(data) = &self.data {
            write!(f, " : {data}")?;
        }
        if let Some(comment) = &self.comment {
            write!(f, " comment {comment:?}")?;
        }
        Ok(())
    }
}

/// Adding or deleting elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// `NFT_MSG_NEWSETELEM` without `NLM_F_EXCL`: an identical element that exists is kept, an
    /// element with the same key and other data is an error (`EEXIST`).
    Add,
    /// `NFT_MSG_DELSETELEM`: a missing element is an error (`ENOENT`).
    Delete,
}

impl Op {
    fn verb(self) -> &'static str {
        match self {
            Self::Add => "add",
            Self::Delete => "delete",
        }
    }
}

/// One element message of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Message {
    op: Op,
    set: String,
    elements: Vec<Element>,
}

/// The element changes of one transaction, in order, on sets of one `inet` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Batch {
    table: String,
    messages: Vec<Message>,
}

impl Batch {
    /// An empty batch on `table` (family `inet`).
    pub(crate) fn new(table: &str) -> Self {
        Self {
            table: table.to_string(),
            messages: Vec::new(),
        }
    }

    /// Whether the batch changes nothing.
    pub(crate) fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// How many elements the batch adds or deletes.
    pub(crate) fn len(&self) -> usize {
        self.messages.iter().map(|m| m.elements.len()).sum()
    }

    /// Appends adding `elements` to `set` (nothing when there are none).
    pub(crate) fn add(&mut self, set: &str, elements: Vec<Element>) {
        self.push(Op::Add, set, elements);
    }

    /// Appends deleting `elements` from `set`. For a deletion, only the keys count.
    pub(crate) fn delete(&mut self, set: &str, elements: Vec<Element>) {
        self.push(Op::Delete, set, elements);
    }

    /// Appends deleting `elements` from `set` whether they are there or not: adding them first
    /// (a no-op for an element that exists) and then deleting them, as nft does for `destroy`
    /// on kernels without `NFT_MSG_DESTROYSETELEM`.
    pub(crate) fn delete_if_present(&mut self, set: &str, elements: Vec<Element>) {
        self.add(set, elements.clone());
        self.delete(set, elements);
    }

    fn push(&mut self, op: Op, set: &str, elements: Vec<Element>) {
        if elements.is_empty() {
            return;
        }
        self.messages.push(Message {
            op,
            set: set.to_string(),
            elements,
        });
    }

    /// The batch as netlink messages, sequence numbers starting at `seq`; with, for each
    /// message that asks for an acknowledgement, its sequence number, operation and set.
    fn encode(&self, seq: u32) -> (Vec<u8>, Vec<Sent>) {
        let mut buf = Vec::new();
        let mut sent = Vec::new();
        let mut next = seq;
        batch_marker(&mut buf, NFNL_MSG_BATCH_BEGIN, next);
        for msg in &self.messages {
            let mut chunk_start = 0;
            while chunk_start < msg.elements.len() {
                next = next.wrapping_add(1);
                let start = buf.len();
                let kind = match msg.op {
                    Op::Add => NFT_MSG_NEWSETELEM,
                    Op::Delete => NFT_MSG_DELSETELEM,
                };
                let flags = match msg.op {
                    Op::Add => NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE,
                    Op::Delete => NLM_F_REQUEST | NLM_F_ACK,
                };
                nlmsg_header(&mut buf, (NFNL_SUBSYS_NFTABLES << 8) | kind, flags, next);
                nfgenmsg(&mut buf, NFPROTO_INET, 0);
                attr_str(&mut buf, NFTA_SET_ELEM_LIST_TABLE, &self.table);
                attr_str(&mut buf, NFTA_SET_ELEM_LIST_SET, &msg.set);
                let list = nest_start(&mut buf, NFTA_SET_ELEM_LIST_ELEMENTS);
                let mut count = 0;
                for element in &msg.elements[chunk_start..] {
                    let before = buf.len();
                    encode_element(&mut buf, element, msg.op);
                    if count > 0 && buf.len() - list > ELEMENTS_PER_MESSAGE_MAX {
                        buf.truncate(before);
                        break;
                    }
                    count += 1;
                }
                nest_end(&mut buf, list);
                finish_message(&mut buf, start);
                sent.push(Sent {
                    seq: next,
                    op: msg.op,
                    set: msg.set.clone(),
                });
                chunk_start += count;
            }
        }
        next = next.wrapping_add(1);
        batch_marker(&mut buf, NFNL_MSG_BATCH_END, next);
        (buf, sent)
    }
}

/// What one sent message was, to name it in errors.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sent {
    seq: u32,
    op: Op,
    set: String,
}

fn nlmsg_header(buf: &mut Vec<u8>, kind: u16, flags: u16, seq: u32) {
    buf.extend_from_slice(&0u32.to_ne_bytes()); // length, set by finish_message
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it in
}

fn nfgenmsg(buf: &mut Vec<u8>, family: u8, res_id: u16) {
    buf.push(family);
    buf.push(NFNETLINK_V0);
    buf.extend_from_slice(&res_id.to_be_bytes());
}

fn finish_message(buf: &mut [u8], start: usize) {
    let len = u32::try_from(buf.len() - start).unwrap_or(u32::MAX);
    buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
}

fn batch_marker(buf: &mut Vec<u8>, kind: u16, seq: u32) {
    let start = buf.len();
    nlmsg_header(buf, kind, NLM_F_REQUEST, seq);
    nfgenmsg(buf, NFPROTO_UNSPEC, NFNL_SUBSYS_NFTABLES);
    finish_message(buf, start);
}

fn pad(buf: &mut Vec<u8>) {
    while !buf.len().is_multiple_of(4) {
        buf.push(0);
    }
}

fn attr(buf: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    let len = u16::try_from(4 + payload.len()).unwrap_or(u16::MAX);
    buf.extend_from_slice(&len.to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(payload);
    pad(buf);
}

fn attr_str(buf: &mut Vec<u8>, kind: u16, s: &str) {
    let mut payload = Vec::with_capacity(s.len() + 1);
    payload.extend_from_slice(s.as_bytes());
    payload.push(0);
    attr(buf, kind, &payload);
}

/// Starts a nested attribute; returns where it starts, for [`nest_end`].
fn nest_start(buf: &mut Vec<u8>, kind: u16) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&0u16.to_ne_bytes());
    buf.extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
    start
}

fn nest_end(buf: &mut [u8], start: usize) {
    let len = u16::try_from(buf.len() - start).unwrap_or(u16::MAX);
    buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
}

/// `kind { NFTA_DATA_VALUE bytes }`.
fn data_attr(buf: &mut Vec<u8>, kind: u16, value: &Value) {
    let nest = nest_start(buf, kind);
    attr(buf, NFTA_DATA_VALUE, value.bytes());
    nest_end(buf, nest);
}

/// One `NFTA_LIST_ELEM`, in the attribute order nft uses: key, key end, data, user data. A
/// deletion carries the keys only.
fn encode_element(buf: &mut Vec<u8>, element: &Element, op: Op) {
    let nest = nest_start(buf, NFTA_LIST_ELEM);
    data_attr(buf, NFTA_SET_ELEM_KEY, &element.key);
    if let Some(end) = &element.key_end {
        data_attr(buf, NFTA_SET_ELEM_KEY_END, end);
    }
    if op == Op::Add {
        if let Some(data) = &element.data {
            data_attr(buf, NFTA_SET_ELEM_DATA, data);
        }
        if let Some(comment) = &element.comment {
            let bytes = &comment.as_bytes()[..comment.len().min(COMMENT_MAX - 1)];
            let mut udata = Vec::with_capacity(bytes.len() + 3);
            udata.push(UDATA_SET_ELEM_COMMENT);
            udata.push(u8::try_from(bytes.len() + 1).unwrap_or(u8::MAX));
            udata.extend_from_slice(bytes);
            udata.push(0);
            attr(buf, NFTA_SET_ELEM_USERDATA, &udata);
        }
    }
    nest_end(buf, nest);
}

/// A kernel answer: the sequence number it refers to, and the error (0 for an acknowledgement).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Answer {
    seq: u32,
    errno: i32,
}

/// The `NLMSG_ERROR` answers in a datagram from the kernel; other messages are skipped.
fn parse_answers(mut data: &[u8]) -> Vec<Answer> {
    let mut answers = Vec::new();
    while data.len() >= NLMSG_HDRLEN {
        let word =
            |at: usize| u32::from_ne_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]);
        let len = word(0) as usize;
        if len < NLMSG_HDRLEN || len > data.len() {
            break;
        }
        let kind = u16::from_ne_bytes([data[4], data[5]]);
        // struct nlmsgerr: int error, then the request's header (whose seq is at offset 8).
        if kind == NLMSG_ERROR && len >= NLMSG_HDRLEN + 4 + NLMSG_HDRLEN {
            let errno = i32::from_ne_bytes([data[16], data[17], data[18], data[19]]);
            answers.push(Answer {
                seq: word(NLMSG_HDRLEN + 4 + 8),
                errno: -errno,
            });
        }
        let aligned = (len + 3) & !3;
        data = &data[aligned.min(data.len())..];
    }
    answers
}

/// An element read back from the kernel: its key's bytes and its comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListedElement {
    pub(crate) key: Vec<u8>,
    pub(crate) comment: Option<String>,
}

/// What a datagram of a dump answer brought.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DumpPart {
    /// Elements; more datagrams follow.
    More,
    /// The end of the dump.
    Done,
    /// The kernel refused the dump with this errno.
    Failed(i32),
}

/// The netlink attributes in `data`, as (type without flags, payload).
fn parse_attrs(mut data: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while data.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([data[0], data[1]]));
        let kind = u16::from_ne_bytes([data[2], data[3]]) & !NLA_F_NESTED;
        if len < 4 || len > data.len() {
            break;
        }
        out.push((kind, &data[4..len]));
        let aligned = (len + 3) & !3;
        data = &data[aligned.min(data.len())..];
    }
    out
}

/// The comment in an element's user data (a TLV list: type, length, value with its NUL).
fn udata_comment(mut udata: &[u8]) -> Option<String> {
    while udata.len() >= 2 {
        let (kind, len) = (udata[0], usize::from(udata[1]));
        let value = udata.get(2..2 + len)?;
        if kind == UDATA_SET_ELEM_COMMENT {
            let text = value.split(|b| *b == 0).next().unwrap_or_default();
            return Some(String::from_utf8_lossy(text).into_owned());
        }
        udata = &udata[2 + len..];
    }
    None
}

/// Reads the answers to the dump with sequence number `seq` in a datagram: the attributes
/// (after the nfgenmsg header) of every answer message of type `kind` are added to `out`.
fn parse_dump(mut data: &[u8], seq: u32, kind: u16, out: &mut Vec<Vec<u8>>) -> DumpPart {
    let mut part = DumpPart::More;
    while data.len() >= NLMSG_HDRLEN {
        let word =
            |at: usize| u32::from_ne_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]);
        let len = word(0) as usize;
        if len < NLMSG_HDRLEN || len > data.len() {
            break;
        }
        let message_kind = u16::from_ne_bytes([data[4], data[5]]);
        if word(8) == seq {
            match message_kind {
                NLMSG_DONE => part = DumpPart::Done,
                NLMSG_ERROR if len >= NLMSG_HDRLEN + 4 => {
                    let errno = -i32::from_ne_bytes([data[16], data[17], data[18], data[19]]);
                    part = if errno == 0 {
                        DumpPart::Done
                    } else {
                        DumpPart::Failed(errno)
                    };
                }
                k if k == kind && len >= NLMSG_HDRLEN + 4 => {
                    out.push(data[NLMSG_HDRLEN + 4..len].to_vec());
                }
                _ => {}
            }
        }
        let aligned = (len + 3) & !3;
        data = &data[aligned.min(data.len())..];
    }
    part
}

/// The elements in the attributes of a `NFT_MSG_NEWSETELEM` answer message.
fn listed_elements(attrs: &[u8], out: &mut Vec<ListedElement>) {
    for (t, list) in parse_attrs(attrs) {
        if t != NFTA_SET_ELEM_LIST_ELEMENTS {
            continue;
        }
        for (_, element) in parse_attrs(list) {
            let mut listed = ListedElement {
                key: Vec::new(),
                comment: None,
            };
            for (t, value) in parse_attrs(element) {
                match t {
                    NFTA_SET_ELEM_KEY => {
                        if let Some((_, key)) = parse_attrs(value)
                            .into_iter()
                            .find(|(t, _)| *t == NFTA_DATA_VALUE)
                        {
                            listed.key = key.to_vec();
                        }
                    }
                    NFTA_SET_ELEM_USERDATA => listed.comment = udata_comment(value),
                    _ => {}
                }
            }
            out.push(listed);
        }
    }
}

/// A rule read back from the kernel: its table, its chain and its comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListedRule {
    pub(crate) table: String,
    pub(crate) chain: String,
    pub(crate) comment: Option<String>,
}

/// The rule in the attributes of a `NFT_MSG_NEWRULE` answer message.
fn listed_rule(attrs: &[u8]) -> ListedRule {
    let text = |value: &[u8]| {
        let text = value.split(|b| *b == 0).next().unwrap_or_default();
        String::from_utf8_lossy(text).into_owned()
    };
    let mut rule = ListedRule {
        table: String::new(),
        chain: String::new(),
        comment: None,
    };
    for (t, value) in parse_attrs(attrs) {
        match t {
            NFTA_RULE_TABLE => rule.table = text(value),
            NFTA_RULE_CHAIN => rule.chain = text(value),
            NFTA_RULE_USERDATA => rule.comment = udata_comment(value),
            _ => {}
        }
    }
    rule
}

/// A netlink socket for nf_tables batches, in the network namespace of the thread that opened
/// it.
#[derive(Debug)]
pub(crate) struct Conn {
    socket: Socket,
    seq: u32,
    /// The send buffer size asked for so far (a batch must fit in it).
    sndbuf: usize,
}

impl Conn {
    /// Opens and binds the socket.
    pub(crate) fn open() -> io::Result<Self> {
        let mut socket = Socket::new(NETLINK_NETFILTER)?;
        socket.bind_auto()?;
        // Errors must not echo whole requests back (a batch message can be 64 KiB).
        socket.set_cap_ack(true)?;
        setsockopt(
            &socket,
            sockopt::ReceiveTimeout,
            &TimeVal::new(RECV_TIMEOUT.as_secs().try_into().unwrap_or(5), 0),
        )?;
        let sndbuf = nix::sys::socket::getsockopt(&socket, sockopt::SndBuf)?;
        Ok(Self {
            socket,
            seq: 1,
            sndbuf,
        })
    }

    /// Sends `batch` as one transaction and waits for the kernel's answers. `what` names the
    /// change for errors ("add network br0").
    ///
    /// # Errors
    /// [`Error::Batch`] when the kernel rejected the batch (nothing of it was applied), with the
    /// failing operation and the kernel's error; [`Error::Internal`] when the socket failed.
    pub(crate) fn apply(&mut self, batch: &Batch, what: &str) -> Result<(), Error> {
        if batch.is_empty() {
            return Ok(());
        }
        for msg in &batch.messages {
            for element in &msg.elements {
                trace!(
                    op = msg.op.verb(),
                    table = batch.table,
                    set = msg.set,
                    %element,
                    "nftables set element"
                );
            }
        }
        let first = self.seq;
        let (buf, sent) = batch.encode(first);
        let last = first.wrapping_add(u32::try_from(sent.len()).unwrap_or(u32::MAX) + 1);
        self.seq = last.wrapping_add(1);
        debug!(
            what,
            elements = batch.len(),
            messages = sent.len(),
            bytes = buf.len(),
            "sending nftables element batch"
        );
        let internal = |step: &str, e: &dyn fmt::Display| {
            Error::Internal(format!("{what}: {step} nftables batch: {e}"))
        };
        self.fit(buf.len())
            .map_err(|e| internal("size the socket buffer for the", &e))?;
        let written = self
            .socket
            .send_to(&buf, &SocketAddr::new(0, 0), 0)
            .map_err(|e| internal("send the", &e))?;
        if written != buf.len() {
            return Err(internal(
                "send the",
                &format!("{written} of {} bytes sent", buf.len()),
            ));
        }

        // The kernel has processed the batch by now and queued its answers: an
        // acknowledgement for every element message, or the errors (some messages may then go
        // unanswered). Read until every message is acknowledged or an error came, then take
        // whatever else is queued so that the next batch starts clean.
        let in_batch = |seq: u32| seq.wrapping_sub(first) <= last.wrapping_sub(first);
        let mut acked = 0;
        let mut failure: Option<Answer> = None;
        let mut rx = Vec::with_capacity(16 * 1024);
        while acked < sent.len() && failure.is_none() {
            rx.clear();
            self.socket
                .recv(&mut rx, 0)
                .map_err(|e| internal("read the answers to the", &e))?;
            for answer in parse_answers(&rx).into_iter().filter(|a| in_batch(a.seq)) {
                if answer.errno == 0 {
                    acked += 1;
                } else if failure.is_none() {
                    failure = Some(answer);
                }
            }
        }
        if let Some(failure) = failure {
            loop {
                rx.clear();
                match self.socket.recv(&mut rx, nix::libc::MSG_DONTWAIT) {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(internal("read the answers to the", &e)),
                }
            }
            let cause = io::Error::from_raw_os_error(failure.errno);
            let step = match sent.iter().find(|s| s.seq == failure.seq) {
                Some(s) if s.op == Op::Add && failure.errno == nix::libc::EEXIST => format!(
                    "add elements to set {}: {cause} (an element with the same or an \
                     overlapping key and other data is installed)",
                    s.set
                ),
                Some(s) => format!("{} elements of set {}: {cause}", s.op.verb(), s.set),
                None => format!("apply the transaction: {cause}"),
            };
            return Err(Error::Batch {
                what: what.to_string(),
                stderr: step,
            });
        }
        Ok(())
    }

    /// The elements of the set (or map) `set` of the inet table `table`, each as its key's
    /// bytes and its comment: a dump request, answered by the kernel without a process.
    /// `None` when the table or the set does not exist.
    ///
    /// # Errors
    /// [`Error::Internal`] when the socket fails or the kernel refuses the dump.
    pub(crate) fn set_elements(
        &mut self,
        table: &str,
        set: &str,
    ) -> Result<Option<Vec<ListedElement>>, Error> {
        let messages = self.dump(
            NFT_MSG_GETSETELEM,
            NFT_MSG_NEWSETELEM,
            &[
                (NFTA_SET_ELEM_LIST_TABLE, table),
                (NFTA_SET_ELEM_LIST_SET, set),
            ],
            &format!("list the elements of set {set}"),
        )?;
        Ok(messages.map(|messages| {
            let mut out = Vec::new();
            for attrs in &messages {
                listed_elements(attrs, &mut out);
            }
            out
        }))
    }

    /// The rules of the inet table `table`, each with its chain and comment (a dump request).
    /// `None` when the table does not exist.
    ///
    /// # Errors
    /// [`Error::Internal`] when the socket fails or the kernel refuses the dump.
    pub(crate) fn rules(&mut self, table: &str) -> Result<Option<Vec<ListedRule>>, Error> {
        let messages = self.dump(
            NFT_MSG_GETRULE,
            NFT_MSG_NEWRULE,
            &[(NFTA_RULE_TABLE, table)],
            &format!("list the rules of table {table}"),
        )?;
        Ok(messages.map(|messages| {
            messages
                .iter()
                .map(|attrs| listed_rule(attrs))
                // Kernels that do not filter dumps by table answer with every rule.
                .filter(|rule| rule.table == table)
                .collect()
        }))
    }

    /// Sends a dump request of type `request` for the inet family with string attributes
    /// `attrs`, and returns the attributes of every answer message of type `answer`. `None`
    /// when the kernel answers that what was asked for does not exist (`ENOENT`).
    fn dump(
        &mut self,
        request: u16,
        answer: u16,
        attrs: &[(u16, &str)],
        what: &str,
    ) -> Result<Option<Vec<Vec<u8>>>, Error> {
        let internal = |e: &dyn fmt::Display| Error::Internal(format!("{what}: {e}"));
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        let mut buf = Vec::with_capacity(64);
        nlmsg_header(
            &mut buf,
            (NFNL_SUBSYS_NFTABLES << 8) | request,
            NLM_F_REQUEST | NLM_F_DUMP,
            seq,
        );
        nfgenmsg(&mut buf, NFPROTO_INET, 0);
        for (kind, value) in attrs {
            attr_str(&mut buf, *kind, value);
        }
        finish_message(&mut buf, 0);
        self.socket
            .send_to(&buf, &SocketAddr::new(0, 0), 0)
            .map_err(|e| internal(&e))?;
        let mut out = Vec::new();
        let mut rx = Vec::with_capacity(32 * 1024);
        loop {
            rx.clear();
            self.socket.recv(&mut rx, 0).map_err(|e| internal(&e))?;
            match parse_dump(&rx, seq, (NFNL_SUBSYS_NFTABLES << 8) | answer, &mut out) {
                DumpPart::More => {}
                DumpPart::Done => return Ok(Some(out)),
                DumpPart::Failed(errno) if errno == nix::libc::ENOENT => return Ok(None),
                DumpPart::Failed(errno) => {
                    return Err(internal(&io::Error::from_raw_os_error(errno)));
                }
            }
        }
    }

    /// Grows the socket's send buffer when a batch would not fit in it (netlink sends a batch
    /// as one datagram). Privileged, as is changing nftables.
    fn fit(&mut self, len: usize) -> nix::Result<()> {
        // The kernel doubles the value asked for and needs a little room for itself.
        let needed = len + 4096;
        if needed <= self.sndbuf {
            return Ok(());
        }
        setsockopt(&self.socket, sockopt::SndBufForce, &needed)
            .or_else(|_| setsockopt(&self.socket, sockopt::SndBuf, &needed))?;
        self.sndbuf = needed;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes of a message's attributes, after its netlink and nfgenmsg headers.
    fn attributes(message: &[u8]) -> &[u8] {
        &message[NLMSG_HDRLEN + 4..]
    }

    /// Splits an encoded batch into its messages.
    fn messages(buf: &[u8]) -> Vec<&[u8]> {
        let mut out = Vec::new();
        let mut rest = buf;
        while !rest.is_empty() {
            let len = u32::from_ne_bytes(rest[..4].try_into().unwrap()) as usize;
            out.push(&rest[..len]);
            rest = &rest[len..];
        }
        out
    }

    fn header(message: &[u8]) -> (u16, u16, u32) {
        (
            u16::from_ne_bytes(message[4..6].try_into().unwrap()),
            u16::from_ne_bytes(message[6..8].try_into().unwrap()),
            u32::from_ne_bytes(message[8..12].try_into().unwrap()),
        )
    }

    #[test]
    fn registers_are_padded_as_nft_pads_them() {
        // `nft --debug=netlink add element inet t pub4 { udp . 100-200 : 172.17.0.3 }` prints
        // `element 00000011 00006400  - 00000011 0000c800  : 030011ac 0 [end]`.
        let e = Element {
            key: Value::new().proto(17).port(100),
            key_end: Some(Value::new().proto(17).port(200)),
            data: Some(Value::new().ipv4(Ipv4Addr::new(172, 17, 0, 3))),
            comment: None,
        };
        assert_eq!(
            e.to_string(),
            "00000011 00006400 - 00000011 0000c800 : 030011ac"
        );
        // `... masq4 { "br-a" . 172.30.1.0/24 }` (type ifname . ipv4_addr, interval) prints
        // `element 612d7262 00000000 00000000 00000000 00011eac  - 612d7262 00000000 00000000
        // 00000000 ff011eac`.
        let e = Element {
            key: Value::new()
                .ifname("br-a")
                .ipv4(Ipv4Addr::new(172, 30, 1, 0)),
            key_end: Some(
                Value::new()
                    .ifname("br-a")
                    .ipv4(Ipv4Addr::new(172, 30, 1, 255)),
            ),
            data: None,
            comment: None,
        };
        assert_eq!(
            e.to_string(),
            "612d7262 00000000 00000000 00000000 00011eac - \
             612d7262 00000000 00000000 00000000 ff011eac"
        );
        // `... hairpin6 { fd00:30:1::/64 . "br-a" }` (type ipv6_addr . ifname, interval).
        let net: Ipv6Addr = "fd00:30:1::".parse().unwrap();
        let last: Ipv6Addr = "fd00:30:1:0:ffff:ffff:ffff:ffff".parse().unwrap();
        let e = Element {
            key: Value::new().ipv6(net).ifname("br-a"),
            key_end: Some(Value::new().ipv6(last).ifname("br-a")),
            data: None,
            comment: None,
        };
        assert_eq!(
            e.to_string(),
            "300000fd 00000100 00000000 00000000 612d7262 00000000 00000000 00000000 - \
             300000fd 00000100 ffffffff ffffffff 612d7262 00000000 00000000 00000000"
        );
        // `... pub4-port { tcp . 8080 : 172.30.1.2 . 80 }` (data ipv4_addr . inet_service).
        let e = Element {
            key: Value::new().proto(6).port(8080),
            key_end: None,
            data: Some(Value::new().ipv4(Ipv4Addr::new(172, 30, 1, 2)).port(80)),
            comment: None,
        };
        assert_eq!(e.to_string(), "00000006 0000901f : 02011eac 00005000");
    }

    #[test]
    fn an_element_message_has_nfts_byte_layout() {
        // What `nft --debug=mnl add element inet t pub4 { tcp . 8000-8999 comment "hi" :
        // 172.17.0.2 }` sends, after the table and set names (nft also sends the set's id,
        // which the kernel only needs for sets created in the same batch).
        #[rustfmt::skip]
        let nft_elements: [u8; 64] = [
            64, 0, 3, 0x80,                   // NFTA_SET_ELEM_LIST_ELEMENTS, nested
            60, 0, 1, 0x80,                   //  NFTA_LIST_ELEM
            16, 0, 1, 0x80,                   //   NFTA_SET_ELEM_KEY
            12, 0, 1, 0,                      //    NFTA_DATA_VALUE
            0x06, 0, 0, 0, 0x1f, 0x40, 0, 0,  //     tcp . 8000
            16, 0, 10, 0x80,                  //   NFTA_SET_ELEM_KEY_END
            12, 0, 1, 0,                      //    NFTA_DATA_VALUE
            0x06, 0, 0, 0, 0x23, 0x27, 0, 0,  //     tcp . 8999
            12, 0, 2, 0x80,                   //   NFTA_SET_ELEM_DATA
            8, 0, 1, 0,                       //    NFTA_DATA_VALUE
            0xac, 0x11, 0, 0x02,              //     172.17.0.2
            9, 0, 6, 0,                       //   NFTA_SET_ELEM_USERDATA
            0, 3, b'h', b'i', 0, 0, 0, 0,     //    comment "hi", padded
        ];
        let mut batch = Batch::new("t");
        batch.add(
            "pub4",
            vec![Element {
                key: Value::new().proto(6).port(8000),
                key_end: Some(Value::new().proto(6).port(8999)),
                data: Some(Value::new().ipv4(Ipv4Addr::new(172, 17, 0, 2))),
                comment: Some("hi".into()),
            }],
        );
        let (buf, sent) = batch.encode(7);
        let msgs = messages(&buf);
        assert_eq!(msgs.len(), 3);

        // Batch begin and end: nfgenmsg with res_id NFNL_SUBSYS_NFTABLES, big-endian.
        for (msg, kind, seq) in [(msgs[0], 0x10, 7), (msgs[2], 0x11, 9)] {
            assert_eq!(msg.len(), 20);
            assert_eq!(header(msg), (kind, NLM_F_REQUEST, seq));
            assert_eq!(&msg[16..], &[0, 0, 0, 10]);
        }

        let elem = msgs[1];
        assert_eq!(
            header(elem),
            (0x0a0c, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE, 8)
        );
        assert_eq!(
            &elem[16..20],
            &[1, 0, 0, 0],
            "family inet, version 0, res_id 0"
        );
        #[rustfmt::skip]
        let names: [u8; 20] = [
            6, 0, 1, 0, b't', 0, 0, 0,                   // NFTA_SET_ELEM_LIST_TABLE "t"
            9, 0, 2, 0, b'p', b'u', b'b', b'4', 0, 0, 0, 0, // NFTA_SET_ELEM_LIST_SET "pub4"
        ];
        let attrs = attributes(elem);
        assert_eq!(&attrs[..20], &names);
        assert_eq!(&attrs[20..], &nft_elements);
        assert_eq!(elem.len(), 16 + 4 + 20 + 64);
        assert_eq!(
            sent,
            vec![Sent {
                seq: 8,
                op: Op::Add,
                set: "pub4".into()
            }]
        );
    }

    #[test]
    fn a_deletion_carries_only_the_keys() {
        let mut batch = Batch::new("t");
        let element = Element {
            key: Value::new().proto(6).port(80),
            key_end: Some(Value::new().proto(6).port(80)),
            data: Some(Value::new().ipv4(Ipv4Addr::new(172, 17, 0, 3))),
            comment: Some("c".into()),
        };
        batch.delete("pub4", vec![element]);
        let (buf, _) = batch.encode(1);
        let msgs = messages(&buf);
        assert_eq!(header(msgs[1]), (0x0a0e, NLM_F_REQUEST | NLM_F_ACK, 2));
        // Names (20 bytes), then ELEMENTS { LIST_ELEM { KEY { VALUE }, KEY_END { VALUE } } }.
        let attrs = &attributes(msgs[1])[20..];
        assert_eq!(attrs.len(), 4 + 4 + 16 + 16);
        assert_eq!(&attrs[8..12], &[16, 0, 1, 0x80]);
        assert_eq!(&attrs[24..28], &[16, 0, 10, 0x80]);
    }

    #[test]
    fn deleting_if_present_adds_then_deletes_in_one_batch() {
        let mut batch = Batch::new("t");
        let element = Element {
            key: Value::new().ifname("br0"),
            key_end: None,
            data: None,
            comment: None,
        };
        batch.delete_if_present("bridges", vec![element]);
        let (buf, sent) = batch.encode(100);
        let kinds: Vec<u16> = messages(&buf).iter().map(|m| header(m).0).collect();
        assert_eq!(kinds, [0x10, 0x0a0c, 0x0a0e, 0x11]);
        assert_eq!(sent.len(), 2);
    }

    #[test]
    fn many_elements_are_split_over_messages_of_one_batch() {
        let elements: Vec<Element> = (1..=10_000u16)
            .map(|port| Element {
                key: Value::new().proto(6).port(port),
                key_end: None,
                data: Some(Value::new().ipv4(Ipv4Addr::new(172, 17, 0, 2)).port(port)),
                comment: Some("lnmap,tcp,*,1-10000,172.17.0.2,1,br0".into()),
            })
            .collect();
        let mut batch = Batch::new("libnetwork");
        batch.add("pub4-port", elements);
        let (buf, sent) = batch.encode(1);
        let msgs = messages(&buf);
        assert!(sent.len() > 1, "one message for 10000 elements");
        assert_eq!(msgs.len(), sent.len() + 2);
        let mut total = 0;
        for msg in &msgs[1..msgs.len() - 1] {
            // After the names ("libnetwork" and "pub4-port", 16 bytes each with their
            // headers), the ELEMENTS attribute's 16-bit length must hold all the rest.
            let attrs = &attributes(msg)[16 + 16..];
            assert_eq!(&attrs[2..4], &[3, 0x80]);
            let nest_len = u16::from_ne_bytes(attrs[..2].try_into().unwrap()) as usize;
            assert_eq!(nest_len, attrs.len());
            total += attrs.len();
        }
        assert!(total > 65_535);
        let seqs: Vec<u32> = msgs.iter().map(|m| header(m).2).collect();
        let expected: Vec<u32> = (1..=u32::try_from(msgs.len()).unwrap()).collect();
        assert_eq!(seqs, expected);
    }

    #[test]
    fn long_comments_are_cut_to_what_nft_accepts() {
        let mut buf = Vec::new();
        let element = Element {
            key: Value::new().ifname("br0"),
            key_end: None,
            data: None,
            comment: Some("x".repeat(300)),
        };
        encode_element(&mut buf, &element, Op::Add);
        // LIST_ELEM (4) + KEY (4 + 4 + 16) + USERDATA (4 + type + length + 127 + NUL, padded).
        assert_eq!(buf.len(), 4 + 24 + 136);
        assert_eq!(usize::from(buf[4 + 24 + 4 + 1]), COMMENT_MAX);
        assert_eq!(buf[4 + 24 + 4 + 2 + 127], 0);
    }

    #[test]
    fn answers_are_read_from_error_messages() {
        let mut data = Vec::new();
        for (seq, errno) in [(5u32, 0i32), (6, -17)] {
            data.extend_from_slice(&36u32.to_ne_bytes());
            data.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
            data.extend_from_slice(&0u16.to_ne_bytes());
            data.extend_from_slice(&seq.to_ne_bytes());
            data.extend_from_slice(&0u32.to_ne_bytes());
            data.extend_from_slice(&errno.to_ne_bytes());
            // The request's header.
            data.extend_from_slice(&20u32.to_ne_bytes());
            data.extend_from_slice(&0x0a0cu16.to_ne_bytes());
            data.extend_from_slice(&0u16.to_ne_bytes());
            data.extend_from_slice(&seq.to_ne_bytes());
            data.extend_from_slice(&0u32.to_ne_bytes());
        }
        assert_eq!(
            parse_answers(&data),
            [Answer { seq: 5, errno: 0 }, Answer { seq: 6, errno: 17 }]
        );
    }

    /// The headers of a multi-part answer of type `kind` to the dump `seq`, as the kernel
    /// sends them.
    fn answer_header(buf: &mut Vec<u8>, kind: u16, seq: u32) {
        nlmsg_header(buf, (NFNL_SUBSYS_NFTABLES << 8) | kind, 0x2, seq);
        nfgenmsg(buf, NFPROTO_INET, 0);
    }

    #[test]
    fn dumped_elements_are_read_with_their_keys_and_comments() {
        let seq = 7;
        let mut buf = Vec::new();
        // One answer message with two elements, as the kernel sends them (and as we encode
        // them), then the end of the dump.
        answer_header(&mut buf, NFT_MSG_NEWSETELEM, seq);
        attr_str(&mut buf, NFTA_SET_ELEM_LIST_TABLE, "libnetwork");
        attr_str(&mut buf, NFTA_SET_ELEM_LIST_SET, "bridges");
        let list = nest_start(&mut buf, NFTA_SET_ELEM_LIST_ELEMENTS);
        let tagged = Element {
            key: Value::new().ifname("br-a"),
            key_end: None,
            data: None,
            comment: Some("lnbr,br-a".into()),
        };
        let plain = Element {
            comment: None,
            key: Value::new().ifname("br-x"),
            ..tagged.clone()
        };
        encode_element(&mut buf, &tagged, Op::Add);
        encode_element(&mut buf, &plain, Op::Add);
        nest_end(&mut buf, list);
        finish_message(&mut buf, 0);
        let kind = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWSETELEM;
        let mut out = Vec::new();
        assert_eq!(parse_dump(&buf, seq, kind, &mut out), DumpPart::More);
        let mut elements = Vec::new();
        for attrs in &out {
            listed_elements(attrs, &mut elements);
        }
        assert_eq!(
            elements,
            [
                ListedElement {
                    key: tagged.key.bytes().to_vec(),
                    comment: Some("lnbr,br-a".into()),
                },
                ListedElement {
                    key: plain.key.bytes().to_vec(),
                    comment: None,
                },
            ]
        );

        // The end, and answers to another request, which are skipped.
        let mut done = Vec::new();
        nlmsg_header(&mut done, NLMSG_DONE, 0x2, seq + 1);
        done.extend_from_slice(&0i32.to_ne_bytes());
        finish_message(&mut done, 0);
        let start = done.len();
        nlmsg_header(&mut done, NLMSG_DONE, 0x2, seq);
        done.extend_from_slice(&0i32.to_ne_bytes());
        finish_message(&mut done, start);
        assert_eq!(parse_dump(&done, seq, kind, &mut out), DumpPart::Done);
        assert_eq!(out.len(), 1);

        // A missing table or set.
        let mut missing = Vec::new();
        nlmsg_header(&mut missing, NLMSG_ERROR, 0, seq);
        missing.extend_from_slice(&(-nix::libc::ENOENT).to_ne_bytes());
        nlmsg_header(&mut missing, 0, 0, seq);
        finish_message(&mut missing, 0);
        assert_eq!(
            parse_dump(&missing, seq, kind, &mut out),
            DumpPart::Failed(nix::libc::ENOENT)
        );
    }

    #[test]
    fn dumped_rules_are_read_with_their_chain_and_comment() {
        let seq = 9;
        let mut buf = Vec::new();
        answer_header(&mut buf, NFT_MSG_NEWRULE, seq);
        attr_str(&mut buf, NFTA_RULE_TABLE, "libnetwork");
        attr_str(&mut buf, NFTA_RULE_CHAIN, "forward");
        // An expression list, which is skipped, then the comment as nft writes it.
        let exprs = nest_start(&mut buf, 4);
        attr(&mut buf, 1, &[0; 8]);
        nest_end(&mut buf, exprs);
        attr(&mut buf, NFTA_RULE_USERDATA, b"\x00\x06mark 1\x00");
        finish_message(&mut buf, 0);
        let start = buf.len();
        answer_header(&mut buf, NFT_MSG_NEWRULE, seq);
        attr_str(&mut buf, NFTA_RULE_TABLE, "libnetwork");
        attr_str(&mut buf, NFTA_RULE_CHAIN, "output");
        finish_message(&mut buf, start);

        let mut out = Vec::new();
        let kind = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWRULE;
        assert_eq!(parse_dump(&buf, seq, kind, &mut out), DumpPart::More);
        let rules: Vec<ListedRule> = out.iter().map(|attrs| listed_rule(attrs)).collect();
        assert_eq!(
            rules,
            [
                ListedRule {
                    table: "libnetwork".into(),
                    chain: "forward".into(),
                    comment: Some("mark 1".into()),
                },
                ListedRule {
                    table: "libnetwork".into(),
                    chain: "output".into(),
                    comment: None,
                },
            ]
        );
    }
}
