//! Hand-built IPv4 packets: UDP datagrams for the throughput runs and ICMP
//! echo requests for the raw tun round trips.

use std::net::Ipv4Addr;

/// IPv4 header length without options (RFC 791).
pub const IPV4_HEADER: usize = 20;
/// UDP header length (RFC 768).
pub const UDP_HEADER: usize = 8;

/// The Internet checksum (RFC 1071) of `data`, starting from `sum`.
fn checksum_from(mut sum: u32, data: &[u8]) -> u16 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The Internet checksum (RFC 1071).
pub fn checksum(data: &[u8]) -> u16 {
    checksum_from(0, data)
}

/// An IPv4 header (RFC 791) for a `total`-byte packet of `proto`, with its
/// checksum. `total` must fit in 16 bits (the callers check it).
fn ipv4_header(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, total: u16) -> Vec<u8> {
    let mut p = Vec::with_capacity(usize::from(total));
    p.extend_from_slice(&[0x45, 0]);
    p.extend_from_slice(&total.to_be_bytes());
    // Identification 0, Don't Fragment, TTL 64.
    p.extend_from_slice(&[0, 0, 0x40, 0, 64, proto, 0, 0]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    let sum = checksum(&p[..IPV4_HEADER]);
    p[10..12].copy_from_slice(&sum.to_be_bytes());
    p
}

/// The smallest IP packet size [`udp`] accepts.
pub const MIN_UDP_PACKET: usize = IPV4_HEADER + UDP_HEADER;

/// An IPv4 + UDP (RFC 768) datagram of `size` bytes in all (IP header
/// included), with a valid UDP checksum. `None` when `size` is below
/// [`MIN_UDP_PACKET`] or above 65535.
pub fn udp(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, size: usize) -> Option<Vec<u8>> {
    let total = u16::try_from(size)
        .ok()
        .filter(|_| size >= MIN_UDP_PACKET)?;
    let udp_len = total - IPV4_HEADER as u16;
    let mut p = ipv4_header(src, dst, 17, total);
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    p.extend_from_slice(&udp_len.to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend((0..size - MIN_UDP_PACKET).map(|i| i as u8));
    // Pseudo-header: source, destination, zero, protocol, UDP length.
    let mut pseudo: u32 = 0;
    for w in src
        .octets()
        .chunks_exact(2)
        .chain(dst.octets().chunks_exact(2))
    {
        pseudo += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    pseudo += 17 + u32::from(udp_len);
    let mut sum = checksum_from(pseudo, &p[IPV4_HEADER..]);
    if sum == 0 {
        // RFC 768: a computed zero is sent as all ones.
        sum = 0xffff;
    }
    p[IPV4_HEADER + 6..IPV4_HEADER + 8].copy_from_slice(&sum.to_be_bytes());
    Some(p)
}

/// An IPv4 + ICMP echo request (RFC 792) of `size` bytes in all. `None`
/// when `size` is below 28 or above 65535.
pub fn echo_request(src: Ipv4Addr, dst: Ipv4Addr, id: u16, size: usize) -> Option<Vec<u8>> {
    let total = u16::try_from(size).ok().filter(|_| size >= 28)?;
    let mut p = ipv4_header(src, dst, 1, total);
    p.extend_from_slice(&[8, 0, 0, 0]);
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&[0, 1]);
    p.extend((0..size - 28).map(|i| i as u8));
    let sum = checksum(&p[IPV4_HEADER..]);
    p[22..24].copy_from_slice(&sum.to_be_bytes());
    Some(p)
}

/// Whether `p` is an ICMP echo reply (type 0) of `size` bytes.
pub fn is_echo_reply(p: &[u8], size: usize) -> bool {
    p.len() == size && p.get(9) == Some(&1) && p.get(IPV4_HEADER) == Some(&0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udp_checksums_verify() {
        let (s, d) = (Ipv4Addr::new(10, 250, 9, 10), Ipv4Addr::new(10, 250, 9, 1));
        let p = udp(s, d, 40000, 9, 1400).expect("valid size");
        assert_eq!(p.len(), 1400);
        assert_eq!(checksum(&p[..IPV4_HEADER]), 0, "IP header sums to zero");
        let mut pseudo: u32 = 0;
        for w in s.octets().chunks_exact(2).chain(d.octets().chunks_exact(2)) {
            pseudo += u32::from(u16::from_be_bytes([w[0], w[1]]));
        }
        pseudo += 17 + 1380;
        assert_eq!(
            checksum_from(pseudo, &p[IPV4_HEADER..]),
            0,
            "UDP sums to zero"
        );
        assert!(udp(s, d, 1, 2, 27).is_none());
        assert!(udp(s, d, 1, 2, 70_000).is_none());
    }

    #[test]
    fn echo_request_checksums_verify() {
        let p = echo_request(Ipv4Addr::new(1, 2, 3, 4), Ipv4Addr::new(5, 6, 7, 8), 7, 84)
            .expect("valid size");
        assert_eq!(p.len(), 84);
        assert_eq!(checksum(&p[..IPV4_HEADER]), 0);
        assert_eq!(checksum(&p[IPV4_HEADER..]), 0);
        let mut reply = p.clone();
        reply[IPV4_HEADER] = 0;
        assert!(is_echo_reply(&reply, 84));
        assert!(!is_echo_reply(&p, 84));
        assert!(!is_echo_reply(&reply[..10], 84));
    }
}
