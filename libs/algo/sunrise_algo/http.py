"""The algorithm interface over HTTP: a team's algorithm that already runs as its own service.

Protocol (``INTERFACE_VERSION`` 1, JSON):

* ``GET /v1/describe`` -> ``{"name", "version", "interface_version", "default_model", "models"}``.
* ``POST /v1/run`` with header ``Idempotency-Key`` (one per night, input and algorithm version) and
  body ``{"interface_version", "night_id", "model_version", "reference": {"meta_url", "signals_url"}}``:
  the night is not sent, a reference to it is — signed URLs of the prepared night's ``meta.json`` and
  ``prepped.npz`` (V4 signed URLs in Cloud Storage; ``file://`` paths on one machine) — and the
  service answers ``200`` with an :class:`~sunrise_algo.interface.AlgorithmOutput`.
  ``422`` with ``{"error": {"reason", "permanent": true}}`` is the algorithm's permanent refusal of
  that night (recorded as the night's reason, not retried); any ``5xx``, a timeout or a refused
  connection is transient: retried here with backoff, then handed to the platform's retries.

:class:`ExternalAlgorithm` is the client (a plug-in like any other for the stage);
:func:`create_app` serves any plug-in over the protocol (how the conformance tests and a team's
container can expose a Python plug-in). httpx does the HTTP; only the protocol is ours.
"""

from __future__ import annotations

import hashlib
import io
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import httpx
from fastapi import FastAPI, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sunrise_algo.interface import (INTERFACE_VERSION, NAME_PATTERN, Algorithm, AlgorithmError, AlgorithmOutput,
                                    PreparedNight)

MAX_RESPONSE_BYTES = 64 << 20  # a night's outputs are a few MB; more is a broken service
MAX_NIGHT_BYTES = 512 << 20  # what the server side fetches for one reference


class Reference(BaseModel):
    model_config = ConfigDict(extra="forbid")
    meta_url: str = Field(max_length=8192)
    signals_url: str = Field(max_length=8192)


class RunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    interface_version: str = INTERFACE_VERSION
    night_id: str = Field(max_length=128)
    model_version: str = Field(max_length=64)
    reference: Reference


def idempotency_key(night_id: str, algo_version: str, meta_url: str) -> str:
    """One key per night, algorithm version and prepared input (the reference's object, not its signature)."""
    obj = meta_url.split("?", 1)[0]
    return hashlib.sha256(f"{night_id}\n{algo_version}\n{obj}".encode()).hexdigest()[:32]


class ExternalAlgorithm(Algorithm):
    """A plug-in whose ``run`` is a call to an algorithm service (the protocol above).

    ``timeout_s`` bounds each call; ``retries`` transient failures are retried with exponential
    backoff from ``backoff_s`` before a transient :class:`AlgorithmError` (the stage answers 5xx and
    the platform retries later, with the same idempotency key)."""

    name = "external"
    version = "0"

    def __init__(self, url: str, *, timeout_s: float = 120.0, retries: int = 3, backoff_s: float = 0.5,
                 headers: dict[str, str] | None = None, auth: Callable[[], dict[str, str]] | None = None) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.headers = dict(headers or {})
        # Called before each request: fresh credentials (a Cloud Run service wants an ID token
        # whose audience is its URL; tokens expire within the hour, the adapter lives longer).
        self.auth = auth
        described = self._call("GET", "/v1/describe", None, {})
        name = described.get("name")
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise AlgorithmError("bad_describe", "the service's name is not a plug-in name", permanent=True)
        if described.get("interface_version") != INTERFACE_VERSION:
            raise AlgorithmError("interface_version", f"the service speaks interface "
                                 f"{str(described.get('interface_version'))[:8]!r}, the pipeline {INTERFACE_VERSION}",
                                 permanent=True)
        self.name = name
        self.version = str(described.get("version", "0"))[:32]
        self.default_model = str(described.get("default_model", "default"))[:64]
        self._models = {str(m)[:64] for m in described.get("models", [self.default_model])}

    def packaged_models(self) -> set[str]:
        return set(self._models)

    def run(self, night: PreparedNight, *, model_version: str, model_dir: Path | None = None) -> AlgorithmOutput:
        if not night.reference:
            raise AlgorithmError("no_reference", "an external algorithm needs signed references to the night",
                                 permanent=True)
        request = RunRequest(night_id=night.night_id, model_version=model_version,
                             reference=Reference(**night.reference))
        key = idempotency_key(night.night_id, self.algo_version(model_version), request.reference.meta_url)
        body = self._call("POST", "/v1/run", request.model_dump(), {"Idempotency-Key": key})
        try:
            return AlgorithmOutput.model_validate(body)
        except ValidationError as exc:
            where = "; ".join(".".join(map(str, e["loc"])) + f": {e['type']}" for e in exc.errors()[:5])
            raise AlgorithmError("bad_output", f"the service's output does not match the interface ({where})",
                                 permanent=True) from None

    def _call(self, method: str, path: str, body: dict | None, headers: dict[str, str]) -> Any:
        """One protocol call with retries. Permanent only when the service says so (a 4xx whose
        body is ``{"error": {"permanent": true}}``, or a 200 that is not JSON); everything else —
        5xx, 429, 401/403 while an invoker grant propagates, 404 while a service deploys, a
        timeout, a refused connection — is retried here, then handed on as transient."""
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                with httpx.Client(timeout=self.timeout_s) as client:
                    extra = self.auth() if self.auth is not None else {}
                    with client.stream(method, self.url + path, json=body,
                                       headers={**self.headers, **extra, **headers}) as r:
                        data = _read_bounded(r, time.monotonic() + self.timeout_s)
            except httpx.TimeoutException:
                last = f"no answer within {self.timeout_s:g} s"
                continue
            except httpx.TransportError as exc:
                last = f"connection failed ({type(exc).__name__})"
                continue
            except _Overdue:
                last = f"the answer took longer than {self.timeout_s:g} s"
                continue
            if r.status_code == 200:
                return _json(data)
            error = _error_of(data)
            if 400 <= r.status_code < 500 and error.get("permanent") is True:
                reason = error.get("reason")
                reason = reason if isinstance(reason, str) and NAME_PATTERN.match(reason) else f"http_{r.status_code}"
                raise AlgorithmError(reason, f"the algorithm service refused the night (HTTP {r.status_code}, "
                                     f"{reason})", permanent=True)
            last = f"HTTP {r.status_code}"
        raise AlgorithmError("unavailable", f"{method} {path}: {last} after {self.retries + 1} attempts",
                             permanent=False)


class _Overdue(Exception):
    """The answer is still arriving after the call's deadline (a trickling server)."""


def _read_bounded(response: httpx.Response, deadline: float) -> bytes:
    chunks, size = [], 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise AlgorithmError("bad_output", f"the service answered more than {MAX_RESPONSE_BYTES} bytes",
                                 permanent=True)
        if time.monotonic() > deadline:
            raise _Overdue()
        chunks.append(chunk)
    return b"".join(chunks)


def _error_of(data: bytes) -> dict:
    """The ``error`` object of a refusal's body; empty when the body is not the protocol's."""
    import json

    try:
        payload = json.loads(data) if data else {}
    except ValueError:
        return {}
    error = payload.get("error") if isinstance(payload, dict) else None
    return error if isinstance(error, dict) else {}


def _json(data: bytes) -> Any:
    import json

    try:
        return json.loads(data) if data else {}
    except ValueError:
        raise AlgorithmError("bad_output", f"the service's answer is not JSON ({len(data)} bytes)",
                             permanent=True) from None


def fetch(url: str, *, max_bytes: int = MAX_NIGHT_BYTES) -> bytes:
    """The bytes a reference names: ``file://`` (same machine) or ``http(s)://`` (a signed URL)."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        path = Path(unquote(parsed.path))
        if path.stat().st_size > max_bytes:
            raise AlgorithmError("night_too_large", f"the reference holds more than {max_bytes} bytes", permanent=True)
        return path.read_bytes()
    if parsed.scheme in ("http", "https"):
        with httpx.Client(timeout=60.0) as client, client.stream("GET", url) as r:
            if r.status_code != 200:
                raise AlgorithmError("reference_unreadable", f"GET of the reference answered HTTP {r.status_code}",
                                     permanent=r.status_code in (400, 403, 404))
            data = bytearray()
            for chunk in r.iter_bytes():
                data += chunk
                if len(data) > max_bytes:
                    raise AlgorithmError("night_too_large", f"the reference holds more than {max_bytes} bytes",
                                         permanent=True)
            return bytes(data)
    raise AlgorithmError("reference_scheme", "a reference is a file:// or http(s):// URL", permanent=True)


def create_app(algorithm: Algorithm, *, model_dir: Path | None = None, cache_size: int = 256) -> FastAPI:
    """Serve ``algorithm`` over the protocol. A repeated ``Idempotency-Key`` gets the first answer."""
    app = FastAPI(title=f"sunrise algorithm {algorithm.name}")
    answers: OrderedDict[str, dict] = OrderedDict()

    @app.get("/v1/describe")
    def describe() -> dict:
        """What this service runs."""
        return {"name": algorithm.name, "version": algorithm.version, "interface_version": INTERFACE_VERSION,
                "default_model": algorithm.default_model, "models": sorted(algorithm.packaged_models())}

    @app.post("/v1/run")
    async def run(request: Request, idempotency_key: str | None = Header(None, max_length=64)) -> JSONResponse:
        """Score the referenced night."""
        if idempotency_key and idempotency_key in answers:
            return JSONResponse(answers[idempotency_key])
        try:
            req = RunRequest.model_validate_json(await request.body())
        except ValidationError as exc:
            return _refusal("bad_request", 422, f"{exc.error_count()} invalid field(s)")
        try:
            night = PreparedNight.from_files(req.night_id, fetch(req.reference.meta_url),
                                             io.BytesIO(fetch(req.reference.signals_url)))
            output = algorithm.run(night, model_version=req.model_version, model_dir=model_dir)
        except AlgorithmError as exc:
            if exc.permanent:
                return _refusal(exc.reason, 422, str(exc))
            return _refusal(exc.reason, 503, str(exc), permanent=False)
        answer = output.model_dump(mode="json")
        if idempotency_key:
            answers[idempotency_key] = answer
            while len(answers) > cache_size:
                answers.popitem(last=False)
        return JSONResponse(answer)

    return app


def _refusal(reason: str, status: int, message: str, *, permanent: bool = True) -> JSONResponse:
    return JSONResponse({"error": {"reason": reason, "permanent": permanent, "message": message}}, status_code=status)


def google_id_token(audience: str) -> Callable[[], dict[str, str]]:
    """An ``auth`` for :class:`ExternalAlgorithm` calling a private Cloud Run service: the runtime
    identity's ID token for ``audience`` (the service URL), from the metadata server."""

    def headers() -> dict[str, str]:
        import google.auth.transport.requests
        import google.oauth2.id_token

        token = google.oauth2.id_token.fetch_id_token(google.auth.transport.requests.Request(), audience)
        return {"Authorization": f"Bearer {token}"}

    return headers
