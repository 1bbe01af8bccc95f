//! A Linux tun device carrying bare IP packets, driven from tokio.
//!
//! dialgate joins every PPP session to the network through **one** tun
//! device: packets the kernel routes to the device are read with
//! [`Tun::recv`] and handed to the session owning the destination address;
//! packets a session sends are written with [`Tun::send`]. The caller's side
//! (`dialgate dial`) uses a tun of its own the same way.
//!
//! How the device is made (all in-process):
//!
//! * `open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC)` and the
//!   `TUNSETIFF` ioctl with `IFF_TUN | IFF_NO_PI`: a layer-3 device, each
//!   `read`/`write` is exactly one IPv4 or IPv6 packet with no 4-byte
//!   packet-information header in front. The device is *not* persistent: it
//!   disappears when the [`Tun`] is dropped (its descriptor closed).
//! * Interface settings use the classic `ioctl`s on an `AF_INET` datagram
//!   socket opened for the call: `SIOCSIFMTU`/`SIOCGIFMTU`,
//!   `SIOCSIFADDR`, `SIOCSIFNETMASK`, `SIOCSIFDSTADDR`, `SIOCGIFFLAGS` +
//!   `SIOCSIFFLAGS`. They act in the network namespace of the calling
//!   thread, which must be the one the device was created in.
//! * Extra routes ([`Tun::add_route`]) run `ip -4 route replace` (the route
//!   ioctl needs a `struct rtentry` that the `libc` crate does not describe
//!   for glibc, and a netlink client is more code than the job deserves).
//!
//! A tun device is a point-to-point interface, so the kernel's rules for
//! its addresses are those of `devinet_ioctl`: `SIOCSIFADDR` alone gives a
//! `/32`; a netmask makes it a subnet with a connected route (what the
//! server wants: its own address plus the pool prefix, see
//! [`Tun::set_ipv4`]); a destination address makes it a peer address with a
//! host route to the peer (what a PPP client wants, see [`Tun::set_peer`]).
//!
//! Everything here needs `CAP_NET_ADMIN` in the device's network namespace.
//!
//! Invariant: one `recv` returns at most one packet and one `send` writes
//! exactly one packet; the device lives exactly as long as its [`Tun`].

use std::ffi::c_char;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::process::Command;

use nix::sys::socket::{AddressFamily, SockFlag, SockType, socket};
use tokio::io::unix::AsyncFd;

/// The clone device every tun interface is created through.
pub const TUN_CLONE_DEVICE: &str = "/dev/net/tun";

/// The longest interface name Linux accepts (`IFNAMSIZ - 1`, the last byte
/// being the terminating NUL).
pub const MAX_NAME_LEN: usize = libc::IFNAMSIZ - 1;

/// The smallest MTU accepted: the minimum every IPv4 host must handle
/// (RFC 791, "Every internet module must be able to forward a datagram of
/// 68 octets"), which is also the tun driver's `min_mtu`.
pub const MIN_MTU: u16 = 68;

/// A tun device (`IFF_TUN | IFF_NO_PI`) owned by this process.
///
/// All methods take `&self`, so one task can sit in [`Tun::recv`] while
/// others call [`Tun::send`] (share it in an `Arc`). Dropping the value
/// closes the descriptor, and the kernel deletes the interface.
pub struct Tun {
    fd: AsyncFd<File>,
    name: String,
}

impl fmt::Debug for Tun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tun")
            .field("name", &self.name)
            .field("fd", &self.fd.get_ref().as_raw_fd())
            .finish()
    }
}

impl Tun {
    /// Create the tun interface `name` and set its MTU. The interface is
    /// left down and without addresses: see [`Tun::set_ipv4`],
    /// [`Tun::set_peer`] and [`Tun::up`].
    ///
    /// `name` is 1 to [`MAX_NAME_LEN`] bytes, with no `/`, `:`, whitespace
    /// or NUL, and not `.` or `..` (the kernel's `dev_valid_name` rules,
    /// checked here so the error is clear). It may hold one `%d`, which the
    /// kernel replaces by the first free number; [`Tun::name`] tells the
    /// result. A name already used by a tun device that is open elsewhere
    /// fails with `EBUSY`, by another kind of device with `EINVAL`.
    ///
    /// Must be called within a tokio runtime (the descriptor is registered
    /// with its reactor).
    pub fn create(name: &str, mtu: u16) -> io::Result<Tun> {
        check_name(name)?;
        check_mtu(mtu)?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(io::Error::other(format!(
                "tun {name}: Tun::create called outside a tokio runtime"
            )));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(TUN_CLONE_DEVICE)
            .map_err(|e| {
                let hint = match e.kind() {
                    io::ErrorKind::NotFound => " (is the tun module loaded?)",
                    io::ErrorKind::PermissionDenied => " (needs root or CAP_NET_ADMIN)",
                    _ => "",
                };
                context(e, format_args!("tun: cannot open {TUN_CLONE_DEVICE}{hint}"))
            })?;

        let mut req = ifreq(name);
        // `IFF_TUN | IFF_NO_PI` both fit in the short `ifru_flags`.
        req.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
        ifreq_ioctl(file.as_fd(), IfReq::TunSetIff, &mut req).map_err(|e| {
            let hint = if e.raw_os_error() == Some(libc::EBUSY) {
                " (a tun device of that name is open elsewhere)"
            } else if e.raw_os_error() == Some(libc::EINVAL) {
                " (is the name taken by a device that is not a tun?)"
            } else if e.raw_os_error() == Some(libc::EPERM) {
                " (needs CAP_NET_ADMIN)"
            } else {
                ""
            };
            context(e, format_args!("tun {name}: TUNSETIFF failed{hint}"))
        })?;
        // The kernel writes the final name back (it differs when `%d` was used).
        let name = name_from_ifreq(&req);

        let tun = Tun {
            fd: register(file)
                .map_err(|e| context(e, format_args!("tun {name}: cannot register with tokio")))?,
            name,
        };
        tun.set_mtu(mtu)?;
        Ok(tun)
    }

    /// The interface name (as the kernel spells it).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Set the interface MTU (`SIOCSIFMTU`); at least [`MIN_MTU`].
    pub fn set_mtu(&self, mtu: u16) -> io::Result<()> {
        check_mtu(mtu)?;
        let mut req = ifreq(&self.name);
        req.ifr_ifru.ifru_mtu = libc::c_int::from(mtu);
        self.control(IfReq::SetMtu, &mut req, "SIOCSIFMTU")
    }

    /// The interface MTU as the kernel has it now (`SIOCGIFMTU`).
    pub fn mtu(&self) -> io::Result<u16> {
        let mut req = ifreq(&self.name);
        self.control(IfReq::GetMtu, &mut req, "SIOCGIFMTU")?;
        let mtu = ifru_int(&req, IntField::Mtu);
        u16::try_from(mtu).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("tun {}: kernel reports MTU {mtu}, out of range", self.name),
            )
        })
    }

    /// Give the interface the subnet address `addr/prefix_len`
    /// (`SIOCSIFADDR`, `SIOCSIFDSTADDR` back to `addr` to drop any earlier
    /// peer address, `SIOCSIFNETMASK`). Once the interface is up the kernel
    /// routes the whole prefix to it: the server side gives the tun its own
    /// address inside the pool's prefix, e.g. `10.250.1.1/24` for a pool in
    /// `10.250.1.0/24`. A pool outside that prefix needs
    /// [`Tun::add_route`].
    ///
    /// `prefix_len` is 1 to 32; `addr` must be a unicast address.
    pub fn set_ipv4(&self, addr: Ipv4Addr, prefix_len: u8) -> io::Result<()> {
        let mask = prefix_mask(prefix_len)?;
        check_unicast(addr, "address")?;
        self.set_addr(IfReq::SetAddr, addr, "SIOCSIFADDR")?;
        self.set_addr(IfReq::SetDstAddr, addr, "SIOCSIFDSTADDR")?;
        self.set_addr(IfReq::SetNetmask, mask, "SIOCSIFNETMASK")
    }

    /// Give the interface the point-to-point address `local` with peer
    /// `peer` (`SIOCSIFADDR`, `SIOCSIFNETMASK` to `/32`, `SIOCSIFDSTADDR`),
    /// as `ip addr add LOCAL peer PEER/32` would: once up, the kernel has a
    /// host route to `peer` through the interface. This is the PPP client's
    /// view of the link (IPCP gave it `local` and told it `peer`).
    pub fn set_peer(&self, local: Ipv4Addr, peer: Ipv4Addr) -> io::Result<()> {
        check_unicast(local, "local address")?;
        check_unicast(peer, "peer address")?;
        if local == peer {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("tun {}: local and peer address are both {local}", self.name),
            ));
        }
        self.set_addr(IfReq::SetAddr, local, "SIOCSIFADDR")?;
        self.set_addr(IfReq::SetNetmask, Ipv4Addr::BROADCAST, "SIOCSIFNETMASK")?;
        self.set_addr(IfReq::SetDstAddr, peer, "SIOCSIFDSTADDR")
    }

    /// Route `dest/prefix_len` through this interface
    /// (`ip -4 route replace DEST/LEN dev NAME`): for an address pool
    /// outside the prefix given to [`Tun::set_ipv4`], or a client's routes
    /// through the link. The interface must be up. Blocks for as long as the
    /// `ip` command runs (a few milliseconds): call it while setting up.
    pub fn add_route(&self, dest: Ipv4Addr, prefix_len: u8) -> io::Result<()> {
        let mask = prefix_mask(prefix_len)?;
        let net = Ipv4Addr::from(dest.to_bits() & mask.to_bits());
        let target = format!("{net}/{prefix_len}");
        let out = Command::new("ip")
            .args(["-4", "route", "replace", &target, "dev", &self.name])
            .output()
            .map_err(|e| context(e, format_args!("tun {}: cannot run `ip`", self.name)))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "tun {}: `ip -4 route replace {target} dev {}` failed ({}): {}",
                self.name,
                self.name,
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    }

    /// Bring the interface up (`IFF_UP` through `SIOCGIFFLAGS` +
    /// `SIOCSIFFLAGS`).
    pub fn up(&self) -> io::Result<()> {
        self.update_flags(|f| f | libc::IFF_UP)
    }

    /// Take the interface down: the kernel withdraws its routes and
    /// [`Tun::send`] fails with [`io::ErrorKind::NetworkDown`] until
    /// [`Tun::up`]; addresses and MTU are kept.
    pub fn down(&self) -> io::Result<()> {
        self.update_flags(|f| f & !libc::IFF_UP)
    }

    /// Whether the interface is up (`SIOCGIFFLAGS`).
    pub fn is_up(&self) -> io::Result<bool> {
        Ok(self.flags()? & libc::IFF_UP != 0)
    }

    /// Receive one IP packet the kernel routed to the interface into `buf`
    /// and return its length. `buf` should hold at least the MTU: the
    /// kernel truncates a longer packet to `buf.len()` and drops the rest.
    /// An empty `buf` is refused (reading with it would discard a packet).
    ///
    /// Cancel safe: if the future is dropped before it completes, no packet
    /// was taken.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("tun {}: recv with an empty buffer", self.name),
            ));
        }
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|fd| fd.get_ref().read(buf)) {
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(result) => {
                    return result.map_err(|e| context(e, format_args!("tun {}: read", self.name)));
                }
                Err(_would_block) => continue,
            }
        }
    }

    /// Send one IP packet (IPv4 or IPv6, starting with its IP header) into
    /// the kernel, as if it had arrived on the interface; returns the length
    /// written, always `packet.len()`.
    ///
    /// Errors concern this packet only, the device stays usable:
    /// [`io::ErrorKind::InvalidInput`] for an empty packet or one the
    /// kernel refuses (`EINVAL`: first nibble not 4 or 6, or too long),
    /// [`io::ErrorKind::NetworkDown`] while the interface is down (`EIO`).
    /// The kernel does not check the rest of the header here: bad checksums
    /// and lengths are dropped later, silently, by the IP layer.
    ///
    /// Cancel safe: a packet is either written whole or not at all.
    pub async fn send(&self, packet: &[u8]) -> io::Result<usize> {
        if packet.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("tun {}: send of an empty packet", self.name),
            ));
        }
        loop {
            let mut guard = self.fd.writable().await?;
            match guard.try_io(|fd| fd.get_ref().write(packet)) {
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(result) => return result.map_err(|e| self.send_error(e, packet.len())),
                Err(_would_block) => continue,
            }
        }
    }

    /// Name what a failed `write` means: `EINVAL` is the packet's fault,
    /// `EIO` the interface being down.
    fn send_error(&self, e: io::Error, len: usize) -> io::Error {
        let (kind, why) = match e.raw_os_error() {
            Some(libc::EINVAL) => (
                io::ErrorKind::InvalidInput,
                "malformed packet (not IPv4/IPv6, or too long)",
            ),
            Some(libc::EIO) => (io::ErrorKind::NetworkDown, "interface is down"),
            _ => (e.kind(), "write failed"),
        };
        io::Error::new(
            kind,
            format!("tun {}: {len}-byte packet refused: {why}: {e}", self.name),
        )
    }

    fn set_addr(&self, which: IfReq, addr: Ipv4Addr, op: &str) -> io::Result<()> {
        let mut req = ifreq(&self.name);
        let sa = sockaddr_v4(addr);
        match which {
            IfReq::SetNetmask => req.ifr_ifru.ifru_netmask = sa,
            IfReq::SetDstAddr => req.ifr_ifru.ifru_dstaddr = sa,
            _ => req.ifr_ifru.ifru_addr = sa,
        }
        self.control(which, &mut req, op)
            .map_err(|e| context(e, format_args!("({addr})")))
    }

    fn flags(&self) -> io::Result<libc::c_int> {
        let mut req = ifreq(&self.name);
        self.control(IfReq::GetFlags, &mut req, "SIOCGIFFLAGS")?;
        Ok(ifru_int(&req, IntField::Flags))
    }

    fn update_flags(&self, f: impl FnOnce(libc::c_int) -> libc::c_int) -> io::Result<()> {
        let flags = f(self.flags()?);
        let mut req = ifreq(&self.name);
        // `ifr_flags` is a C short; every IFF_* flag settable this way fits
        // in its 16 bits (the higher ones are read-only), so truncation is
        // what the kernel expects.
        req.ifr_ifru.ifru_flags = flags as libc::c_short;
        self.control(IfReq::SetFlags, &mut req, "SIOCSIFFLAGS")
    }

    /// Run an interface ioctl on a fresh `AF_INET` datagram socket.
    fn control(&self, which: IfReq, req: &mut libc::ifreq, op: &str) -> io::Result<()> {
        let sock = control_socket()
            .map_err(|e| context(e, format_args!("tun {}: control socket", self.name)))?;
        ifreq_ioctl(sock.as_fd(), which, req)
            .map_err(|e| context(e, format_args!("tun {}: {op} failed", self.name)))
    }
}

/// Register the tun descriptor with tokio's reactor.
#[allow(unsafe_code)]
fn register(file: File) -> io::Result<AsyncFd<File>> {
    // SAFETY: `file` is an open descriptor owned by the `File` moved into
    // the `AsyncFd`; nothing else can close or replace it, and
    // `File::as_raw_fd` returns that same descriptor until the `AsyncFd`
    // drops it.
    let fd = unsafe { AsyncFd::register(file) }?;
    Ok(fd)
}

/// The interface ioctls this module issues; each takes a `struct ifreq`.
#[derive(Clone, Copy, Debug)]
enum IfReq {
    TunSetIff,
    SetMtu,
    GetMtu,
    SetAddr,
    SetNetmask,
    SetDstAddr,
    GetFlags,
    SetFlags,
}

impl IfReq {
    fn request(self) -> libc::Ioctl {
        match self {
            IfReq::TunSetIff => libc::TUNSETIFF,
            IfReq::SetMtu => libc::SIOCSIFMTU,
            IfReq::GetMtu => libc::SIOCGIFMTU,
            IfReq::SetAddr => libc::SIOCSIFADDR,
            IfReq::SetNetmask => libc::SIOCSIFNETMASK,
            IfReq::SetDstAddr => libc::SIOCSIFDSTADDR,
            IfReq::GetFlags => libc::SIOCGIFFLAGS,
            IfReq::SetFlags => libc::SIOCSIFFLAGS,
        }
    }
}

/// Issue one of the [`IfReq`] ioctls on `fd`.
#[allow(unsafe_code)]
fn ifreq_ioctl(fd: BorrowedFd<'_>, which: IfReq, req: &mut libc::ifreq) -> io::Result<()> {
    let request = which.request();
    let ptr: *mut libc::ifreq = req;
    // SAFETY: every request `IfReq` can name (TUNSETIFF and the SIOC[GS]IF*
    // calls) takes a pointer to one `struct ifreq`, which the kernel reads
    // and/or overwrites within its size. `ptr` comes from an exclusive
    // borrow that outlives the call, and `fd` is a live descriptor.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), request, ptr) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// A zeroed `struct ifreq` naming interface `name` (already checked to be
/// at most [`MAX_NAME_LEN`] bytes, so the name stays NUL-terminated).
#[allow(unsafe_code)]
fn ifreq(name: &str) -> libc::ifreq {
    // SAFETY: `ifreq` is plain C data: a `c_char` array and a union of
    // integers, `sockaddr`s (integers and arrays) and a raw pointer. The
    // all-zero bit pattern is a valid value of each (a null `ifru_data`).
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().take(MAX_NAME_LEN).zip(name.bytes()) {
        *dst = src as c_char;
    }
    req
}

#[derive(Clone, Copy)]
enum IntField {
    Mtu,
    Flags,
}

/// Read an integer member of `ifr_ifru` after a "get" ioctl.
#[allow(unsafe_code)]
fn ifru_int(req: &libc::ifreq, field: IntField) -> libc::c_int {
    match field {
        // SAFETY: `req` was created zeroed by `ifreq`, so every byte of the
        // union is initialised, and any bit pattern is a valid `c_int`.
        IntField::Mtu => unsafe { req.ifr_ifru.ifru_mtu },
        // SAFETY: as above; any bit pattern is a valid `c_short`. The kernel
        // reports only the low 16 flag bits through this call.
        IntField::Flags => libc::c_int::from(unsafe { req.ifr_ifru.ifru_flags }) & 0xffff,
    }
}

/// The interface name the kernel wrote back into `req`.
fn name_from_ifreq(req: &libc::ifreq) -> String {
    let bytes: Vec<u8> = req
        .ifr_name
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// `addr` as a `struct sockaddr` holding a `sockaddr_in` (port 0).
fn sockaddr_v4(addr: Ipv4Addr) -> libc::sockaddr {
    // sockaddr_in layout after the family: sin_port (2 bytes, network
    // order), sin_addr (4 bytes, network order), zero padding.
    let mut data = [0 as c_char; 14];
    for (dst, src) in data.iter_mut().skip(2).zip(addr.octets()) {
        *dst = src as c_char;
    }
    libc::sockaddr {
        sa_family: libc::AF_INET as libc::sa_family_t,
        sa_data: data,
    }
}

fn control_socket() -> io::Result<OwnedFd> {
    socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(io::Error::from)
}

/// Check an interface name against the kernel's rules (see [`Tun::create`]).
fn check_name(name: &str) -> io::Result<()> {
    let bad = |why: &str| {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("tun: invalid interface name {name:?}: {why}"),
        ))
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > MAX_NAME_LEN {
        return bad(&format!(
            "{} bytes, Linux allows at most {MAX_NAME_LEN}",
            name.len()
        ));
    }
    if name == "." || name == ".." {
        return bad("reserved");
    }
    if let Some(c) = name
        .chars()
        .find(|&c| c == '/' || c == ':' || c == '\0' || c.is_whitespace())
    {
        return bad(&format!("contains {c:?}"));
    }
    if name.matches('%').count() > 1 {
        return bad("more than one '%'");
    }
    if name.contains('%') && !name.contains("%d") {
        return bad("'%' other than the \"%d\" number template");
    }
    Ok(())
}

fn check_mtu(mtu: u16) -> io::Result<()> {
    if mtu < MIN_MTU {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("tun: MTU {mtu} below the IPv4 minimum {MIN_MTU}"),
        ));
    }
    Ok(())
}

fn check_unicast(addr: Ipv4Addr, what: &str) -> io::Result<()> {
    if addr.is_unspecified() || addr.is_multicast() || addr.is_broadcast() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("tun: {what} {addr} is not a unicast address"),
        ));
    }
    Ok(())
}

/// The netmask of a `/prefix_len`, which must be 1 to 32.
fn prefix_mask(prefix_len: u8) -> io::Result<Ipv4Addr> {
    if !(1..=32).contains(&prefix_len) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("tun: IPv4 prefix length {prefix_len} outside 1..=32"),
        ));
    }
    Ok(Ipv4Addr::from(u32::MAX << (32 - u32::from(prefix_len))))
}

/// Prefix an error message with what was being done, keeping its kind.
fn context(e: io::Error, what: fmt::Arguments<'_>) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_kernel_rules() {
        for ok in ["dgt0", "a", "dialgate-ppp%d", "exactly15bytes_"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "sixteen_bytes_xx",
            "has/slash",
            "has:colon",
            "has space",
            "tab\there",
            "nul\0",
            "x%d%d",
            "pct%s",
        ] {
            let err = check_name(bad).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
            assert!(err.to_string().contains("invalid interface name"), "{err}");
        }
        let long = check_name("sixteen_bytes_xx").unwrap_err().to_string();
        assert!(
            long.contains("16 bytes") && long.contains("at most 15"),
            "{long}"
        );
    }

    #[test]
    fn mtu_minimum() {
        assert!(check_mtu(67).is_err());
        assert!(check_mtu(68).is_ok());
        assert!(check_mtu(u16::MAX).is_ok());
    }

    #[test]
    fn prefix_masks() {
        assert_eq!(prefix_mask(24).unwrap(), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(prefix_mask(32).unwrap(), Ipv4Addr::BROADCAST);
        assert_eq!(prefix_mask(1).unwrap(), Ipv4Addr::new(128, 0, 0, 0));
        assert!(prefix_mask(0).is_err());
        assert!(prefix_mask(33).is_err());
    }

    #[test]
    fn sockaddr_layout() {
        let sa = sockaddr_v4(Ipv4Addr::new(10, 250, 7, 1));
        assert_eq!(i32::from(sa.sa_family), libc::AF_INET);
        let bytes: Vec<u8> = sa.sa_data.iter().map(|&c| c as u8).collect();
        assert_eq!(&bytes[..6], &[0, 0, 10, 250, 7, 1]);
        assert!(bytes[6..].iter().all(|&b| b == 0));
    }

    #[test]
    fn ifreq_name_round_trip() {
        let req = ifreq("exactly15bytes_");
        assert_eq!(req.ifr_name[MAX_NAME_LEN], 0);
        assert_eq!(name_from_ifreq(&req), "exactly15bytes_");
    }

    #[test]
    fn unicast_check() {
        assert!(check_unicast(Ipv4Addr::new(10, 0, 0, 1), "a").is_ok());
        assert!(check_unicast(Ipv4Addr::UNSPECIFIED, "a").is_err());
        assert!(check_unicast(Ipv4Addr::BROADCAST, "a").is_err());
        assert!(check_unicast(Ipv4Addr::new(224, 0, 0, 1), "a").is_err());
    }
}
