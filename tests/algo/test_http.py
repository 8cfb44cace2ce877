"""The external-service adapter against real HTTP servers started by the test (uvicorn on 127.0.0.1):
the reference plug-in served over the protocol, a service that does not answer in time, one that
answers 5xx, and one that refuses a night for good."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from sunrise_algo.builtin.model import DEFAULT_MODEL
from sunrise_algo.builtin.plugin import Builtin
from sunalgo.run import run_sunalgo
from sunrise_algo.http import ExternalAlgorithm, create_app, idempotency_key
from sunrise_algo.interface import AlgorithmError, PreparedNight
from sunrise_common.errors import PermanentError, TransientError
from sunrise_devstack.emulators import free_port


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """Run ``app`` with uvicorn in a thread until the block ends; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the test server did not start")
            thread.join(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join()


def night_of(folder) -> PreparedNight:
    return PreparedNight.from_folder("night-1", folder, {"meta_url": (folder / "meta.json").as_uri(),
                                                         "signals_url": (folder / "prepped.npz").as_uri()})


def describing(app: FastAPI, name: str = "teamalgo") -> FastAPI:
    @app.get("/v1/describe")
    def describe() -> dict:
        return {"name": name, "version": "3.1", "interface_version": "1", "default_model": "v7", "models": ["v7"]}

    return app


def test_the_reference_plugin_served_over_http_gives_the_in_process_results(nights, tmp_path):
    _, folder, psg = nights[0]
    with serve(create_app(Builtin())) as url:
        external = ExternalAlgorithm(url, timeout_s=60)
        assert (external.name, external.version, external.default_model) == ("sunalgo", "1.0", DEFAULT_MODEL)
        remote = run_sunalgo(folder, psg, tmp_path / "remote", algorithm=external, night_id="night-1",
                             reference=night_of(folder).reference)
    local = run_sunalgo(folder, psg, tmp_path / "local")
    assert remote == local
    for name in ("features.csv", "predictions.csv", "events.csv", "training_rows.csv", "agreement.json"):
        assert (tmp_path / "remote" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name


def test_a_repeated_idempotency_key_is_answered_without_running_again(nights):
    _, folder, _ = nights[0]
    calls = []

    class Counting(Builtin):
        def run(self, night, **kw):
            calls.append(night.night_id)
            return super().run(night, **kw)

    with serve(create_app(Counting())) as url:
        external = ExternalAlgorithm(url)
        first = external.run(night_of(folder), model_version=DEFAULT_MODEL)
        second = external.run(night_of(folder), model_version=DEFAULT_MODEL)
    assert first == second and calls == ["night-1"]
    assert idempotency_key("n", "a", "file:///x?sig=1") == idempotency_key("n", "a", "file:///x?sig=2")


def test_a_service_that_does_not_answer_in_time_is_transient_after_the_retries(nights):
    _, folder, _ = nights[0]
    release = threading.Event()
    attempts = []
    app = describing(FastAPI())

    @app.post("/v1/run")
    def run() -> dict:
        attempts.append(1)
        release.wait(30)  # held until the test has seen the client give up
        return {}

    with serve(app) as url:
        external = ExternalAlgorithm(url, timeout_s=0.3, retries=2, backoff_s=0.0)
        with pytest.raises(AlgorithmError) as info:
            external.run(night_of(folder), model_version="v7")
        release.set()
    assert not info.value.permanent and info.value.reason == "unavailable"
    assert "no answer within 0.3 s after 3 attempts" in str(info.value)
    assert len(attempts) == 3


def test_5xx_is_retried_and_a_later_success_is_used(nights):
    _, folder, _ = nights[0]
    builtin = Builtin()
    answers = iter([503, 500, 200])
    app = describing(FastAPI(), "sunalgo")

    @app.post("/v1/run")
    def run() -> JSONResponse:
        status = next(answers)
        if status != 200:
            return JSONResponse({"detail": "busy"}, status_code=status)
        return JSONResponse(builtin.run(night_of(folder), model_version=DEFAULT_MODEL).model_dump(mode="json"))

    with serve(app) as url:
        out = ExternalAlgorithm(url, retries=3, backoff_s=0.0).run(night_of(folder), model_version="v7")
    assert len(out.predictions.sleep_wake) == json.loads((folder / "meta.json").read_text())["n_epochs"]


def test_5xx_every_time_is_a_transient_failure_of_the_stage(nights, tmp_path):
    _, folder, _ = nights[0]
    app = describing(FastAPI())

    @app.post("/v1/run")
    def run() -> JSONResponse:
        return JSONResponse({}, status_code=502)

    with serve(app) as url:
        external = ExternalAlgorithm(url, retries=1, backoff_s=0.0)
        with pytest.raises(TransientError) as info:
            run_sunalgo(folder, None, tmp_path / "out", algorithm=external, reference=night_of(folder).reference)
    assert info.value.reason == "algorithm_unavailable"


def test_a_permanent_refusal_is_the_nights_permanent_reason(nights, tmp_path):
    _, folder, _ = nights[0]
    app = describing(FastAPI())

    @app.post("/v1/run")
    def run() -> JSONResponse:
        return JSONResponse({"error": {"reason": "too_short", "permanent": True}}, status_code=422)

    with serve(app) as url:
        external = ExternalAlgorithm(url, retries=3, backoff_s=0.0)
        with pytest.raises(PermanentError) as info:
            run_sunalgo(folder, None, tmp_path / "out", algorithm=external, reference=night_of(folder).reference)
    assert info.value.reason == "algorithm_too_short"
    assert not (tmp_path / "out" / "scores.json").exists()


def test_an_output_that_breaks_the_interface_is_permanent_and_says_where(nights):
    _, folder, _ = nights[0]
    app = describing(FastAPI())

    @app.post("/v1/run")
    def run() -> dict:
        return {"features": [], "predictions": {"sleep_wake": ["maybe"]}}

    with serve(app) as url:
        with pytest.raises(AlgorithmError) as info:
            ExternalAlgorithm(url).run(night_of(folder), model_version="v7")
    assert info.value.permanent and info.value.reason == "bad_output"
    assert "predictions.sleep_wake.0" in str(info.value)


def test_each_call_carries_fresh_credentials_from_auth(nights):
    _, folder, _ = nights[0]
    seen: list[str | None] = []
    app = FastAPI()

    @app.get("/v1/describe")
    def describe(request: Request) -> dict:
        seen.append(request.headers.get("authorization"))
        return {"name": "teamalgo", "version": "1", "interface_version": "1", "default_model": "v7", "models": ["v7"]}

    @app.post("/v1/run")
    def run(request: Request) -> JSONResponse:
        seen.append(request.headers.get("authorization"))
        return JSONResponse({"error": {"reason": "too_short", "permanent": True}}, status_code=422)

    tokens = iter(["Bearer t1", "Bearer t2"])
    with serve(app) as url:
        external = ExternalAlgorithm(url, auth=lambda: {"Authorization": next(tokens)})
        with pytest.raises(AlgorithmError):
            external.run(night_of(folder), model_version="v7")
    assert seen == ["Bearer t1", "Bearer t2"]


@pytest.mark.parametrize("status", [401, 403, 404, 408, 409])
def test_a_4xx_that_does_not_say_permanent_is_retried_then_transient(nights, status):
    # An invoker grant still propagating (403), a service still deploying (404): not the night's fault.
    _, folder, _ = nights[0]
    attempts = []
    app = describing(FastAPI())

    @app.post("/v1/run")
    def run() -> JSONResponse:
        attempts.append(status)
        return JSONResponse({"detail": "no"}, status_code=status)

    with serve(app) as url:
        with pytest.raises(AlgorithmError) as info:
            ExternalAlgorithm(url, retries=2, backoff_s=0.0).run(night_of(folder), model_version="v7")
    assert not info.value.permanent and f"HTTP {status} after 3 attempts" in str(info.value)
    assert len(attempts) == 3


def test_an_answer_trickling_past_the_deadline_is_a_timeout(nights):
    import asyncio

    from fastapi.responses import StreamingResponse

    _, folder, _ = nights[0]
    app = describing(FastAPI())

    @app.post("/v1/run")
    async def run() -> StreamingResponse:
        async def trickle():
            for _ in range(100):
                yield b" "
                await asyncio.sleep(0.05)  # each byte well inside the read timeout, the whole far beyond

        return StreamingResponse(trickle(), media_type="application/json")

    with serve(app) as url:
        with pytest.raises(AlgorithmError) as info:
            ExternalAlgorithm(url, timeout_s=0.5, retries=0).run(night_of(folder), model_version="v7")
    assert not info.value.permanent and "took longer than 0.5 s" in str(info.value)
