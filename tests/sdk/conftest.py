"""Start the real ringway binary and its mock provider for the SDK tests.

RINGWAY_BIN names the binary (default: target/debug/ringway beside this repo);
RINGWAY_TEST_DRIVER picks the io driver (auto, io_uring, epoll).
"""

import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("RINGWAY_BIN", str(ROOT / "target" / "debug" / "ringway"))
DRIVER = os.environ.get("RINGWAY_TEST_DRIVER", "auto")
GATEWAY_KEY = "sdk-test-key"

# The failover route `fo` (tests/sdk/test_fallback.py): three targets, each its own provider on
# the same mock, of alternating kinds, so a fallback from the first to the second target always
# changes format, and one to the third changes it back. Faults are set per upstream model.
FALLBACK_ROUTE = "fo"
FALLBACK_TARGETS = [("fa", "openai", "fo-a"), ("fb", "anthropic", "fo-b"), ("fc", "openai", "fo-c")]
# Same-target retries of that route (for refused connections and retryable statuses).
FALLBACK_RETRIES = 1
# Longest provider `retry-after` the route honours; a longer hint moves on at once.
FALLBACK_MAX_RETRY_AFTER_MS = 50


def _fallback_config(mock_addr):
    out = []
    for name, kind, _ in FALLBACK_TARGETS:
        base = f"http://{mock_addr}/v1" if kind == "openai" else f"http://{mock_addr}"
        out.append(f'[[provider]]\nname = "{name}"\nkind = "{kind}"\nbase_url = "{base}"\n')
    targets = ", ".join(f'"{name}/{model}"' for name, _, model in FALLBACK_TARGETS)
    # No circuit breaker: the tests fault the same targets again and again, and each must see
    # every target tried. Backoff of a millisecond keeps the retries fast.
    out.append(
        f"""[[route]]
model = "{FALLBACK_ROUTE}"
targets = [{targets}]
retries = {FALLBACK_RETRIES}
backoff_base_ms = 1
backoff_max_ms = 2
max_retry_after_ms = {FALLBACK_MAX_RETRY_AFTER_MS}
breaker_failures = 0
request_timeout_ms = 15000
"""
    )
    return "\n".join(out)


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


def main_routes(mock_addr):
    """Providers `mo` (openai kind) and `ma` (anthropic kind) on the mock, and the routes `gpt`
    and `claude` to them: the main gateway's, also served by the other gateways here."""
    return f"""
[[provider]]
name = "mo"
kind = "openai"
base_url = "http://{mock_addr}/v1"

[[provider]]
name = "ma"
kind = "anthropic"
base_url = "http://{mock_addr}"

[[route]]
model = "gpt"
targets = ["mo/mock-gpt"]

[[route]]
model = "claude"
targets = ["ma/mock-claude"]
"""


def key_table(name, secret, **limits):
    """A `[[key]]` table: `name`, the sha256 of `secret`, and `limits` (e.g. `rpm=2`)."""
    lines = ["[[key]]", f'name = "{name}"', f'sha256 = "{_sha256(secret)}"']
    lines += [f"{k} = {v}" for k, v in limits.items()]
    return "\n".join(lines) + "\n"


def serve_gateway(body, keys=None, server_tables=""):
    """Start a gateway (two workers, `server_tables` after `[server]`) with `body` (providers and
    routes) and `keys` (`[[key]]` tables; default: the SDK test key), and wait for its address."""
    if keys is None:
        keys = key_table("sdk", GATEWAY_KEY)
    return _serve(f"""
[server]
workers = 2
{server_tables}
{body}
{keys}""")


@pytest.fixture(scope="session")
def gateway(mock):
    g = serve_gateway(main_routes(mock.addr))
    yield g
    g.stop()


def _serve(cfg):
    d = tempfile.mkdtemp(prefix="ringway-sdk-")
    path = os.path.join(d, "ringway.toml")
    with open(path, "w") as f:
        f.write(cfg)
    return Proc([BIN, "serve", "--config", path, "--listen", "127.0.0.1:0", "--driver", DRIVER], "listening on")


def make_pki(d):
    """A test CA and a certificate it signed for localhost and 127.0.0.1, made with the openssl
    command (CI installs it): returns (ca.pem, cert.pem, key.pem) paths."""
    if shutil.which("openssl") is None:
        raise RuntimeError("the TLS SDK tests need the openssl command (.ci/run installs it)")

    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", "-new", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=ringway SDK test CA")
    run("req", "-new", *ec, "-keyout", "key.pem", "-out", "leaf.csr", "-subj", "/CN=localhost")
    with open(os.path.join(d, "leaf.ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
    run("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "cert.pem", "-days", "2", "-extfile", "leaf.ext")
    return tuple(os.path.join(d, n) for n in ("ca.pem", "cert.pem", "key.pem"))


@pytest.fixture(scope="session")
def tls_gateway(mock):
    """The main gateway's routes over HTTPS (`[server.tls]`, certificate from a test CA). Yields
    (gateway, CA file)."""
    d = tempfile.mkdtemp(prefix="ringway-sdk-tls-")
    ca, cert, key = make_pki(d)
    g = serve_gateway(main_routes(mock.addr), server_tables=f'[server.tls]\ncert = "{cert}"\nkey = "{key}"\n')
    assert g.url.startswith("https://"), g.url
    yield g, ca
    g.stop()


@pytest.fixture(scope="session")
def fallback_gateway(mock):
    """A second gateway on the same mock with only the failover route `fo` (its own process,
    so the main gateway's model list stays as the other tests expect it)."""
    g = serve_gateway(_fallback_config(mock.addr))
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


@pytest.fixture()
def oai_fo(fallback_gateway):
    import openai

    return openai.OpenAI(api_key=GATEWAY_KEY, base_url=fallback_gateway.url + "/v1", max_retries=0, timeout=20)


@pytest.fixture()
def ant_fo(fallback_gateway):
    import anthropic

    return anthropic.Anthropic(api_key=GATEWAY_KEY, base_url=fallback_gateway.url, max_retries=0, timeout=20)


def _mock_call(mock, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://{mock.addr}{path}", data=data, method=method)
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


class Faults:
    """The mock's per-model fault table and counts, for one test."""

    def __init__(self, mock):
        self.mock = mock

    def set(self, table):
        """Replace the fault table and forget earlier requests and counts."""
        assert _mock_call(self.mock, "POST", "/mock/faults", table) == {"ok": True}
        assert _mock_call(self.mock, "GET", "/mock/faults") == table
        _mock_call(self.mock, "DELETE", "/mock/requests")

    def counts(self):
        """`{model: {"requests": N, "<answered>": N, ...}}` since the last `set`."""
        return _mock_call(self.mock, "GET", "/mock/counts")

    def last_body(self):
        """The body of the last request the mock received, as text."""
        return _mock_call(self.mock, "GET", "/mock/requests")[-1]["body"]


@pytest.fixture()
def faults(mock):
    f = Faults(mock)
    yield f
    # Leave no fault behind for other tests.
    _mock_call(mock, "POST", "/mock/faults", {})
