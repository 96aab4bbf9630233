"""Start the real ringway binary and its mock provider for the SDK tests.

RINGWAY_BIN names the binary (default: target/debug/ringway beside this repo);
RINGWAY_TEST_DRIVER picks the io driver (auto, io_uring, epoll).
"""

import os
import queue
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("RINGWAY_BIN", str(ROOT / "target" / "debug" / "ringway"))
DRIVER = os.environ.get("RINGWAY_TEST_DRIVER", "auto")
GATEWAY_KEY = "sdk-test-key"


class Proc:
    """A child process that announced `marker http://ADDR` on stderr."""

    def __init__(self, args, marker, env=None):
        self.p = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
        )
        lines = queue.Queue()

        def pump():
            for line in self.p.stderr:
                lines.put(line)

        threading.Thread(target=pump, daemon=True).start()
        seen = []
        while True:
            try:
                line = lines.get(timeout=20)
            except queue.Empty:
                self.p.kill()
                raise RuntimeError(f"{args[0]} did not start: {''.join(seen)}")
            seen.append(line)
            if marker in line:
                rest = line.split(marker, 1)[1].strip()
                self.url = rest.split()[0]
                self.addr = self.url.split("://", 1)[1]
                return

    def stop(self):
        self.p.kill()
        self.p.wait()


def _sha256(s):
    import hashlib

    return hashlib.sha256(s.encode()).hexdigest()


@pytest.fixture(scope="session")
def mock():
    m = Proc([BIN, "mock-upstream", "--listen", "127.0.0.1:0", "--driver", DRIVER], "mock provider listening on")
    yield m
    m.stop()


@pytest.fixture(scope="session")
def gateway(mock):
    cfg = f"""
[server]
workers = 2

[[provider]]
name = "mo"
kind = "openai"
base_url = "http://{mock.addr}/v1"

[[provider]]
name = "ma"
kind = "anthropic"
base_url = "http://{mock.addr}"

[[route]]
model = "gpt"
targets = ["mo/mock-gpt"]

[[route]]
model = "claude"
targets = ["ma/mock-claude"]

[[key]]
name = "sdk"
sha256 = "{_sha256(GATEWAY_KEY)}"
"""
    d = tempfile.mkdtemp(prefix="ringway-sdk-")
    path = os.path.join(d, "ringway.toml")
    with open(path, "w") as f:
        f.write(cfg)
    g = Proc([BIN, "serve", "--config", path, "--listen", "127.0.0.1:0", "--driver", DRIVER], "listening on")
    yield g
    g.stop()


@pytest.fixture()
def oai(gateway):
    import openai

    return openai.OpenAI(api_key=GATEWAY_KEY, base_url=gateway.url + "/v1", max_retries=0, timeout=20)


@pytest.fixture()
def ant(gateway):
    import anthropic

    return anthropic.Anthropic(api_key=GATEWAY_KEY, base_url=gateway.url, max_retries=0, timeout=20)
