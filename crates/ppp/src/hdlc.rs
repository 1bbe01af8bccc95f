//! RFC 1662 asynchronous HDLC-like framing: FCS-16, flag sequences,
//! control escapes, the async control character map (ACCM) in both
//! directions, and address/control and protocol field compression.
//!
//! The [`encode_frame`] function frames one PPP packet; the [`Deframer`]
//! takes arbitrary chunks of line bytes and yields complete, FCS-checked
//! frames, with counters for what it dropped. Memory is bounded by the
//! configured maximum frame size.

/// Flag Sequence (RFC 1662 §4.1).
pub const FLAG: u8 = 0x7e;
/// Control Escape octet (RFC 1662 §4.2).
pub const ESCAPE: u8 = 0x7d;
/// The All-Stations address (RFC 1662 §3.1).
pub const ADDRESS: u8 = 0xff;
/// The Unnumbered Information control field (RFC 1662 §3.1).
pub const CONTROL: u8 = 0x03;
/// Initial FCS-16 value (RFC 1662 §C.2, `PPPINITFCS16`).
pub const FCS16_INIT: u16 = 0xffff;
/// FCS-16 residue of a frame whose FCS is good (RFC 1662 §C.2, `PPPGOODFCS16`).
pub const FCS16_GOOD: u16 = 0xf0b8;
/// The default ACCM: every control character below 0x20 escaped (RFC 1662 §7.1).
pub const DEFAULT_ACCM: u32 = 0xffff_ffff;

/// The FCS-16 lookup table of RFC 1662 §C.2, computed at compile time from
/// the reversed CCITT polynomial 0x8408.
const FCS16_TABLE: [u16; 256] = {
    let mut table = [0u16; 256];
    let mut b = 0;
    while b < 256 {
        let mut v = b as u16;
        let mut i = 0;
        while i < 8 {
            v = if v & 1 != 0 {
                (v >> 1) ^ 0x8408
            } else {
                v >> 1
            };
            i += 1;
        }
        table[b] = v;
        b += 1;
    }
    table
};

/// Updates an FCS-16 with `data` (RFC 1662 §C.2 `pppfcs16`).
pub fn fcs16(mut fcs: u16, data: &[u8]) -> u16 {
    for &b in data {
        fcs = (fcs >> 8) ^ FCS16_TABLE[usize::from((fcs ^ u16::from(b)) as u8)];
    }
    fcs
}

/// How one frame is to be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxOptions {
    /// The ACCM the peer asked for: a control character `c < 0x20` is escaped
    /// when bit `c` is set. 0x7d and 0x7e are always escaped.
    pub accm: u32,
    /// Omit the `ff 03` address and control fields (ACFC negotiated).
    pub acfc: bool,
    /// Send protocols below 0x100 in one octet (PFC negotiated).
    pub pfc: bool,
}

impl TxOptions {
    /// The options in force before LCP negotiation: full ACCM, no compression.
    pub const DEFAULT: TxOptions = TxOptions {
        accm: DEFAULT_ACCM,
        acfc: false,
        pfc: false,
    };

    /// The options to use for a given packet: LCP Configure-*, Terminate-*
    /// and Code-Reject (codes 1..=7) always go with the defaults (RFC 1662
    /// §7.1, RFC 1661 §5/§6.6 and §6.5: "LCP packets ... MUST be sent with
    /// the default ACCM" and without ACFC/PFC); everything else with `self`.
    pub fn for_packet(self, protocol: u16, payload: &[u8]) -> TxOptions {
        if protocol == 0xc021 && matches!(payload.first(), Some(1..=7)) {
            TxOptions::DEFAULT
        } else {
            self
        }
    }
}

impl Default for TxOptions {
    fn default() -> Self {
        TxOptions::DEFAULT
    }
}

fn push_escaped(out: &mut Vec<u8>, b: u8, accm: u32) {
    let escape = b == FLAG || b == ESCAPE || (b < 0x20 && accm & (1u32 << b) != 0);
    if escape {
        out.push(ESCAPE);
        out.push(b ^ 0x20);
    } else {
        out.push(b);
    }
}

/// Frames one PPP packet (`protocol` followed by `payload`) into `out`:
/// opening flag, optional address/control, protocol (compressed when
/// `opts.pfc` and the protocol is below 0x100), payload, FCS-16 (low octet
/// first), closing flag. Callers choose `opts` with [`TxOptions::for_packet`].
pub fn encode_frame(protocol: u16, payload: &[u8], opts: TxOptions, out: &mut Vec<u8>) {
    out.reserve(payload.len() + payload.len() / 8 + 10);
    out.push(FLAG);
    let mut fcs = FCS16_INIT;
    let mut put = |out: &mut Vec<u8>, b: u8| {
        fcs = fcs16(fcs, &[b]);
        push_escaped(out, b, opts.accm);
    };
    if !opts.acfc {
        put(out, ADDRESS);
        put(out, CONTROL);
    }
    let [hi, lo] = protocol.to_be_bytes();
    if !(opts.pfc && hi == 0 && lo & 1 == 1) {
        put(out, hi);
    }
    put(out, lo);
    for &b in payload {
        put(out, b);
    }
    let fcs = !fcs;
    let [f0, f1] = fcs.to_le_bytes();
    push_escaped(out, f0, opts.accm);
    push_escaped(out, f1, opts.accm);
    out.push(FLAG);
}

/// Convenience wrapper of [`encode_frame`] returning a new vector.
pub fn encode(protocol: u16, payload: &[u8], opts: TxOptions) -> Vec<u8> {
    let mut v = Vec::new();
    encode_frame(protocol, payload, opts, &mut v);
    v
}

/// Counters of the [`Deframer`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeframerStats {
    /// Frames delivered (good FCS, valid header).
    pub frames: u64,
    /// Frames dropped because the FCS did not check.
    pub bad_fcs: u64,
    /// Frames dropped because they exceeded the maximum frame size.
    pub oversize: u64,
    /// Frames too short to hold a protocol field and FCS.
    pub runts: u64,
    /// Frames with a malformed address/control or protocol field.
    pub bad_header: u64,
    /// Frames aborted by `7d 7e` (RFC 1662 §4.1).
    pub aborted: u64,
    /// Unescaped control characters discarded because the receive ACCM
    /// flags them (RFC 1662 §7.1).
    pub accm_dropped: u64,
}

/// A complete frame from the [`Deframer`]: the PPP protocol number and the
/// information field (FCS and address/control fields removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// PPP protocol field, decompressed if it came in one octet.
    pub protocol: u16,
    /// Information field.
    pub payload: Vec<u8>,
    /// The address/control fields were absent (ACFC).
    pub acfc: bool,
    /// The protocol field was one octet (PFC).
    pub pfc: bool,
}

/// A streaming RFC 1662 deframer.
///
/// Feed it any chunks of line bytes with [`Deframer::push`]; it calls the
/// sink for every good frame. Garbage before the first flag, bad-FCS frames,
/// aborted frames and frames longer than the maximum are dropped and counted.
#[derive(Debug, Clone)]
pub struct Deframer {
    buf: Vec<u8>,
    max_frame: usize,
    escaped: bool,
    /// Bytes are being discarded until the next flag (oversize frame).
    discarding: bool,
    rx_accm: u32,
    stats: DeframerStats,
}

impl Deframer {
    /// A deframer for frames whose unescaped content (address, control,
    /// protocol, information, FCS) is at most `max_frame` octets.
    /// Starts with the default receive ACCM (all control characters mapped).
    pub fn new(max_frame: usize) -> Self {
        Deframer {
            buf: Vec::new(),
            max_frame: max_frame.max(4),
            escaped: false,
            discarding: false,
            rx_accm: DEFAULT_ACCM,
            stats: DeframerStats::default(),
        }
    }

    /// Sets the receive ACCM: the map we asked the peer to use. Control
    /// characters in the map that arrive unescaped were inserted by the line
    /// (e.g. XON/XOFF) and are discarded.
    pub fn set_rx_accm(&mut self, accm: u32) {
        self.rx_accm = accm;
    }

    /// The current receive ACCM.
    pub fn rx_accm(&self) -> u32 {
        self.rx_accm
    }

    /// The counters so far.
    pub fn stats(&self) -> DeframerStats {
        self.stats
    }

    /// The maximum unescaped frame size.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Consumes `data` and calls `sink` with every complete good frame.
    pub fn push(&mut self, mut data: &[u8], mut sink: impl FnMut(Frame)) {
        while !data.is_empty() {
            let (used, frame) = self.push_until_frame(data);
            data = data.get(used..).unwrap_or(&[]);
            if let Some(f) = frame {
                sink(f);
            }
        }
    }

    /// Consumes `data` up to and including the end of the first complete
    /// good frame, and returns how many octets it used and that frame.
    /// Lets the caller act on a frame (e.g. change the receive ACCM) before
    /// the following octets are decoded.
    pub fn push_until_frame(&mut self, data: &[u8]) -> (usize, Option<Frame>) {
        for (i, &b) in data.iter().enumerate() {
            if b == FLAG {
                if let Some(f) = self.end_frame() {
                    return (i + 1, Some(f));
                }
                continue;
            }
            if self.discarding {
                continue;
            }
            if b < 0x20 && self.rx_accm & (1u32 << b) != 0 {
                self.stats.accm_dropped += 1;
                continue;
            }
            if b == ESCAPE {
                self.escaped = true;
                continue;
            }
            let v = if self.escaped {
                self.escaped = false;
                b ^ 0x20
            } else {
                b
            };
            if self.buf.len() >= self.max_frame {
                self.stats.oversize += 1;
                self.buf.clear();
                self.discarding = true;
                continue;
            }
            self.buf.push(v);
        }
        (data.len(), None)
    }

    /// Collects the frames of `data` into a vector.
    pub fn push_collect(&mut self, data: &[u8]) -> Vec<Frame> {
        let mut v = Vec::new();
        self.push(data, |f| v.push(f));
        v
    }

    fn end_frame(&mut self) -> Option<Frame> {
        let escaped = std::mem::replace(&mut self.escaped, false);
        if std::mem::replace(&mut self.discarding, false) {
            self.buf.clear();
            return None;
        }
        if self.buf.is_empty() {
            // Back-to-back flags, or a flag right after a frame: nothing.
            return None;
        }
        let content = std::mem::take(&mut self.buf);
        let result = if escaped {
            self.stats.aborted += 1;
            None
        } else {
            self.parse(&content).ok()
        };
        if result.is_some() {
            self.stats.frames += 1;
        }
        self.recycle(content);
        result
    }

    fn recycle(&mut self, mut content: Vec<u8>) {
        content.clear();
        self.buf = content;
    }

    fn parse(&mut self, content: &[u8]) -> Result<Frame, ()> {
        // Smallest frame: one-octet protocol + FCS.
        if content.len() < 3 {
            self.stats.runts += 1;
            return Err(());
        }
        if fcs16(FCS16_INIT, content) != FCS16_GOOD {
            self.stats.bad_fcs += 1;
            return Err(());
        }
        let body = &content[..content.len() - 2];
        let (acfc, rest) = match body {
            [ADDRESS, CONTROL, rest @ ..] => (false, rest),
            [ADDRESS, ..] => {
                self.stats.bad_header += 1;
                return Err(());
            }
            rest => (true, rest),
        };
        let (protocol, pfc, payload) = match rest {
            [p, payload @ ..] if p & 1 == 1 => (u16::from(*p), true, payload),
            [hi, lo, payload @ ..] if lo & 1 == 1 => {
                (u16::from_be_bytes([*hi, *lo]), false, payload)
            }
            _ => {
                self.stats.bad_header += 1;
                return Err(());
            }
        };
        Ok(Frame {
            protocol,
            payload: payload.to_vec(),
            acfc,
            pfc,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fcs_table_matches_rfc1662() {
        // First entries of the RFC 1662 §C.2 table.
        assert_eq!(
            &FCS16_TABLE[..8],
            &[
                0x0000, 0x1189, 0x2312, 0x329b, 0x4624, 0x57ad, 0x6536, 0x74bf
            ]
        );
        assert_eq!(FCS16_TABLE[255], 0x0f78);
    }

    #[test]
    fn fcs_check_value() {
        // CRC-16/X-25 check value of "123456789".
        assert_eq!(!fcs16(FCS16_INIT, b"123456789"), 0x906e);
    }

    #[test]
    fn good_fcs_residue() {
        let data = [0xff, 0x03, 0xc0, 0x21, 0x05, 0x01, 0x00, 0x04];
        let fcs = !fcs16(FCS16_INIT, &data);
        let mut all = data.to_vec();
        all.extend_from_slice(&fcs.to_le_bytes());
        assert_eq!(fcs16(FCS16_INIT, &all), FCS16_GOOD);
    }

    #[test]
    fn lcp_config_uses_defaults() {
        let negotiated = TxOptions {
            accm: 0,
            acfc: true,
            pfc: true,
        };
        assert_eq!(
            negotiated.for_packet(0xc021, &[1, 1, 0, 4]),
            TxOptions::DEFAULT
        );
        assert_eq!(negotiated.for_packet(0xc021, &[9, 1, 0, 8]), negotiated);
        assert_eq!(negotiated.for_packet(0x0021, &[1]), negotiated);
    }

    #[test]
    fn pfc_acfc_roundtrip() {
        let o = TxOptions {
            accm: 0,
            acfc: true,
            pfc: true,
        };
        let f = encode(0x0021, &[0x45, 0x7e, 0x7d, 0x01], o);
        assert_eq!(f[1], 0x21);
        let mut d = Deframer::new(1600);
        d.set_rx_accm(0);
        let frames = d.push_collect(&f);
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].protocol, 0x21);
        assert!(frames[0].pfc && frames[0].acfc);
        assert_eq!(frames[0].payload, vec![0x45, 0x7e, 0x7d, 0x01]);
    }

    #[test]
    fn resync_and_counters() {
        let good = encode(0xc021, &[9, 1, 0, 8, 1, 2, 3, 4], TxOptions::DEFAULT);
        let mut d = Deframer::new(32);
        let mut input = b"garbage\r\nCONNECT".to_vec();
        input.extend_from_slice(&good);
        // corrupted copy
        let mut bad = good.clone();
        bad[6] ^= 0x40;
        input.extend_from_slice(&bad);
        // aborted frame
        input.extend_from_slice(&[0x7e, 0xff, 0x7d, 0x7e]);
        // oversize
        input.push(0x7e);
        input.extend_from_slice(&[0x41; 100]);
        input.push(0x7e);
        input.extend_from_slice(&good);
        let frames = d.push_collect(&input);
        assert_eq!(frames.len(), 2);
        let s = d.stats();
        assert_eq!(s.bad_fcs, 2); // the garbage before the first flag and `bad`
        assert_eq!(s.aborted, 1);
        assert_eq!(s.oversize, 1);
    }

    #[test]
    fn unescaped_mapped_controls_are_dropped() {
        let f = encode(0xc021, &[9, 1, 0, 8, 0x11, 0x13, 3, 4], TxOptions::DEFAULT);
        let mut with_xon = Vec::new();
        for &b in &f {
            with_xon.push(b);
            if b != FLAG {
                with_xon.push(0x11);
            }
        }
        let mut d = Deframer::new(64);
        let frames = d.push_collect(&with_xon);
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].payload, vec![9, 1, 0, 8, 0x11, 0x13, 3, 4]);
        assert!(d.stats().accm_dropped > 0);
    }
}
