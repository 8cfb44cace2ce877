"""The README's curl examples work when pasted (against a real stack)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from urllib.parse import urlparse

import pytest

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parents[2] / "README.md"


def curl_snippets() -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", README.read_text(), flags=re.S)
    snippets = []
    for block in blocks:
        for command in re.split(r"\n(?=\S)", block.replace("\\\n", " ")):
            command = "\n".join(line for line in command.splitlines() if not line.lstrip().startswith("#")).strip()
            if command.startswith("curl ") and "127.0.0.1:8081" in command:
                snippets.append(command)
    return snippets


def test_the_readme_has_the_curl_examples_this_test_runs():
    assert len(curl_snippets()) == 3


def test_readme_curl_examples_answer_as_documented(embedded_stack):
    stack, ctx = embedded_stack
    port = urlparse(ctx.settings.ingest_url).port
    answers = []
    for command in curl_snippets():
        out = subprocess.run(["bash", "-c", command.replace("127.0.0.1:8081", f"127.0.0.1:{port}")],
                             capture_output=True, text=True, timeout=30, check=True).stdout
        answers.append(json.loads(out))
    health, malformed, other_bucket = answers
    # instance: the launcher's per-run token, so a foreign process on the port is not taken for ours
    assert health == {"status": "ok", "service": "ingest", "instance": stack.token}
    assert malformed["error"] == "not_a_cloudevent"
    assert other_bucket["status"] == "rejected" and other_bucket["reason"] == "wrong_bucket"
