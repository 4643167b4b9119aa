"""Two real softphones (baresip 1.0, Debian package baresip-core) register to `vpbx serve`
with digest auth and call each other over real sockets:

    baresip 201 (plays 440 Hz) --SIP/RTP--> vpbx (B2BUA + engine) --SIP/RTP--> baresip 202

Each phone plays its own tone from a WAV file and records what it decodes from the network
(baresip's sndfile module), so the test hears what a user would: the callee's recording
carries the caller's tone and the other way round. Media is anchored: each phone only ever
sees vpbx's RTP ports. Debian 12's baresip 1.0 (libre) gives up on the first digest
challenge whose algorithm it does not know instead of using the next one (RFC 8760 §2.4),
so vpbx runs with `md5_only = true` as the README says for such phones.
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from baresip_proc import Baresip, dominant_frequency, read_wav, tone_seconds, write_tone
from vpbx_server import VpbxServer, vpbx_env

ROOT = Path(__file__).resolve().parents[2]
# vpbx's media ports; the phones use 61000-64999. Both above Linux's default ephemeral
# range (32768-60999): baresip 1.0 gives up a call after a few busy ports in its range,
# and busy machines hand out thousands of ephemeral ports.
PORT_MIN, PORT_MAX = 65000, 65399
ALICE, ALICE_PW, ALICE_TONE = "201", "pw-201", 440.0
BOB, BOB_PW, BOB_TONE = "202", "pw-202", 660.0
CAROL, CAROL_PW, CAROL_TONE = "203", "pw-203", 880.0  # the blind transfer's target
TALK_S = 3.0
MIN_EXPIRES = 4  # short, for the registration refresh test (the other phones ask 60 s)
TIMEOUT = 30.0


@dataclass
class Pbx:
    proc: VpbxServer
    data_dir: Path

    @property
    def sip(self) -> tuple[str, int]:
        return self.proc.sip

    def metrics(self) -> dict[str, float]:
        assert self.proc.http is not None
        url = f"http://{self.proc.http[0]}:{self.proc.http[1]}/metrics"
        with urllib.request.urlopen(url, timeout=5) as r:
            text = r.read().decode()
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out

    def wait_metric(self, name: str, wanted: float, *, exact: bool = False, timeout: float = 10.0) -> None:
        """Wait (bounded) until the metric reaches `wanted` (or equals it, with `exact`)."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.metrics().get(name, 0.0)
            if value == wanted or (not exact and value > wanted):
                return
            if time.monotonic() > deadline:
                pytest.fail(f"{name} = {value}, wanted {'' if exact else '>= '}{wanted}")
            time.sleep(0.1)

    def cdr_count(self) -> int:
        with sqlite3.connect(self.data_dir / "vpbx.db") as db:
            return int(db.execute("select coalesce(max(id), 0) from cdrs").fetchone()[0])

    def last_cdr(self, after: int) -> tuple[str, str, str, str, str, float]:
        """The newest CDR with id > after (written behind: wait for it, bounded)."""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with sqlite3.connect(self.data_dir / "vpbx.db") as db:
                row = db.execute(
                    "select direction, from_number, to_number, disposition, hangup_cause, billsec from cdrs "
                    "where id > ? order by id desc limit 1",
                    (after,),
                ).fetchone()
            if row is not None:
                return row  # type: ignore[no-any-return]
            time.sleep(0.1)
        pytest.fail("no CDR written")


def cli(data_dir: Path, *args: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "vpbx", "--data-dir", str(data_dir), *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=vpbx_env(),
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def pbx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pbx]:
    data_dir = tmp_path_factory.mktemp("vpbx-baresip")
    cli(data_dir, "user", "add", ALICE, "--password", ALICE_PW)
    cli(data_dir, "user", "add", BOB, "--password", BOB_PW)
    cli(data_dir, "user", "add", CAROL, "--password", CAROL_PW)
    config = data_dir / "vpbx.toml"
    config.write_text(
        f"[serve]\nport_min = {PORT_MIN}\nport_max = {PORT_MAX}\nmd5_only = true\n"
        f'min_expires = {MIN_EXPIRES}\nlog_level = "warning"\nqualify_interval_s = 1\n'
    )
    args = ["serve", "--config", str(config), "--data-dir", str(data_dir)]
    args += ["--sip-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"]
    proc = VpbxServer(args, timeout=TIMEOUT)
    try:
        try:
            proc.start()
        except RuntimeError as e:
            pytest.fail(str(e))
        yield Pbx(proc, data_dir)
    finally:
        proc.stop()


@pytest.fixture
def phones(pbx: Pbx, tmp_path: Path) -> Iterator[list[Baresip]]:
    """Phones a test starts; all are stopped (then killed if need be) at teardown."""
    started: list[Baresip] = []
    yield started
    for phone in started:
        phone.stop()


def start_pair(
    pbx: Pbx,
    tmp: Path,
    phones: list[Baresip],
    *,
    alice: str = "pcmu",
    bob: str = "pcmu",
    transport: str = "udp",
    bob_answers: str = "auto",
) -> tuple[Baresip, Baresip]:
    """201 and 202 registered over `transport` (codecs as given); 201 answers by itself,
    202 as `bob_answers` says (auto; manual: rings until told to accept; early: 183 + media)."""
    accepted = 'vpbx_sip_register_results_total{result="accepted"}'
    before = pbx.metrics().get(accepted, 0.0)
    a = Baresip(
        tmp / "alice",
        user=ALICE,
        password=ALICE_PW,
        registrar=pbx.sip,
        source=write_tone(tmp / "alice.wav", ALICE_TONE),
        codecs=alice,
        answermode="auto",
        transport=transport,
    )
    phones.append(a)
    a.start()  # before creating the next phone: its ports are taken only now
    b = Baresip(
        tmp / "bob",
        user=BOB,
        password=BOB_PW,
        registrar=pbx.sip,
        source=write_tone(tmp / "bob.wav", BOB_TONE),
        codecs=bob,
        answermode=bob_answers,
        transport=transport,
    )
    phones.append(b)
    b.start()
    pbx.wait_metric(accepted, before + 2)  # both REGISTERs passed digest auth
    pbx.wait_metric("vpbx_registrations", 2, exact=True)
    return a, b


def media_port(message: str) -> tuple[str, int]:
    m = re.search(r"^c=IN IP4 (\S+)$(?:.|\n)*?^m=audio (\d+) ", message, re.M)
    assert m is not None, message
    return m.group(1), int(m.group(2))


def talk(
    caller: Baresip,
    callee: Baresip,
    dest: str,
    *,
    during: threading.Event | None = None,
    digits: str = "",
) -> None:
    """caller dials dest, the callee answers by itself, the caller presses `digits` (RFC 4733
    events), TALK_S after the answer the caller hangs up."""
    assert caller.command("dial", dest)["ok"], caller.tail()
    caller.wait_event("CALL_ESTABLISHED")
    callee.wait_event("CALL_ESTABLISHED")
    answered = time.monotonic()
    for digit in digits:
        assert caller.command("sndcode", digit)["ok"]
        time.sleep(0.3)
    time.sleep(max(0.0, answered + TALK_S - time.monotonic()))
    if during is not None:
        during.set()
    assert caller.command("hangup")["ok"]
    caller.wait_event("CALL_CLOSED")
    callee.wait_event("CALL_CLOSED")


def assert_heard(phone: Baresip, freq: float) -> None:
    """The phone's recording is mostly `freq`. Relayed G.711 arrives bit-exact; transcoded
    media passes the engine's jitter buffer, which may follow a changing delay by resampling
    frames by up to 1% (media-core jitter/stretch.rs), so allow 1% of `freq` (3 Hz at least)."""
    samples, rate = read_wav(phone.heard())
    assert rate == 8000
    peak = dominant_frequency(samples, rate)
    seconds = tone_seconds(samples, rate, freq)
    heard = f"{phone.user} heard {peak:.1f} Hz, {seconds} s of {freq} Hz in {len(samples) / rate} s"
    assert abs(peak - freq) <= max(3.0, 0.01 * freq), heard
    assert seconds >= TALK_S - 1.0, heard


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_baresip_calls_baresip_with_audio_both_ways_through_vpbx(
    pbx: Pbx, tmp_path: Path, phones: list[Baresip], transport: str
) -> None:
    a, b = start_pair(pbx, tmp_path, phones, transport=transport)
    before, before_cdr = pbx.metrics(), pbx.cdr_count()
    talk(a, b, BOB)
    assert_heard(b, ALICE_TONE)  # the callee heard the caller's 440 Hz
    assert_heard(a, BOB_TONE)  # and the caller the callee's 660 Hz
    # vpbx reached the callee the way it registered; over TCP on the very connection its
    # REGISTER opened (as it must for a phone behind NAT), not a new one to its listen port.
    proto = transport.upper()
    registered_on = next(p for p, m in b.trace("SIP/2.0 200", proto=proto) if "REGISTER" in m)
    ((invited_on, invite),) = b.trace("INVITE ", proto=proto)
    assert invited_on == (registered_on if transport == "tcp" else b.sip)
    # Anchored media: each phone was given vpbx's RTP port, never the other phone's.
    answers = a.received("SIP/2.0 200", proto=proto)
    (answer,) = [m for m in answers if re.search(r"^CSeq: \d+ INVITE$", m, re.M)]
    for host, port in (media_port(invite), media_port(answer)):
        assert host == "127.0.0.1" and PORT_MIN <= port <= PORT_MAX, (host, port)
    # OPTIONS qualify (every second here) reached the phones the way they registered, and
    # baresip's answers count them reachable.
    pbx.wait_metric("vpbx_contacts_reachable", 2)
    probed_on = {port for port, _ in b.trace("OPTIONS ", proto=proto)}
    assert probed_on == {registered_on if transport == "tcp" else b.sip}, probed_on
    after = pbx.metrics()
    relayed = after["vpbx_media_packets_relayed_total"] - before["vpbx_media_packets_relayed_total"]
    assert relayed >= 0.8 * 2 * TALK_S * 50, relayed  # 20 ms packets both ways
    assert after['vpbx_calls_total{direction="internal",result="answered"}'] >= 1
    cdr = pbx.last_cdr(before_cdr)
    assert cdr[:5] == ("internal", ALICE, BOB, "answered", "caller hung up")
    assert abs(cdr[5] - TALK_S) <= 1.0, cdr  # billable seconds
    # A phone that quits unregisters (REGISTER Expires: 0): vpbx forgets its binding.
    for phone in (a, b):
        phone.stop()
    pbx.wait_metric("vpbx_registrations", 0, exact=True)


def test_reverse_call_pcma_to_pcmu_is_transcoded_by_vpbx(
    pbx: Pbx, tmp_path: Path, phones: list[Baresip]
) -> None:
    """202 only speaks PCMA, 201 only PCMU: vpbx offers 201 both, and transcodes; the digits
    202 presses (telephone-event) reach 201 too."""
    a, b = start_pair(pbx, tmp_path, phones, bob="pcma")
    before_cdr = pbx.cdr_count()
    in_call = threading.Event()
    samples: list[float] = []

    def sample() -> None:  # the transcoding gauge, read while the call is up
        while not in_call.wait(0.5):
            samples.append(pbx.metrics()["vpbx_media_transcoded_streams"])

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        talk(b, a, ALICE, during=in_call, digits="19#")
    finally:
        in_call.set()
        sampler.join(timeout=5)
    assert_heard(a, BOB_TONE)
    assert_heard(b, ALICE_TONE)
    (invite,) = a.received("INVITE ")
    assert re.search(r"^m=audio \d+ RTP/AVP 8 ", b.log(), re.M)  # what 202 offered: PCMA only
    assert re.search(r"^a=rtpmap:0 PCMU/8000", invite, re.M), invite  # what 201 was offered
    assert max(samples, default=0) >= 2, samples
    assert [e["param"] for e in a.events if e["type"] == "CALL_DTMF_START"] == ["1", "9", "#"]
    assert pbx.last_cdr(before_cdr)[:5] == ("internal", BOB, ALICE, "answered", "caller hung up")


def test_ringing_phone_cancelled_declined_then_answered_and_hung_up_by_the_callee(
    pbx: Pbx, tmp_path: Path, phones: list[Baresip]
) -> None:
    """202 rings (no auto-answer): 201 gives up (CANCEL), then 202 declines (486), then 202
    picks up and hangs up itself: each call ends on both phones and leaves its CDR."""
    a, b = start_pair(pbx, tmp_path, phones, bob_answers="manual")
    before_cdr = pbx.cdr_count()

    def ring() -> None:
        assert a.command("dial", BOB)["ok"]
        b.wait_event("CALL_INCOMING")
        a.wait_event("CALL_RINGING")

    ring()
    assert a.command("hangup")["ok"]
    a.wait_event("CALL_CLOSED")
    b.wait_event("CALL_CLOSED")
    assert pbx.last_cdr(before_cdr)[3:] == ("cancelled", "caller cancelled", 0.0)

    before_cdr = pbx.cdr_count()
    ring()
    assert b.command("hangup")["ok"]  # baresip declines with 486 Busy Here
    assert a.wait_event("CALL_CLOSED")["param"].startswith("486")
    b.wait_event("CALL_CLOSED")
    assert pbx.last_cdr(before_cdr)[3:] == ("busy", "486", 0.0)

    before_cdr = pbx.cdr_count()
    ring()
    assert b.command("accept")["ok"]
    a.wait_event("CALL_ESTABLISHED")
    b.wait_event("CALL_ESTABLISHED")
    time.sleep(1.0)
    assert b.command("hangup")["ok"]
    b.wait_event("CALL_CLOSED")
    a.wait_event("CALL_CLOSED")  # vpbx relayed 202's BYE
    direction, caller, callee, disposition, cause, billsec = pbx.last_cdr(before_cdr)
    assert (direction, caller, callee, disposition, cause) == (
        "internal",
        ALICE,
        BOB,
        "answered",
        "callee hung up",
    )
    assert 0.5 <= billsec <= 2.5, billsec
    m = pbx.metrics()
    assert m["vpbx_calls_active"] == 0 and m["vpbx_media_sessions"] == 0


def sdp_direction(message: str) -> str:
    m = re.search(r"^a=(sendrecv|sendonly|recvonly|inactive)$", message, re.M)
    return m.group(1) if m else "sendrecv"  # RFC 4566 §6: sendrecv is the default


def test_hold_and_resume_from_baresip_pass_through_vpbx(
    pbx: Pbx, tmp_path: Path, phones: list[Baresip]
) -> None:
    """201 puts the call on hold and resumes it (re-INVITEs a=sendonly, then a=sendrecv):
    vpbx re-offers each to 202 through the engine, returns 202's answer, and the media that
    stopped during the hold flows both ways again after it."""
    a, b = start_pair(pbx, tmp_path, phones)
    before_cdr = pbx.cdr_count()
    relayed = "vpbx_media_packets_relayed_total"

    def packets_in(seconds: float) -> float:
        time.sleep(0.5)  # let the media settle after the last change
        start = pbx.metrics()[relayed]
        time.sleep(seconds)
        return pbx.metrics()[relayed] - start

    assert a.command("dial", BOB)["ok"]
    a.wait_event("CALL_ESTABLISHED")
    b.wait_event("CALL_ESTABLISHED")
    talking = packets_in(2.0)
    assert a.command("hold")["ok"]
    held = packets_in(2.0)
    assert a.command("resume")["ok"]
    resumed = packets_in(2.0)
    assert a.command("hangup")["ok"]
    a.wait_event("CALL_CLOSED")
    b.wait_event("CALL_CLOSED")
    offers = [sdp_direction(m) for m in b.received("INVITE ")]
    answers = [
        sdp_direction(m) for m in a.received("SIP/2.0 200") if re.search(r"^CSeq: \d+ INVITE$", m, re.M)
    ]
    assert offers == ["sendrecv", "sendonly", "sendrecv"], offers
    assert answers == ["sendrecv", "recvonly", "sendrecv"], answers
    # 20 ms packets both ways: 200 in 2 s; baresip sends nothing while on hold (RTCP aside)
    assert talking >= 160 and resumed >= 160 and held <= 10, (talking, held, resumed)
    assert pbx.last_cdr(before_cdr)[3:5] == ("answered", "caller hung up")
    assert pbx.cdr_count() == before_cdr + 1  # re-INVITEs are not new calls


def test_blind_transfer_by_the_callee_connects_the_caller_to_the_target(
    pbx: Pbx, tmp_path: Path, phones: list[Baresip]
) -> None:
    """201 calls 202, 202 transfers the call to 203 (REFER): vpbx dials 203, 201 ends up
    hearing 203's 880 Hz where it heard 202's 660 Hz, and 202 is released."""
    a, b = start_pair(pbx, tmp_path, phones)
    c = Baresip(
        tmp_path / "carol",
        user=CAROL,
        password=CAROL_PW,
        registrar=pbx.sip,
        source=write_tone(tmp_path / "carol.wav", CAROL_TONE),
        answermode="auto",
    )
    phones.append(c)
    c.start()
    pbx.wait_metric("vpbx_registrations", 3, exact=True)
    before_cdr = pbx.cdr_count()
    assert a.command("dial", BOB)["ok"]
    a.wait_event("CALL_ESTABLISHED")
    b.wait_event("CALL_ESTABLISHED")
    time.sleep(1.5)
    assert b.command("transfer", CAROL)["ok"]
    c.wait_event("CALL_ESTABLISHED")
    assert b.wait_event("CALL_CLOSED")["param"] == "Call transfered"  # sic, baresip's words
    time.sleep(TALK_S)
    assert a.command("hangup")["ok"]
    a.wait_event("CALL_CLOSED")
    c.wait_event("CALL_CLOSED")
    samples, rate = read_wav(a.heard())  # one call for 201 from start to end
    assert tone_seconds(samples, rate, BOB_TONE) >= 1.0
    assert tone_seconds(samples, rate, CAROL_TONE) >= TALK_S - 1.0
    assert_heard(c, ALICE_TONE)
    cdr = pbx.last_cdr(before_cdr)
    assert cdr[1:5] == (ALICE, BOB, "answered", f"caller hung up (transferred to {CAROL})"), cdr


def test_registration_too_brief_is_raised_then_refreshed(
    pbx: Pbx, tmp_path: Path, phones: list[Baresip]
) -> None:
    """A phone asking 2 s gets 423 with Min-Expires (RFC 3261 §10.3 step 7), registers for
    MIN_EXPIRES seconds instead, and keeps its binding by refreshing before it runs out."""
    results = 'vpbx_sip_register_results_total{{result="{}"}}'
    before = pbx.metrics()
    phone = Baresip(
        tmp_path / "alice",
        user=ALICE,
        password=ALICE_PW,
        registrar=pbx.sip,
        source=write_tone(tmp_path / "alice.wav", ALICE_TONE),
        regint=2,
    )
    phones.append(phone)
    phone.start()
    pbx.wait_metric("vpbx_registrations", 1, exact=True)
    seen = []
    for _ in range(int(3 * MIN_EXPIRES / 0.25)):  # three registration lifetimes
        seen.append(pbx.metrics()["vpbx_registrations"])
        time.sleep(0.25)
    after = pbx.metrics()
    assert after[results.format("interval_too_brief")] - before[results.format("interval_too_brief")] == 1
    refreshed = after[results.format("accepted")] - before[results.format("accepted")]
    assert refreshed >= 3, refreshed
    assert min(seen) == 1, seen  # never expired in between
    (ok,) = phone.received("SIP/2.0 200")[:1]
    assert re.search(rf"^Contact: .*;expires={MIN_EXPIRES}$", ok, re.M), ok


def test_183_with_sdp_opens_the_media_path_before_the_answer(
    pbx: Pbx, tmp_path: Path, phones: list[Baresip]
) -> None:
    """202 answers 183 Session Progress with SDP before picking up: vpbx relays the 183 with
    its own media address, and the engine already carries RTP before the 200 OK (201 starts
    sending on the 183; baresip 1.0 in early mode itself sends nothing until it answers, so
    this is not a test of hearing an announcement)."""
    a, b = start_pair(pbx, tmp_path, phones, bob_answers="early")
    before_cdr = pbx.cdr_count()
    assert a.command("dial", BOB)["ok"]
    a.wait_event("CALL_PROGRESS")  # baresip's event for a 183 with SDP
    start = pbx.metrics()["vpbx_media_packets_relayed_total"]
    time.sleep(2.0)
    early = pbx.metrics()["vpbx_media_packets_relayed_total"] - start
    assert pbx.metrics()["vpbx_calls_active"] == 1
    assert b.command("accept")["ok"]
    a.wait_event("CALL_ESTABLISHED")
    time.sleep(TALK_S)
    assert a.command("hangup")["ok"]
    a.wait_event("CALL_CLOSED")
    b.wait_event("CALL_CLOSED")
    (progress,) = a.received("SIP/2.0 183")
    host, port = media_port(progress)
    assert host == "127.0.0.1" and PORT_MIN <= port <= PORT_MAX, (host, port)
    assert early >= 0.8 * 2.0 * 50, early  # 201's 20 ms packets, relayed to 202 before the answer
    assert_heard(b, ALICE_TONE)
    assert_heard(a, BOB_TONE)
    cdr = pbx.last_cdr(before_cdr)
    assert cdr[3:5] == ("answered", "caller hung up")
    assert abs(cdr[5] - TALK_S) <= 1.0, cdr  # billable from the answer, not from the 183


def test_unreachable_and_unknown_extensions_get_their_sip_codes(
    pbx: Pbx, tmp_path: Path, phones: list[Baresip]
) -> None:
    """201 dials 203 (an account, not registered now: 480) and 299 (no such extension: 404);
    baresip shows the code to its user and vpbx keeps the CDRs."""
    a, _b = start_pair(pbx, tmp_path, phones)
    for dest, code, disposition in ((CAROL, "480", "no-answer"), ("299", "404", "rejected")):
        before_cdr = pbx.cdr_count()
        assert a.command("dial", dest)["ok"]
        closed = a.wait_event("CALL_CLOSED")
        assert closed["param"].startswith(code), closed
        cdr = pbx.last_cdr(before_cdr)
        assert cdr[1:] == (ALICE, dest, disposition, code, 0.0), cdr


def test_no_media_ports_left_gives_503_not_488(tmp_path: Path, phones: list[Baresip]) -> None:
    """A vpbx whose port range holds one call (two legs, an RTP/RTCP pair each): while 201
    talks to 202, 202's call back to 201 cannot be anchored, and 202 hears 503 Service
    Unavailable (RFC 3261 §21.5.4: try later), not 488 (nothing is wrong with its offer)."""
    data_dir = tmp_path / "data"
    config = tmp_path / "vpbx.toml"
    config.write_text('[serve]\nport_min = 65400\nport_max = 65403\nmd5_only = true\nlog_level = "warning"\n')
    args = ["serve", "--config", str(config), "--data-dir", str(data_dir)]
    args += ["--sip-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"]
    args += ["--user", f"{ALICE}:{ALICE_PW}", "--user", f"{BOB}:{BOB_PW}"]
    small = VpbxServer(args, timeout=TIMEOUT)
    try:
        small.start()
    except RuntimeError as e:
        pytest.fail(str(e))
    try:
        pbx = Pbx(small, data_dir)
        a, b = start_pair(pbx, tmp_path, phones)
        assert a.command("dial", BOB)["ok"]
        a.wait_event("CALL_ESTABLISHED")
        b.wait_event("CALL_ESTABLISHED")
        assert b.command("dial", ALICE)["ok"]
        closed = b.wait_event("CALL_CLOSED")
        assert closed["param"].startswith("503"), closed
        assert a.command("hangup")["ok"]
        a.wait_event("CALL_CLOSED")
        assert pbx.last_cdr(0)[3:5] == ("answered", "caller hung up")
        with sqlite3.connect(data_dir / "vpbx.db") as db:
            refused = db.execute("select disposition, hangup_cause from cdrs where from_number = ?", (BOB,))
            assert refused.fetchall() == [("failed", "503")]
    finally:
        for phone in phones:
            phone.stop()
        small.stop()
