//! Worker commands for media the engine sends itself (prompts, DTMF) and
//! for DTMF detection, and the tick that paces injected packets.

use super::dtmf_in::DtmfIn;
use super::inject::{Injection, Progress};
use super::{LegChange, Worker};
use crate::config::LegCodec;
use crate::error::{Error, Result};
use crate::events::Event;
use crate::playback::{LegDtmf, PlayEndReason};
use crate::stats::DropKind;
use crate::sys::{send_one, RawAddr};
use crate::types::{LegId, SessionId};
use std::os::fd::AsRawFd;
use std::time::Instant;

impl Worker {
    /// Applies a per-leg change (latching flags, payload type map).
    pub(super) fn change_leg(&mut self, session: SessionId, leg: LegId, change: LegChange) -> Result<()> {
        let key = self.leg_key(session, leg)?;
        let l = self.legs.get_mut(key).ok_or(Error::UnknownLeg { session, leg })?;
        match change {
            LegChange::Latching { strict, latching } => l.set_latching(strict, latching),
            LegChange::PtMap(map) => l.pt_map = map,
        }
        Ok(())
    }

    /// What injected media into the leg is encoded as: the leg's own codec
    /// (what its endpoint sends and expects); for a relayed leg without
    /// one, the connected partner's (in relay mode the endpoint receives
    /// what the partner sends). Plus the leg's telephone-event PT.
    pub(super) fn inject_format(&self, session: SessionId, leg: LegId) -> Result<(LegCodec, Option<u8>)> {
        let key = self.leg_key(session, leg)?;
        let l = self.legs.get(key).ok_or(Error::UnknownLeg { session, leg })?;
        let codec = l
            .codec
            .clone()
            .or_else(|| {
                l.peer
                    .and_then(|p| self.legs.get(p))
                    .and_then(|p| p.codec.clone())
            })
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "leg {leg} has no codec to encode prompts or DTMF with: set_leg_codec first"
                ))
            })?;
        Ok((codec, l.dtmf.telephone_event_pt))
    }

    /// Starts an injection built for `format`; whatever the leg was sending
    /// stops (a prompt ends with `PlayEnded { reason: Stopped }`).
    pub(super) fn inject(
        &mut self,
        session: SessionId,
        leg: LegId,
        format: &(LegCodec, Option<u8>),
        inject: Box<Injection>,
    ) -> Result<()> {
        if &self.inject_format(session, leg)? != format {
            return Err(Error::Invalid(format!(
                "leg {leg} changed its codec meanwhile; try again"
            )));
        }
        let key = self.leg_key(session, leg)?;
        let l = self.legs.get_mut(key).ok_or(Error::UnknownLeg { session, leg })?;
        let old = l.inject.replace(inject).and_then(|i| i.play());
        if let Some(play) = old {
            self.events.push(Event::PlayEnded {
                session,
                leg,
                play,
                reason: PlayEndReason::Stopped,
            });
        }
        if !self.injecting.contains(&key) {
            self.injecting.push(key);
        }
        Ok(())
    }

    /// Stops the prompt playing into the leg: its id, or `None` if none was.
    pub(super) fn stop_play(&mut self, session: SessionId, leg: LegId) -> Result<Option<u64>> {
        let key = self.leg_key(session, leg)?;
        let l = self.legs.get_mut(key).ok_or(Error::UnknownLeg { session, leg })?;
        let Some(play) = l.inject.as_ref().and_then(|i| i.play()) else {
            return Ok(None);
        };
        l.inject = None;
        self.events.push(Event::PlayEnded {
            session,
            leg,
            play,
            reason: PlayEndReason::Stopped,
        });
        Ok(Some(play))
    }

    /// New DTMF settings; a connected pair is reconnected so transcoders
    /// translate the new telephone-event payload types.
    pub(super) fn set_dtmf(&mut self, session: SessionId, leg: LegId, dtmf: LegDtmf) -> Result<()> {
        let key = self.leg_key(session, leg)?;
        let l = self.legs.get_mut(key).ok_or(Error::UnknownLeg { session, leg })?;
        let previous = std::mem::replace(&mut l.dtmf, dtmf);
        let partner = l.peer.and_then(|p| self.legs.get(p)).map(|p| p.id);
        let r = self.refresh_dtmf_in(key).and_then(|()| match partner {
            Some(other) => self.connect(session, leg, other),
            None => Ok(()),
        });
        if r.is_err() {
            if let Some(l) = self.legs.get_mut(key) {
                l.dtmf = previous;
            }
            let _ = self.refresh_dtmf_in(key);
        }
        r
    }

    /// (Re)builds the leg's key press detection from its settings and codec.
    pub(super) fn refresh_dtmf_in(&mut self, key: usize) -> Result<()> {
        let Some(l) = self.legs.get_mut(key) else {
            return Ok(());
        };
        l.dtmf_in = match l.dtmf.detect {
            false => None,
            true => Some(Box::new(DtmfIn::new(
                l.dtmf.telephone_event_pt,
                l.codec.as_ref(),
                l.clock_rate,
            )?)),
        };
        Ok(())
    }

    /// Sends the injected packets due now from each leg's socket to its
    /// endpoint; finished prompts raise `PlayEnded { reason: Finished }`.
    pub(super) fn inject_tick(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.injecting.len() {
            let key = self.injecting[i];
            let Some(leg) = self.legs.get_mut(key) else {
                self.injecting.swap_remove(i);
                continue;
            };
            let fd = leg.rtp.as_raw_fd();
            let dest = leg.rtp_dest().map(RawAddr::new);
            let (mut sent, mut bytes, mut failed) = (0u64, 0u64, 0u64);
            let progress =
                match leg.inject.as_mut() {
                    None => None,
                    Some(inj) => Some(inj.run(&mut leg.out, now, |pkt| {
                        match dest.as_ref().map(|d| send_one(fd, pkt, d)) {
                            Some(Ok(_)) => {
                                sent += 1;
                                bytes += pkt.len() as u64;
                            }
                            _ => failed += 1,
                        }
                    })),
                };
            leg.packets_out += sent;
            leg.bytes_out += bytes;
            if failed > 0 {
                let kind = if dest.is_none() {
                    DropKind::NoDestination
                } else {
                    DropKind::SendFailed
                };
                leg.dropped.add(kind, failed);
                self.counters.count_drop(kind, failed);
            }
            match progress {
                Some(Progress::Running) => i += 1,
                None | Some(Progress::Done(None)) => {
                    leg.inject = None;
                    self.injecting.swap_remove(i);
                }
                Some(Progress::Done(Some(play))) => {
                    leg.inject = None;
                    self.events.push(Event::PlayEnded {
                        session: leg.session,
                        leg: leg.id,
                        play,
                        reason: PlayEndReason::Finished,
                    });
                    self.injecting.swap_remove(i);
                }
            }
        }
    }
}
