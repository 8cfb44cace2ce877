"""The abuse scenarios (issues 8 and 13): fuzzed CloudEvent requests against every service's app,
and hostile object names and malformed EDF files through ingest. Each returns one row of
RELIABILITY.md (see :mod:`reliability.scenarios` for the row's fields)."""

from __future__ import annotations


import base64
import json
import logging
import random
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from sunrise_common import names
from sunrise_common.service import Context
from sunrise_common.settings import Settings
from sunrise_cli import ops
from sunrise_cli.stack import wait_until
from reliability.census import census, completions, make_row
from reliability.harness import SERVICES, SITE, Harness, make_nights, stack_settings, subject_code


# --------------------------------------------------------------------------------------------
# 6. fuzzed CloudEvent requests against every service's app, in-process
# --------------------------------------------------------------------------------------------

# No 5xx is acceptable from parsing: an unknown night is a recorded 2xx too (ingest writes the
# night before it publishes its event), so nothing a request says may earn a retry.
ALLOWED_5XX_REASONS: set[str] = set()
# A request that takes this long to be answered (or dropped) holds a worker: a hang.
HANG_S = 10.0


def hostile_requests(settings: Settings, night: str) -> list[tuple[str, dict[str, str], bytes]]:
    """The cases issue 13 measured as 5xx or hangs, one request each: (label, headers, body)."""
    from sunrise_common.events import pubsub_event, storage_event

    raw = settings.bucket("raw")
    topic = settings.topic(names.TOPIC_SUNRISE_PREPPED)
    cases: list[tuple[str, dict[str, str], bytes]] = []
    deep = "[" * 990 + "]" * 990
    envelope = {"specversion": "1.0", "id": "x", "source": f"//storage.googleapis.com/projects/_/buckets/{raw}",
                "type": names.STORAGE_FINALIZED, "data": {"bucket": raw, "name": "psg/s/x/f.edf", "generation": "1"}}
    structured = {"content-type": "application/cloudevents+json"}
    cases.append(("structured: data nested 990 deep", structured,
                  json.dumps({**envelope, "data": "@"}).replace('"@"', deep).encode()))
    cases.append(("structured: envelope nested 5000 deep", structured, ("[" * 5000 + "]" * 5000).encode()))
    for attr, value in (("time", 12345), ("subject", ["x"]), ("subject", {"a": 1}), ("time", None), ("id", 7)):
        cases.append((f"structured: {attr}={value!r}", structured, json.dumps({**envelope, attr: value}).encode()))
    headers, _ = storage_event(raw, "psg/s/x/f.edf", 1, 1)
    cases.append(("binary: generation of 5000 digits", headers,
                  b'{"bucket": "%s", "name": "psg/s/x/f.edf", "generation": %s}' % (raw.encode(), b"7" * 5000)))
    cases.append(("binary: body nested 5000 deep", headers, ("[" * 5000 + "]" * 5000).encode()))
    for label, data in (("pubsub data: integer of 5000 digits", b'{"night_id": "%s", "generation": %s}' % (night.encode(), b"9" * 5000)),
                        ("pubsub data: nested 5000 deep", b"[" * 5000 + b"]" * 5000),
                        ("pubsub data: unknown night", json.dumps({"night_id": "s" + "a" * 12 + "-n" + "b" * 8}).encode()),
                        ("pubsub data: model_version is a path", json.dumps({"night_id": night, "model_version": "/tmp/x/evil"}).encode()),
                        ("pubsub data: model_version of 5000 chars", json.dumps({"night_id": night, "model_version": "m" * 5000}).encode()),
                        ("pubsub data: model_version is a list", json.dumps({"night_id": night, "model_version": ["a"]}).encode())):
        h_, b_ = pubsub_event(settings.project, topic, data)
        cases.append((label, h_, json.dumps(b_).encode()))
    h_, b_ = pubsub_event(settings.project, topic, b"{}")
    b_["message"]["attributes"] = {"kind": 5, "x": ["y"]}
    cases.append(("pubsub: non-string attributes", h_, json.dumps(b_).encode()))
    return cases


def abuse_events(work: Path, n: int = 100) -> dict[str, Any]:
    """Hypothesis-fuzzed requests (headers, content types, bodies, valid envelopes with random
    data, huge bodies, unicode) against each service's real app: never a 5xx from parsing, never
    an exception escaping. ``n`` is the number of examples per service."""
    from importlib import import_module

    from fastapi.testclient import TestClient

    from sunrise_common.service import create_app

    target = _fuzz_target(Path(work))
    request = _fuzzed_requests(target)
    seen = _Answers()
    for service in SERVICES:
        handler = import_module(f"{service}.handler").handle
        client = TestClient(create_app(service, handler, settings=target.settings))  # exceptions escaping re-raise here
        _fuzz_service(service, client, request, n, target, seen)
    live = _abuse_live_stack(Path(work) / "live", target.known_night)
    return _abuse_events_row(seen, live)


@dataclass(frozen=True)
class _FuzzTarget:
    """A stack with one real night ingested, so that well-formed events about it reach deep into
    the handlers."""

    settings: Settings
    known_night: str
    known_generations: list[str]


@dataclass
class _Answers:
    """What the fuzzed services answered, over every service."""

    tally: Counter = field(default_factory=Counter)  # status code -> count, and "<service>_s" -> seconds
    reasons: Counter = field(default_factory=Counter)
    branches: Counter = field(default_factory=Counter)  # which request generator made the request
    samples: list[str] = field(default_factory=list)
    bad: list[str] = field(default_factory=list)  # 5xx from parsing
    per_service: dict[str, int] = field(default_factory=dict)
    explicit: dict[str, int] = field(default_factory=dict)  # issue 13's cases, by service and label


def _fuzz_target(work: Path) -> _FuzzTarget:
    """A fresh embedded stack under ``work`` with one synthetic night uploaded and ingested."""
    from fastapi.testclient import TestClient

    from sunrise_common.service import create_app

    if work.exists():
        shutil.rmtree(work)
    settings = stack_settings(work / "data")
    ctx = Context.from_settings(settings)
    for logical in names.BUCKETS:
        ctx.storage.ensure_bucket(settings.bucket(logical))
    raw = settings.bucket("raw")
    # One real night, ingested, so that well-formed events about it reach deep into the handlers.
    from ingest.handler import handle as ingest_handle
    from sunrise_common.events import storage_event

    night = make_nights(work / "inputs", 1, seed0=8000)[0]
    ingest_client = TestClient(create_app("ingest", ingest_handle, settings=settings))
    for path, kind in ((night.sunrise, "sunrise"), (night.psg, "psg"), (night.labels[0], "labels")):
        info = ops.upload(ctx, Path(path), kind=kind, site=SITE, subject=subject_code(800))
        headers, body = storage_event(raw, info.name, info.generation, info.size)
        ingest_client.post("/", headers=headers, content=json.dumps(body).encode())
    known_night, known_doc = next(iter(ctx.state.list("nights")))
    known_generations = [str(r["generation"]) for k, r in known_doc["recordings"].items() if k != "labels"]
    return _FuzzTarget(settings, known_night, known_generations)


def _mostly(good: Any, bad: Any, p: int = 8) -> Any:
    """``good`` p times in 10, else ``bad``: fuzzed requests reach the handlers often."""
    from hypothesis import strategies as st

    return st.sampled_from(range(10)).flatmap(lambda i: good if i < p else bad)


def _wire_values(raw: str) -> tuple[Any, Any, Any]:
    """Strategies for header names, header values and any JSON value."""
    from hypothesis import strategies as st

    token = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=20)
    header_name = st.sampled_from(["ce-specversion", "ce-id", "ce-source", "ce-type", "ce-subject", "ce-time",
                                   "ce-datacontenttype", "ce-dataschema", "content-type", "ce-bucket", "ce-",
                                   "content-length", "transfer-encoding", "x-cloud-trace-context", "traceparent"]) \
        | token.map(lambda t: "ce-" + t) | token
    header_value = st.one_of(
        st.sampled_from(["1.0", "0.3", "2.0", "", "application/json", "application/cloudevents+json",
                         "application/cloudevents-batch+json", "text/plain; charset=utf-8", "application/json; charset=latin-1",
                         "multipart/form-data; boundary=x", names.STORAGE_FINALIZED, names.PUBSUB_PUBLISHED,
                         f"//storage.googleapis.com/projects/_/buckets/{raw}", "-1", "0" * 400, "abc/def;o=1",
                         "00-" + "a" * 32 + "-" + "b" * 16 + "-01"]),
        st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=300),
        st.text(st.characters(min_codepoint=128, max_codepoint=0x10FFFF, exclude_categories=("Cs",)), max_size=50),
    )
    json_value = st.recursive(
        st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
        | st.floats(allow_nan=False) | st.text(max_size=50),
        lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=6),
        max_leaves=20,
    )

    return header_name, header_value, json_value


def _event_data(target: _FuzzTarget, json_value: Any) -> tuple[Any, Any]:
    """Strategies for a storage event's data and a Pub/Sub push body, mostly well formed and
    mostly about the known night."""
    from hypothesis import strategies as st

    raw = target.settings.bucket("raw")
    known_night, known_generations = target.known_night, target.known_generations
    mostly = _mostly
    night_like = mostly(
        st.sampled_from([known_night]) | st.from_regex(r"\As[a-z2-7]{12}-n[a-z2-7]{8}\Z"),
        st.sampled_from(["s" + "a" * 12 + "-n1", "s" + "2" * 12 + "-n99999999", "../x", "", None, 7]) | json_value,
        p=6,
    )
    storage_data = st.fixed_dictionaries(
        {"bucket": mostly(st.just(raw), st.sampled_from(["other-bucket", "", "a" * 300]) | st.text(max_size=30)),
         "name": mostly(st.sampled_from(["psg/s/x/f.edf", "../../etc/passwd", "sunrise/site/subj/\x00.edf", "a" * 1024,
                                         "labels/site/subj/Sleep profile.txt", "/abs/olute/x/y", "psg/site/subj/ü🛌.edf"])
                        | st.builds(lambda k, a, b, c: f"{k}/{a}/{b}/{c}", st.sampled_from(names.UPLOAD_KINDS),
                                    st.text(max_size=10), st.text(max_size=10), st.text(max_size=30)),
                        st.text(max_size=100)),
         "generation": mostly(st.integers(min_value=0, max_value=2**63).map(str),
                              st.integers(min_value=-5, max_value=2**80).map(str) | json_value),
         "size": mostly(st.integers(min_value=0, max_value=2**40).map(str), json_value)},
        optional={"contentType": json_value, "metageneration": json_value, "timeCreated": json_value, "extra": json_value},
    )
    message_payload = st.fixed_dictionaries({"night_id": night_like},
                                            optional={"kind": mostly(st.sampled_from(["sunrise", "psg", "rerun"]), json_value),
                                                      "object": json_value,
                                                      "generation": mostly(st.sampled_from(known_generations), json_value),
                                                      "prefix": json_value, "input_key": json_value,
                                                      "model_version": json_value})
    pubsub_data = mostly(st.fixed_dictionaries({
        "message": st.fixed_dictionaries({"data": mostly(
            message_payload.map(lambda p: base64.b64encode(json.dumps(p).encode()).decode()),
            st.binary(max_size=100).map(lambda b: base64.b64encode(b).decode()) | st.text(max_size=40) | json_value)},
            optional={"attributes": mostly(st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=3),
                                           json_value),
                      "messageId": mostly(st.text(max_size=20), json_value),
                      "publishTime": mostly(st.text(max_size=30), json_value),
                      "deliveryAttempt": mostly(st.integers(0, 10**6), json_value)}),
    }, optional={"subscription": mostly(st.text(max_size=60), json_value)}), json_value)

    return storage_data, pubsub_data


def _fuzzed_requests(target: _FuzzTarget) -> Any:
    """One strategy for a whole request (branch label, raw headers, body): random requests, valid
    binary-mode events, structured-mode envelopes and bodies around the 1 MiB limit."""
    from hypothesis import strategies as st

    settings = target.settings
    raw = settings.bucket("raw")
    topics = [settings.topic(t) for t in names.TOPICS]
    header_name, header_value, json_value = _wire_values(raw)
    storage_data, pubsub_data = _event_data(target, json_value)
    mostly = _mostly

    @st.composite
    def valid_binary(draw: Any) -> tuple[str, list[tuple[bytes, bytes]], bytes]:
        kind = draw(st.sampled_from(["storage", "pubsub"]))
        ce_type = names.STORAGE_FINALIZED if kind == "storage" else names.PUBSUB_PUBLISHED
        source = (f"//storage.googleapis.com/projects/_/buckets/{raw}" if kind == "storage"
                  else f"//pubsub.googleapis.com/projects/{settings.project}/topics/{draw(st.sampled_from(topics))}")
        data = draw(storage_data if kind == "storage" else pubsub_data)
        headers = {"content-type": "application/json", "ce-specversion": "1.0", "ce-id": draw(st.text(min_size=1, max_size=40).filter(str.isprintable)),
                   "ce-source": source, "ce-type": ce_type}
        for k in draw(mostly(st.just([]), st.lists(st.sampled_from(list(headers)), max_size=2, unique=True))):
            headers[k] = draw(header_value)
        body = json.dumps(data).encode()
        return "valid_binary", _encode_headers(headers), body

    @st.composite
    def structured(draw: Any) -> tuple[str, list[tuple[bytes, bytes]], bytes]:
        kind = draw(st.sampled_from(["storage", "pubsub"]))
        envelope = {"specversion": draw(mostly(st.just("1.0"), st.sampled_from(["0.3", None, 1, ""]) | json_value)),
                    "id": draw(mostly(st.text(min_size=1, max_size=30), json_value)),
                    "source": draw(mostly(st.sampled_from([f"//storage.googleapis.com/projects/_/buckets/{raw}"]
                                                          + [f"//pubsub.googleapis.com/projects/p/topics/{t}" for t in topics]),
                                          json_value)),
                    "type": draw(mostly(st.just(names.STORAGE_FINALIZED if kind == "storage" else names.PUBSUB_PUBLISHED),
                                        st.sampled_from([names.STORAGE_FINALIZED, names.PUBSUB_PUBLISHED]) | json_value)),
                    "data": draw(storage_data if kind == "storage" else pubsub_data)}
        for k in draw(mostly(st.just([]), st.lists(st.sampled_from(["specversion", "id", "source", "type", "data"]),
                                                    max_size=2, unique=True))):
            envelope.pop(k)
        if draw(mostly(st.just(False), st.just(True))):
            envelope["data_base64"] = draw(st.binary(max_size=50).map(lambda b: base64.b64encode(b).decode()) | json_value)
        ctype = draw(st.sampled_from(["application/cloudevents+json", "application/cloudevents+json; charset=utf-8",
                                      "application/cloudevents-batch+json"]))
        return "structured", _encode_headers({"content-type": ctype}), json.dumps(envelope).encode()

    @st.composite
    def random_request(draw: Any) -> tuple[str, list[tuple[bytes, bytes]], bytes]:
        headers = draw(st.dictionaries(header_name, header_value, max_size=8))
        body = draw(st.one_of(
            st.binary(max_size=3000),
            json_value.map(lambda v: json.dumps(v).encode()),
            st.text(max_size=500).map(lambda t: t.encode("utf-8")),
            st.text(max_size=100).map(lambda t: t.encode("utf-16")),
            st.sampled_from([b"{", b"[]", b"null", b'"x"', b"\xff\xfe", b"{\"data\": 1e999}", b"1" * 5000]),
        ))
        return "random", _encode_headers(headers), body

    @st.composite
    def huge(draw: Any) -> tuple[str, list[tuple[bytes, bytes]], bytes]:
        size = draw(st.sampled_from([(1 << 20) - 10, (1 << 20) + 1, 3 << 20]))
        headers = {"content-type": "application/json", "ce-specversion": "1.0", "ce-id": "h", "ce-type": names.STORAGE_FINALIZED,
                   "ce-source": f"//storage.googleapis.com/projects/_/buckets/{raw}"}
        name = "psg/site/subj/" + "x" * 200
        body = json.dumps({"bucket": raw, "name": name, "generation": "1", "pad": "a" * size}).encode()
        return "huge", _encode_headers(headers), body

    return st.one_of(random_request(), valid_binary(), structured(), huge())


def _fuzz_service(service: str, client: Any, request: Any, n: int, target: _FuzzTarget, seen: _Answers) -> None:
    """``n`` fuzzed requests, then issue 13's hostile cases, against one service's app."""
    from hypothesis import HealthCheck, given, settings as hsettings

    settings, known_night = target.settings, target.known_night
    tally, reasons, branches, samples, bad, explicit = (seen.tally, seen.reasons, seen.branches, seen.samples,
                                                        seen.bad, seen.explicit)
    count = {"n": 0}

    @hsettings(max_examples=n, deadline=None, database=None, derandomize=True,
               suppress_health_check=list(HealthCheck))
    @given(request)
    def check(req: tuple[str, list[tuple[bytes, bytes]], bytes]) -> None:
        branch, headers, body = req
        branches[branch] += 1
        count["n"] += 1
        resp = client.post("/", headers=headers, content=body)
        tally[resp.status_code] += 1
        answer = _reason(resp) if resp.headers.get("content-type") == "application/json" else None
        if branch == "structured" and resp.status_code == 400 and len(samples) < 8:
            samples.append(f"{_json(resp).get('detail')} <- {body[:150]!r}")
        reasons[f"{branch}: {resp.status_code} {answer or _json(resp).get('error') or _json(resp).get('status')}"] += 1
        if resp.status_code >= 500:
            reason = _reason(resp)
            if reason not in ALLOWED_5XX_REASONS:
                bad.append(f"{service}: {resp.status_code} {resp.text[:300]} for headers={headers!r:.300} body={body[:200]!r}")

    t0 = time.monotonic()
    quiet = logging.getLogger("sunrise_common")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # thousands of "rejected a malformed request" lines otherwise
    try:
        check()
        for label, headers, body in hostile_requests(settings, known_night):  # the cases of issue 13
            count["n"] += 1
            branches["issue_13"] += 1
            resp = client.post("/", headers=headers, content=body)
            tally[resp.status_code] += 1
            explicit[f"{service} {label}"] = resp.status_code
            if resp.status_code >= 500 and _reason(resp) not in ALLOWED_5XX_REASONS:
                bad.append(f"{service}: {resp.status_code} {resp.text[:300]} for {label}")
    finally:
        quiet.setLevel(level)
    seen.per_service[service] = count["n"]
    tally[f"{service}_s"] = round(time.monotonic() - t0, 1)


def _abuse_events_row(seen: _Answers, live: dict[str, Any]) -> dict[str, Any]:
    """The row of RELIABILITY.md: in-process and over-HTTP answers, 5xx from parsing, hangs."""
    tally, reasons, branches, samples, bad, per_service, explicit = (
        seen.tally, seen.reasons, seen.branches, seen.samples, seen.bad, seen.per_service, seen.explicit)
    bad += live["bad"]
    total = sum(per_service.values()) + live["requests"]
    notes = (f"{total} fuzzed and hostile requests ({', '.join(f'{k} {v}' for k, v in per_service.items())} in-process, "
             f"incl. {branches['issue_13']} of issue 13's cases; {live['requests']} over HTTP to the running stack: "
             f"slow headers, slow body, 20 MB bodies, /docs /openapi.json /redoc, issue 13's cases); answers: "
             + ", ".join(f"{k}: {v}" for k, v in sorted(tally.items(), key=str) if isinstance(k, int))
             + f"; over HTTP: {', '.join(f'{k}: {v}' for k, v in sorted(live['statuses'].items(), key=str))}"
             + f"; 5xx from parsing: {len(bad)}; hangs >= {HANG_S:g} s: {live['hangs']}; exceptions escaping: 0")
    return make_row("abuse_events", None, events=total, files=0, lost=0, duplicated=0, recover_s=None, notes=notes,
                    bad=bad[:20], statuses={str(k): v for k, v in tally.items()}, requests=total,
                    reasons=dict(reasons.most_common()), branches=dict(branches), samples=samples,
                    explicit=explicit, live=live, hangs=live["hangs"])


def _abuse_live_stack(work: Path, night: str) -> dict[str, Any]:
    """Hostile requests over real HTTP to the four running services (sunrise_devstack.server):
    slow clients must be dropped, big bodies refused while reading, no API browser served, and
    issue 13's parsing cases answered without a 5xx. Every request is timed: >= HANG_S is a hang."""
    import socket
    from urllib.parse import urlparse

    import httpx

    h = Harness.create(work)
    statuses: Counter = Counter()
    bad: list[str] = []
    slow: list[str] = []
    answers: dict[str, int | str] = {}
    requests = 0
    with h, httpx.Client(timeout=HANG_S * 3) as client:
        cases = hostile_requests(h.settings, night)
        for service in SERVICES:
            url = h.settings.service_url(service)
            port = urlparse(url).port

            def timed(label: str, send: Callable[[], Any]) -> None:
                nonlocal requests
                requests += 1
                t0 = time.monotonic()
                try:
                    answer = send()
                except (httpx.HTTPError, OSError) as exc:
                    answer = f"no answer: {type(exc).__name__}"
                took = time.monotonic() - t0
                status = answer if isinstance(answer, (int, str)) else answer.status_code
                statuses[status] += 1
                answers[f"{service} {label}"] = status
                if took >= HANG_S:
                    slow.append(f"{service} {label}: {took:.1f} s")
                if isinstance(status, int) and status >= 500:
                    bad.append(f"{service}: {status} over HTTP for {label}")

            for label, headers, body in cases:
                timed(label, lambda: client.post(url, headers=headers, content=body))
            for path in ("docs", "openapi.json", "redoc"):
                timed(f"GET /{path}", lambda: client.get(url + path))
            headers, _ = storage_event_headers(h.settings)

            def twenty_mb() -> Iterable[bytes]:
                for _ in range(320):
                    yield b" " * 65536

            timed("20 MB chunked body", lambda: client.post(url, headers=headers, content=twenty_mb()))

            def slow_client(head: bytes) -> int | str:
                # Dropped by the server, or answered: either way it must not be held.
                with socket.create_connection(("127.0.0.1", port), timeout=HANG_S * 3) as sock:
                    sock.sendall(head)
                    data = sock.recv(65536)
                    return "dropped" if not data else int(data.split(b" ", 2)[1])

            declared = "".join(f"{k}: {v}\r\n" for k, v in headers.items()).encode()
            timed("20 MB declared body", lambda: slow_client(  # refused on the header, before the body
                b"POST / HTTP/1.1\r\nHost: x\r\n" + declared + b"content-length: %d\r\n\r\n" % (20 << 20) + b" " * 65536))

            timed("headers never finished", lambda: slow_client(b"POST / HTTP/1.1\r\nHost: x\r\nce-id: 1\r\n"))
            timed("body never finished", lambda: slow_client(
                b"POST / HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"))
    return {"requests": requests, "statuses": {str(k): v for k, v in statuses.items()}, "bad": bad,
            "hangs": len(slow), "slow": slow, "answers": answers}


def storage_event_headers(settings: Settings) -> tuple[dict[str, str], dict[str, Any]]:
    from sunrise_common.events import storage_event

    return storage_event(settings.bucket("raw"), "psg/s/x/f.edf", 1, 1)


def _encode_headers(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    out = []
    for k, v in headers.items():
        out.append((k.encode("latin-1", "replace"), v.encode("utf-8")))
    return out


def _json(resp: Any) -> dict:
    try:
        value = resp.json()
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _reason(resp: Any) -> str | None:
    return _json(resp).get("reason")


# --------------------------------------------------------------------------------------------
# 7. hostile object names and malformed EDF files through ingest
# --------------------------------------------------------------------------------------------

HOSTILE_NAMES: list[tuple[str, str]] = [
    ("../../etc/passwd", "unsafe_name"),
    ("psg/site/../../../etc/passwd", "unsafe_name"),
    ("psg/./subj/f.edf", "unsafe_name"),
    ("/psg/site/subj/f.edf", "unsafe_name"),
    ("/etc/passwd", "unsafe_name"),
    ("psg\\site\\subj\\f.edf", "unsafe_name"),
    ("psg/site/subj/f\x00.edf", "unsafe_name"),
    ("psg/site/subj/\x00\x00\x00", "unsafe_name"),
    ("psg/site/subj/f\n.edf", "unsafe_name"),
    ("psg/site/subj/f\r\nX-Injected: 1.edf", "unsafe_name"),
    ("psg/site/subj/\x1b[31mred.edf", "unsafe_name"),
    ("psg/site/subj/tab\t.edf", "unsafe_name"),
    ("psg/site/subj", "bad_layout"),
    ("psg/site/subj/a/b.edf", "bad_layout"),
    ("psg//subj/f.edf", "bad_layout"),
    ("unknown/site/subj/f.edf", "unknown_kind"),
    ("PSG/site/subj/f.edf", "unknown_kind"),
    ("psg/sïte/subj/f.edf", "bad_site"),
    ("psg/site/sübj/f.edf", "bad_subject"),
    ("psg/-site/subj/f.edf", "bad_site"),
    ("psg/" + "s" * 65 + "/subj/f.edf", "bad_site"),
    ("psg/site/subj/" + "é" * 200 + ".edf", "bad_file_name"),
    ("psg/site/subj/" + "🛌" * 70 + ".edf", "bad_file_name"),
    ("psg/site/subj/ünïcødé-🛌-\u202egnp.edf", "object_gone"),  # a legal name whose object does not exist
    ("psg/site/subj/" + "a" * 10_000, "invalid_data"),  # beyond GCS's 1024-byte cap: not an event Eventarc can send
    ("psg/" + "s" * 10_000 + "/subj/f.edf", "invalid_data"),
]


def abuse_files(work: Path, n: int = 1, *, hours: float = 0.5) -> dict[str, Any]:
    """Hostile object names and the malformed EDF set through the ingest service: each rejected
    with its reason and a 2xx, fast; good nights processed alongside still complete."""
    import httpx

    from tests.edf.malformed import MALFORMED

    work = Path(work)
    nights = make_nights(work / "inputs", n, hours=hours, seed0=6000)
    h = Harness.create(work / "run")
    raw = h.settings.bucket("raw")
    good: list[str] = []
    for i, night in enumerate(nights):
        subject = subject_code(400 + i)
        good += [h.upload(night.sunrise, "sunrise", subject, name=f"nuit été 🛌 {i}.edf"),
                 h.upload(night.psg, "psg", subject, name=f"psg – ünïcødé {i}.edf"),
                 h.upload(night.labels[0], "labels", subject)]
    expected: dict[str, str] = {}
    malformed_names = []
    for i, (name, data, reason) in enumerate(MALFORMED):
        tmp = work / "malformed" / f"{name}.edf"
        tmp.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        kind = "sunrise" if i % 2 else "psg"
        raw_name = h.upload(tmp, kind, subject_code(500 + i))
        expected[raw_name] = reason
        malformed_names.append(raw_name)
    timings: list[tuple[float, str]] = []
    wrong: list[str] = []
    with h:
        jobs = []
        for raw_name in malformed_names:
            info = h.ctx.storage.stat(raw, raw_name)
            headers, body = ops.object_event(h.settings, raw_name, info)
            jobs.append((raw_name, expected[raw_name], headers, body))
        for name, reason in HOSTILE_NAMES:
            from sunrise_common.events import storage_event

            headers, body = storage_event(raw, name, 1, 10)
            jobs.append((name, reason, headers, json.dumps(body).encode()))
        random.Random(8).shuffle(jobs)
        t0 = time.monotonic()
        h.announce(good)  # the good nights travel through the router meanwhile
        with httpx.Client(timeout=60) as client:
            for name, reason, headers, body in jobs:
                start = time.perf_counter()
                resp = client.post(h.settings.ingest_url, headers=headers, content=body)
                timings.append((time.perf_counter() - start, name[:60]))
                h.direct_posts += 1
                got = _reason(resp) if resp.status_code == 200 else (resp.json().get("error") if resp.status_code == 400 else None)
                want_status = 400 if reason == "invalid_data" else 200
                if resp.status_code != want_status or got != reason:
                    wrong.append(f"{name[:80]!r}: want {want_status} {reason}, got {resp.status_code} {resp.text[:200]}")
        wait_until(lambda: h.settled(n), 120 + 20 * n, "the good nights")
        elapsed = time.monotonic() - t0
    recorded = census(h, expected)
    c = completions(h)
    slowest = max(timings)
    notes = (f"{len(MALFORMED)} malformed EDF files + {len(HOSTILE_NAMES)} hostile names (../, absolute, NUL and control "
             f"characters, 10 kB, unicode) posted to ingest beside {n} good night(s) with unicode file names: "
             f"{len(jobs) - len(wrong)}/{len(jobs)} rejected with the expected reason (2xx; 400 only for names over "
             f"GCS's 1024-byte limit), slowest {slowest[0] * 1000:.0f} ms; {recorded['rejected']} rejections recorded; "
             f"good nights done")
    return make_row("abuse_files", h, events=h.events(), files=len(h.inputs) + len(HOSTILE_NAMES),
                    lost=recorded["lost"], duplicated=c["duplicated"], recover_s=elapsed, notes=notes, wrong=wrong,
                    max_seconds_per_file=round(slowest[0], 4), slowest=slowest[1], rejected_recorded=recorded["rejected"],
                    malformed=len(MALFORMED))
