//! Replaying a recorded packet trace through a jitter buffer on a virtual
//! clock, for benchmarks that compare settings on the same network trace.

use super::{JitterBuffer, JitterConfig, JitterStats};
use crate::codec::Decoder;
use crate::error::Result;

/// Feeds `trace` — `(arrival_ms, RTP packet)` in arrival order — to a new
/// buffer and pops every `ptime_ms` from the first arrival on, until every
/// packet was pushed and the buffer has drained (or `max_delay_ms` passed
/// after the last arrival). Malformed packets are skipped. Returns the final
/// [`JitterStats`]: `late`, `lost`, `concealed_samples` and `mean_delay_ms`
/// are the usual figures of merit.
pub fn replay<'a>(
    cfg: JitterConfig,
    decoder: Box<dyn Decoder>,
    trace: impl IntoIterator<Item = (f64, &'a [u8])>,
) -> Result<JitterStats> {
    let ptime = f64::from(cfg.ptime_ms);
    let linger = f64::from(cfg.max_delay_ms) + ptime;
    let mut jb = JitterBuffer::new(cfg, decoder)?;
    let mut pcm = Vec::with_capacity(jb.frame_samples());
    let mut trace = trace.into_iter().peekable();
    let Some(&(first, _)) = trace.peek() else {
        return Ok(jb.stats());
    };
    let mut k = 0u64;
    let mut last_arrival = first;
    loop {
        let now = first + ptime * k as f64;
        while let Some(&(t, pkt)) = trace.peek() {
            if t > now {
                break;
            }
            last_arrival = t;
            let _ = jb.push(pkt, t); // a malformed packet changes nothing
            trace.next();
        }
        pcm.clear();
        jb.pop(now, &mut pcm)?;
        k += 1;
        if trace.peek().is_none() && (jb.stats().buffered_packets == 0 || now > last_arrival + linger) {
            return Ok(jb.stats());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{jb, sine_payloads, stream, Lcg, SSRC};
    use super::*;

    #[test]
    fn replay_reports_the_trade_off_between_delay_and_late_loss() {
        let payloads = sine_payloads(vec![160; 1500], 440.0);
        let mut sent = stream(&payloads, 0.0, 0, 0, SSRC);
        let mut rng = Lcg(5);
        for p in &mut sent {
            // Exponential-ish jitter, mean 10 ms.
            p.arrival_ms += -10.0 * (1.0 - rng.unit()).ln();
        }
        sent.sort_by(|a, b| a.arrival_ms.total_cmp(&b.arrival_ms));
        let mut trace: Vec<(f64, &[u8])> = sent.iter().map(|p| (p.arrival_ms, &p.bytes[..])).collect();
        trace.insert(3, (trace[3].0, &[0xFF, 0xFF][..])); // junk is skipped
        let at = |quantile| {
            let cfg = JitterConfig {
                quantile,
                ..Default::default()
            };
            replay(cfg, super::super::tests::pcmu(), trace.iter().copied()).unwrap()
        };
        let (low, high) = (at(0.5), at(0.99));
        for s in [&low, &high] {
            assert_eq!(s.packets_received, 1500);
            assert_eq!(s.played + s.late + s.lost, 1500, "{s:?}");
            assert_eq!(s.buffered_packets, 0);
        }
        assert!(high.mean_delay_ms > low.mean_delay_ms + 10.0, "{low:?} {high:?}");
        assert!(high.late * 3 < low.late, "{low:?} {high:?}");
        let _ = jb; // the helper is shared with the other tests
    }
}
