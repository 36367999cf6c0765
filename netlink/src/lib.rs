//! A small synchronous rtnetlink client: just the link, address and route
//! calls the network helper and `dockyard new` need. Chosen over
//! `rtnetlink` (async, tokio) because both do a handful of requests and
//! exit; see docs/dependencies.md.

use std::io;
use std::net::{IpAddr, Ipv4Addr};

pub mod crossing;
pub use crossing::{crossings, Crossing};

use ipnet::Ipv4Net;
use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage, AddressScope};
use netlink_packet_route::link::{InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

pub struct Netlink {
    sock: Socket,
    seq: u32,
    buf: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub is_bridge: bool,
    pub up: bool,
}

/// An IPv4 route's destination and the routing table it is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub table: u32,
    pub dst: Ipv4Net,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addr {
    pub index: u32,
    pub net: Ipv4Net,
}

fn bad_data(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("bad netlink reply: {e}"),
    )
}

impl Netlink {
    pub fn open() -> io::Result<Self> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        sock.connect(&SocketAddr::new(0, 0))?;
        Ok(Netlink {
            sock,
            seq: 0,
            // Dump replies arrive in chunks of at most 32 KiB; 64 KiB is safe.
            buf: vec![0; 65536],
        })
    }

    /// Send one request and collect the replies until the ACK or end of dump.
    /// A NACK becomes the kernel's errno as an io::Error.
    fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        self.seq = self.seq.wrapping_add(1);
        let mut packet = NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::from(msg));
        packet.header.flags = NLM_F_REQUEST | flags;
        packet.header.sequence_number = self.seq;
        packet.finalize();
        let mut out = vec![0; packet.buffer_len()];
        packet.serialize(&mut out);
        self.sock.send(&out, 0)?;

        let mut replies = Vec::new();
        loop {
            let n = self.sock.recv(&mut &mut self.buf[..], 0)?;
            let mut off = 0;
            while off < n {
                let msg: NetlinkMessage<RouteNetlinkMessage> =
                    NetlinkMessage::deserialize(&self.buf[off..n]).map_err(bad_data)?;
                let len = msg.header.length as usize;
                if len == 0 {
                    return Err(bad_data("zero-length message"));
                }
                // Messages are padded to 4 bytes (NLMSG_ALIGN).
                off += (len + 3) & !3;
                if msg.header.sequence_number != self.seq {
                    continue; // a late reply to something else; not ours
                }
                match msg.payload {
                    NetlinkPayload::Done(_) => return Ok(replies),
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(replies), // ACK
                            Some(_) => Err(e.to_io()),
                        };
                    }
                    NetlinkPayload::InnerMessage(m) => replies.push(m),
                    _ => {}
                }
            }
        }
    }

    pub fn links(&mut self) -> io::Result<Vec<Link>> {
        let replies = self.request(
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            NLM_F_DUMP,
        )?;
        let mut links = Vec::new();
        for r in replies {
            let RouteNetlinkMessage::NewLink(m) = r else {
                continue;
            };
            let mut name = None;
            let mut is_bridge = false;
            for a in &m.attributes {
                match a {
                    LinkAttribute::IfName(n) => name = Some(n.clone()),
                    LinkAttribute::LinkInfo(infos) => {
                        is_bridge |= infos
                            .iter()
                            .any(|i| matches!(i, LinkInfo::Kind(InfoKind::Bridge)));
                    }
                    _ => {}
                }
            }
            if let Some(name) = name {
                links.push(Link {
                    index: m.header.index,
                    name,
                    is_bridge,
                    up: m.header.flags.contains(LinkFlags::Up),
                });
            }
        }
        Ok(links)
    }

    pub fn link(&mut self, name: &str) -> io::Result<Option<Link>> {
        Ok(self.links()?.into_iter().find(|l| l.name == name))
    }

    /// Create a bridge; `Ok(false)` if something of that name appeared first.
    pub fn create_bridge(&mut self, name: &str) -> io::Result<bool> {
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        m.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Bridge,
            )]));
        match self.request(
            RouteNetlinkMessage::NewLink(m),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        ) {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub fn set_up(&mut self, index: u32) -> io::Result<()> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        m.header.flags = LinkFlags::Up;
        m.header.change_mask = LinkFlags::Up;
        self.request(RouteNetlinkMessage::SetLink(m), NLM_F_ACK)
            .map(drop)
    }

    /// Delete a link; `Ok(false)` if it was already gone.
    pub fn delete_link(&mut self, index: u32) -> io::Result<bool> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        match self.request(RouteNetlinkMessage::DelLink(m), NLM_F_ACK) {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Every IPv4 address on the host (this network namespace).
    pub fn addresses_v4(&mut self) -> io::Result<Vec<Addr>> {
        let mut req = AddressMessage::default();
        req.header.family = AddressFamily::Inet;
        let replies = self.request(RouteNetlinkMessage::GetAddress(req), NLM_F_DUMP)?;
        let mut out = Vec::new();
        for r in replies {
            let RouteNetlinkMessage::NewAddress(m) = r else {
                continue;
            };
            if m.header.family != AddressFamily::Inet {
                continue;
            }
            // IFA_LOCAL is the interface's own address; IFA_ADDRESS differs
            // from it only on point-to-point links.
            let mut local = None;
            let mut address = None;
            for a in &m.attributes {
                match a {
                    AddressAttribute::Local(IpAddr::V4(ip)) => local = Some(*ip),
                    AddressAttribute::Address(IpAddr::V4(ip)) => address = Some(*ip),
                    _ => {}
                }
            }
            if let Some(ip) = local.or(address) {
                if let Ok(net) = Ipv4Net::new(ip, m.header.prefix_len) {
                    out.push(Addr {
                        index: m.header.index,
                        net,
                    });
                }
            }
        }
        Ok(out)
    }

    fn addr_message(index: u32, net: Ipv4Net) -> AddressMessage {
        let mut m = AddressMessage::default();
        m.header.family = AddressFamily::Inet;
        m.header.prefix_len = net.prefix_len();
        m.header.index = index;
        m.header.scope = AddressScope::Universe;
        let ip: Ipv4Addr = net.addr();
        m.attributes.push(AddressAttribute::Local(IpAddr::V4(ip)));
        m.attributes.push(AddressAttribute::Address(IpAddr::V4(ip)));
        m
    }

    /// Add an address; `Ok(false)` if it was already there.
    pub fn add_address(&mut self, index: u32, net: Ipv4Net) -> io::Result<bool> {
        let mut m = Self::addr_message(index, net);
        if net.prefix_len() < 31 {
            m.attributes
                .push(AddressAttribute::Broadcast(net.broadcast()));
        }
        match self.request(
            RouteNetlinkMessage::NewAddress(m),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        ) {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub fn del_address(&mut self, index: u32, net: Ipv4Net) -> io::Result<()> {
        let m = Self::addr_message(index, net);
        match self.request(RouteNetlinkMessage::DelAddress(m), NLM_F_ACK) {
            Ok(_) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Every IPv4 route of every routing table (main, local, and any table
    /// policy routing or a VPN added): an unfiltered dump returns them all.
    pub fn routes_v4(&mut self) -> io::Result<Vec<Route>> {
        let mut req = RouteMessage::default();
        req.header.address_family = AddressFamily::Inet;
        let replies = self.request(RouteNetlinkMessage::GetRoute(req), NLM_F_DUMP)?;
        let mut out = Vec::new();
        for r in replies {
            let RouteNetlinkMessage::NewRoute(m) = r else {
                continue;
            };
            if m.header.address_family != AddressFamily::Inet {
                continue;
            }
            // Tables above 255 only appear in RTA_TABLE.
            let mut table = u32::from(m.header.table);
            let mut dst = Ipv4Addr::UNSPECIFIED;
            for a in &m.attributes {
                match a {
                    RouteAttribute::Table(t) => table = *t,
                    RouteAttribute::Destination(RouteAddress::Inet(ip)) => dst = *ip,
                    _ => {}
                }
            }
            if let Ok(net) = Ipv4Net::new(dst, m.header.destination_prefix_length) {
                out.push(Route { table, dst: net });
            }
        }
        Ok(out)
    }
}
