//! TCP stream-prefix reassembly for one direction of a connection.
//!
//! ward needs the *beginning* of each stream: an association request, a message header, the
//! first dataset. So a [`HalfStream`] delivers, in order, at most the first
//! [`ReassemblyConfig::prefix_limit`] bytes of its direction and then stops. It tolerates
//! retransmissions, overlapping segments, out-of-order segments within a window, and captures
//! that begin mid-connection (the first data segment seen becomes the start). Memory is bounded
//! per direction: in-order bytes not yet consumed by a decoder, plus out-of-order segments held
//! for later, each capped; [`HalfStream::memory`] reports what is held.

/// Limits for one direction of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReassemblyConfig {
    /// Bytes of each direction delivered to decoders; later bytes are ignored.
    pub prefix_limit: usize,
    /// How far ahead of the next expected byte an out-of-order segment may start and still be
    /// kept for later.
    pub reorder_window: usize,
    /// Most out-of-order segments kept at once per direction.
    pub max_pending_segments: usize,
    /// Most out-of-order bytes kept at once per direction.
    pub max_pending_bytes: usize,
}

impl Default for ReassemblyConfig {
    fn default() -> Self {
        ReassemblyConfig {
            prefix_limit: 64 * 1024,
            reorder_window: 64 * 1024,
            max_pending_segments: 32,
            max_pending_bytes: 64 * 1024,
        }
    }
}

/// Why a direction stopped taking bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The prefix limit was reached.
    PrefixLimit,
    /// The decoder said it has nothing more to learn.
    DecoderDone,
    /// Bytes are missing for good (snap length cut a segment, or an out-of-order segment could
    /// not be kept): what follows cannot be placed in order.
    Gap,
    /// The connection was reset or closed.
    Closed,
}

/// Counters for one direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HalfStats {
    /// In-order bytes delivered.
    pub delivered: u64,
    /// Bytes that arrived again after being delivered (retransmission or overlap).
    pub duplicate_bytes: u64,
    /// Segments kept out of order and delivered later.
    pub reordered_segments: u64,
    /// Segments dropped: beyond the reorder window, or pending limits full.
    pub dropped_segments: u64,
}

/// One direction of a TCP connection.
#[derive(Debug, Clone)]
pub struct HalfStream {
    cfg: ReassemblyConfig,
    /// Sequence number of the next byte expected in order; `None` until the first SYN or data.
    next_seq: Option<u32>,
    /// True when the stream was picked up without seeing its SYN.
    midstream: bool,
    /// In-order bytes not yet consumed by the decoder.
    buf: Vec<u8>,
    /// Out-of-order segments, keyed by sequence number, each with its bytes.
    pending: Vec<(u32, Vec<u8>)>,
    pending_bytes: usize,
    stop: Option<Stop>,
    stats: HalfStats,
}

/// Position of `seq` relative to `base` in sequence space: negative is before.
fn seq_diff(seq: u32, base: u32) -> i64 {
    // Reinterpreting the wrapped difference as signed gives the distance within ±2 GiB,
    // which is how TCP itself compares sequence numbers (RFC 793 §3.3).
    i64::from(seq.wrapping_sub(base) as i32)
}

impl HalfStream {
    /// A direction with nothing seen yet.
    pub fn new(cfg: ReassemblyConfig) -> Self {
        HalfStream {
            cfg,
            next_seq: None,
            midstream: false,
            buf: Vec::new(),
            pending: Vec::new(),
            pending_bytes: 0,
            stop: None,
            stats: HalfStats::default(),
        }
    }

    /// Records a SYN: the next byte is `seq + 1`. A SYN after data was seen is ignored.
    pub fn on_syn(&mut self, seq: u32) {
        if self.next_seq.is_none() {
            self.next_seq = Some(seq.wrapping_add(1));
        }
    }

    /// Takes one segment's payload. `truncated` says the capture holds only the start of the
    /// payload. Returns true when new in-order bytes became available in [`Self::data`].
    pub fn on_data(&mut self, seq: u32, payload: &[u8], truncated: bool) -> bool {
        if self.stop.is_some() || payload.is_empty() {
            return false;
        }
        let next = match self.next_seq {
            Some(n) => n,
            None => {
                self.midstream = true;
                self.next_seq = Some(seq);
                seq
            }
        };
        let before = self.stats.delivered;
        let rel = seq_diff(seq, next);
        if rel <= 0 {
            self.append(rel, payload);
            if truncated && self.stop.is_none() {
                // The bytes after this partial payload will never be seen.
                self.stop = Some(Stop::Gap);
            }
            self.drain_pending();
        } else if truncated {
            self.stop = Some(Stop::Gap);
        } else {
            self.hold(seq, rel, payload);
        }
        self.stats.delivered > before
    }

    /// Appends the part of a segment starting `rel` (≤ 0) bytes from the next expected byte
    /// that has not been delivered yet.
    fn append(&mut self, rel: i64, payload: &[u8]) {
        let skip = usize::try_from(-rel).unwrap_or(usize::MAX);
        let Some(fresh) = payload.get(skip..) else {
            self.stats.duplicate_bytes += payload.len() as u64;
            return;
        };
        self.stats.duplicate_bytes += skip as u64;
        if fresh.is_empty() {
            return;
        }
        let room = self
            .cfg
            .prefix_limit
            .saturating_sub(usize::try_from(self.stats.delivered).unwrap_or(usize::MAX));
        let take = fresh.get(..room.min(fresh.len())).unwrap_or(&[]);
        self.buf.extend_from_slice(take);
        self.stats.delivered += take.len() as u64;
        if let Some(n) = self.next_seq.as_mut() {
            // Sequence space is mod 2^32; a segment is < 2^32 bytes.
            *n = n.wrapping_add(fresh.len() as u32);
        }
        if take.len() < fresh.len() || room == take.len() {
            self.stop = Some(Stop::PrefixLimit);
            self.release_pending();
        }
    }

    fn hold(&mut self, seq: u32, rel: i64, payload: &[u8]) {
        let window = i64::try_from(self.cfg.reorder_window).unwrap_or(i64::MAX);
        if rel > window
            || self.pending.len() >= self.cfg.max_pending_segments
            || self.pending_bytes + payload.len() > self.cfg.max_pending_bytes
        {
            self.stats.dropped_segments += 1;
            // Everything from here on would wait forever for bytes that are not kept.
            if self.pending.len() >= self.cfg.max_pending_segments
                || self.pending_bytes + payload.len() > self.cfg.max_pending_bytes
            {
                self.stop = Some(Stop::Gap);
                self.release_pending();
            }
            return;
        }
        if self
            .pending
            .iter()
            .any(|(s, p)| *s == seq && p.len() >= payload.len())
        {
            self.stats.duplicate_bytes += payload.len() as u64;
            return;
        }
        self.pending_bytes += payload.len();
        self.pending.push((seq, payload.to_vec()));
    }

    fn drain_pending(&mut self) {
        // Each pass delivers or discards at least one held segment, so this ends after at most
        // `pending.len()` passes over a list of at most `max_pending_segments` entries.
        while self.stop.is_none() && !self.pending.is_empty() {
            let Some(next) = self.next_seq else { return };
            let Some(idx) = self
                .pending
                .iter()
                .position(|(s, _)| seq_diff(*s, next) <= 0)
            else {
                return;
            };
            let (seq, bytes) = self.pending.swap_remove(idx);
            self.pending_bytes -= bytes.len();
            self.stats.reordered_segments += 1;
            self.append(seq_diff(seq, next), &bytes);
        }
    }

    fn release_pending(&mut self) {
        self.pending = Vec::new();
        self.pending_bytes = 0;
    }

    /// In-order bytes not yet consumed.
    pub fn data(&self) -> &[u8] {
        &self.buf
    }

    /// Drops the first `n` bytes of [`Self::data`]: the decoder is done with them.
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.buf.len());
        self.buf.drain(..n);
        if self.buf.is_empty() && self.buf.capacity() > 4096 {
            // A burst can grow the buffer to the prefix limit; give that back once drained.
            self.buf = Vec::new();
        }
    }

    /// True once no further bytes will be delivered: the decoder should make a final pass
    /// over what [`Self::data`] still holds.
    pub fn at_limit(&self) -> bool {
        self.stop.is_some()
    }

    /// Stops the direction for good and frees its buffers.
    pub fn finish(&mut self, why: Stop) {
        if self.stop.is_none() || why == Stop::DecoderDone {
            self.stop = Some(why);
        }
        self.buf = Vec::new();
        self.release_pending();
    }

    /// Why the direction stopped, if it has.
    pub fn stopped(&self) -> Option<Stop> {
        self.stop
    }

    /// True when the first bytes seen were not preceded by a SYN.
    pub fn midstream(&self) -> bool {
        self.midstream
    }

    /// Counters.
    pub fn stats(&self) -> HalfStats {
        self.stats
    }

    /// Heap bytes held by this direction.
    pub fn memory(&self) -> usize {
        self.buf.capacity()
            + self.pending.capacity() * core::mem::size_of::<(u32, Vec<u8>)>()
            + self
                .pending
                .iter()
                .map(|(_, p)| p.capacity())
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cfg(limit: usize) -> ReassemblyConfig {
        ReassemblyConfig {
            prefix_limit: limit,
            ..ReassemblyConfig::default()
        }
    }

    /// Feeds segments and returns every byte delivered, consuming as it goes.
    fn run(h: &mut HalfStream, segs: &[(u32, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (seq, p) in segs {
            h.on_data(*seq, p, false);
            out.extend_from_slice(h.data());
            let n = h.data().len();
            h.consume(n);
        }
        out
    }

    #[test]
    fn in_order_after_syn() {
        let mut h = HalfStream::new(cfg(1000));
        h.on_syn(u32::MAX); // wraps: first byte is seq 0
        assert_eq!(run(&mut h, &[(0, b"abc"), (3, b"def")]), b"abcdef");
        assert!(!h.midstream());
    }

    #[test]
    fn retransmission_and_overlap() {
        let mut h = HalfStream::new(cfg(1000));
        h.on_syn(99);
        let out = run(
            &mut h,
            &[(100, b"abcd"), (100, b"abcd"), (102, b"cdef"), (106, b"g")],
        );
        assert_eq!(out, b"abcdefg");
        assert_eq!(h.stats().duplicate_bytes, 6);
    }

    #[test]
    fn out_of_order_within_window() {
        let mut h = HalfStream::new(cfg(1000));
        h.on_syn(0);
        let out = run(&mut h, &[(7, b"ghi"), (4, b"def"), (1, b"abc")]);
        assert_eq!(out, b"abcdefghi");
        assert_eq!(h.stats().reordered_segments, 2);
    }

    #[test]
    fn midstream_start_and_sequence_wrap() {
        let mut h = HalfStream::new(cfg(1000));
        let out = run(&mut h, &[(u32::MAX - 1, b"ab"), (0, b"cd")]);
        assert_eq!(out, b"abcd");
        assert!(h.midstream());
    }

    #[test]
    fn prefix_limit_stops_delivery() {
        let mut h = HalfStream::new(cfg(5));
        h.on_syn(0);
        let out = run(&mut h, &[(1, b"abc"), (4, b"defg"), (8, b"h")]);
        assert_eq!(out, b"abcde");
        assert_eq!(h.stopped(), Some(Stop::PrefixLimit));
    }

    #[test]
    fn truncated_segment_marks_a_gap() {
        let mut h = HalfStream::new(cfg(100));
        h.on_syn(0);
        assert!(h.on_data(1, b"ab", true));
        assert_eq!(h.stopped(), Some(Stop::Gap));
        assert!(!h.on_data(3, b"cd", false));
        assert_eq!(h.data(), b"ab");
    }

    #[test]
    fn beyond_window_is_dropped_and_pending_is_bounded() {
        let c = ReassemblyConfig {
            prefix_limit: 1 << 20,
            reorder_window: 100,
            max_pending_segments: 2,
            max_pending_bytes: 1000,
        };
        let mut h = HalfStream::new(c);
        h.on_syn(0);
        h.on_data(500, b"far", false);
        assert_eq!(h.stats().dropped_segments, 1);
        assert_eq!(h.stopped(), None);
        h.on_data(10, b"x", false);
        h.on_data(20, b"y", false);
        h.on_data(30, b"z", false);
        assert_eq!(h.stopped(), Some(Stop::Gap));
        assert_eq!(h.memory(), 0);
    }

    proptest! {
        /// Any permutation of a stream's segments with duplicates delivers the same prefix as
        /// in-order delivery, as long as the reorder bounds hold.
        #[test]
        fn any_order_delivers_the_prefix(
            data in proptest::collection::vec(any::<u8>(), 1..2000),
            cuts in proptest::collection::vec(1usize..200, 1..30),
            order in proptest::collection::vec(any::<u16>(), 30),
            isn in any::<u32>(),
            limit in 1usize..3000,
        ) {
            let mut segs = Vec::new();
            let mut pos = 0;
            for c in cuts.iter().cycle() {
                if pos >= data.len() { break; }
                let end = (pos + c).min(data.len());
                segs.push((isn.wrapping_add(1 + pos as u32), &data[pos..end]));
                pos = end;
            }
            // Keep the first segment first so the stream is not picked up mid-way; shuffle the
            // rest deterministically and duplicate a few.
            let mut rest: Vec<_> = segs[1..].to_vec();
            for (i, o) in order.iter().enumerate() {
                if rest.len() > 1 {
                    let a = i % rest.len();
                    let b = usize::from(*o) % rest.len();
                    rest.swap(a, b);
                }
            }
            let dup = rest.first().copied();
            let mut all = vec![segs[0]];
            all.extend(rest);
            all.extend(dup);
            let c = ReassemblyConfig { prefix_limit: limit, reorder_window: 1 << 20, max_pending_segments: 4096, max_pending_bytes: 1 << 20 };
            let mut h = HalfStream::new(c);
            h.on_syn(isn);
            let out = run(&mut h, &all);
            let want = &data[..data.len().min(limit)];
            prop_assert_eq!(&out[..], want);
        }

        #[test]
        fn hostile_segments_never_panic_and_stay_bounded(
            segs in proptest::collection::vec((any::<u32>(), proptest::collection::vec(any::<u8>(), 0..300), any::<bool>()), 0..60),
        ) {
            let c = ReassemblyConfig::default();
            let mut h = HalfStream::new(c);
            for (seq, p, syn) in &segs {
                if *syn { h.on_syn(*seq) } else { h.on_data(*seq, p, false); }
                prop_assert!(h.data().len() <= c.prefix_limit);
                prop_assert!(h.pending_bytes <= c.max_pending_bytes);
                prop_assert!(h.pending.len() <= c.max_pending_segments);
            }
        }
    }
}
