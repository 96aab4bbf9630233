#!/usr/bin/env python3
"""ringway against nginx `proxy_pass`, side by side in one run (issue 11's table).

Starts, all on 127.0.0.1: the mock twice on CPU 1 (one answering at once, one paced at 20 ms
to the first token and 20 ms per token), nginx as loadtest/nginx.conf sets it up (one worker
on CPU 0, kept-alive upstreams, proxy_buffering off, no access log, a second server for the
paced mock), the ringway binary under test and, with --before BIN, a second ringway binary
(each one worker on CPU 0, access log off). Then, for every scenario, rounds alternating the
proxies:

- oha (32 connections, --secs per run, pinned to CPU 1) with each proxy's CPU time per
  request (utime + stime from /proc over the same run);
- loadtest --compare against nginx (alternating phases) with --target-pid / --compare-pid;
- paced streams: loadtest --stream at 200, 2,000 and 4,000 streams/s on the paced mock, CPU
  per stream;
- added latency at 500 and 2,000 req/s (open loop) against nginx;
- Gemini: a Gemini client passed through to a gemini-kind provider against nginx, and each
  translation pair with Gemini beside the same-format rows, for small and agent-size (~300 KB)
  bodies (the `-300k` scenarios).

Prints medians of the rounds (oha cells: CPU per request, with its range over the rounds in
parentheses) and ratios to nginx (with ringway's CPU over nginx's within each round), and
writes every run's raw line to --raw FILE. Needs nginx (Debian's nginx-light), oha
(`cargo install oha`), taskset and the release binaries (`cargo build --release -p ringway
-p loadtest`). Everything goes to 127.0.0.1:47xx and stops by itself.

  loadtest/vs-nginx.py [--rounds 3] [--secs 5] [--before BIN] [--only NAME,...] [--skip-loadtest]
                       [--proxy-quota PCT]
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TICKS = os.sysconf("SC_CLK_TCK")

MOCK, PACED = 4710, 4711
NGINX, NGINX_PACED = 4720, 4721
GW_PORTS = [4700, 4702]

GW_TOML = """
[server]
listen = "127.0.0.1:{port}"
workers = 1

[access_log]
enabled = false

[[provider]]
name = "mock"
kind = "openai"
base_url = "http://127.0.0.1:{mock}/v1"

[[provider]]
name = "mock-an"
kind = "anthropic"
base_url = "http://127.0.0.1:{mock}"

[[provider]]
name = "paced"
kind = "openai"
base_url = "http://127.0.0.1:{paced}/v1"

[[provider]]
name = "paced-an"
kind = "anthropic"
base_url = "http://127.0.0.1:{paced}"

[[route]]
model = "gpt"
targets = ["mock/mock-gpt"]

[[route]]
model = "claude"
targets = ["mock-an/mock-claude"]

[[provider]]
name = "mock-gem"
kind = "gemini"
base_url = "http://127.0.0.1:{mock}"
api_key_env = "RW_BENCH_GEMINI_KEY"

[[route]]
model = "gem"
targets = ["mock-gem/gemini-2.5-flash"]

[[route]]
model = "gpt-paced"
targets = ["paced/mock-gpt"]

[[route]]
model = "claude-paced"
targets = ["paced-an/mock-claude"]
"""

# loadtest/nginx.conf listens on these and proxies to the two mocks on MOCK and PACED.
NGINX_CONF = os.path.join(HERE, "nginx.conf")

OPENAI = "/v1/chat/completions"
ANTHROPIC = "/v1/messages"

# Gemini's path names the model: /v1beta/models/{model}:generateContent (or the SSE stream).
GEMINI = "gemini"
# The key the gemini-kind provider sends the mock (which wants one), and oha sends nginx.
GEMINI_KEY = "bench-gemini-key"

# name: (path, body through ringway, body at nginx, stream)
SCENARIOS = {
    "sse-openai": (OPENAI, "gpt", "mock-gpt", True),
    "sse-openai-usage": (OPENAI, "gpt", "mock-gpt", "usage"),
    "sse-anthropic": (ANTHROPIC, "claude", "mock-claude", True),
    "sse-o2a": (OPENAI, "claude", None, True),
    "sse-a2o": (ANTHROPIC, "gpt", None, True),
    "json-openai": (OPENAI, "gpt", "mock-gpt", False),
    "json-anthropic": (ANTHROPIC, "claude", "mock-claude", False),
    # Gemini: a Gemini client passed through (against nginx), and translated both ways.
    "json-gemini": (GEMINI, "gem", "gemini-2.5-flash", False),
    "sse-gemini": (GEMINI, "gem", "gemini-2.5-flash", True),
    "json-g2o": (GEMINI, "gpt", None, False),
    "json-g2a": (GEMINI, "claude", None, False),
    "sse-g2o": (GEMINI, "gpt", None, True),
    "sse-g2a": (GEMINI, "claude", None, True),
    "json-o2g": (OPENAI, "gem", None, False),
    "json-a2g": (ANTHROPIC, "gem", None, False),
    # Agent-size requests (~300 KB: a system prompt, four tools, AGENT_TURNS tool turns).
    "json-openai-300k": (OPENAI, "gpt", "mock-gpt", False),
    "json-anthropic-300k": (ANTHROPIC, "claude", "mock-claude", False),
    "json-gemini-300k": (GEMINI, "gem", "gemini-2.5-flash", False),
    "json-g2o-300k": (GEMINI, "gpt", None, False),
    "json-g2a-300k": (GEMINI, "claude", None, False),
    "json-o2g-300k": (OPENAI, "gem", None, False),
    "json-a2g-300k": (ANTHROPIC, "gem", None, False),
}

# Tool turns in the agent-size bodies (~300 KB in each dialect).
AGENT_TURNS = 240
FILE_BODY = "fn parse(input: &str) -> Result<Ast, Error> {\n    let mut p = Parser::new(input);\n    p.expr()\n}\n" * 12
TOOL_SCHEMA = {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}
TOOLS = ["read_file", "write_file", "list_dir", "run_tests"]


def url_path(path, model, stream):
    if path != GEMINI:
        return path
    return f"/v1beta/models/{model}:" + ("streamGenerateContent?alt=sse" if stream else "generateContent")


def agent_turns():
    """(question, call id, file) per turn of the agent-size conversation."""
    return [(f"Step {t}: what does parse do in src/m{t}.rs?", f"call_{t:04}", f"src/m{t}.rs")
            for t in range(AGENT_TURNS)]


def body(path, model, stream, agent=False):
    system = "You are a coding agent. Read files before editing. " * 40
    turns = agent_turns() if agent else []
    if path == GEMINI:
        contents = []
        for q, cid, f in turns:
            contents += [{"role": "user", "parts": [{"text": q}]},
                         {"role": "model", "parts": [{"functionCall": {"id": cid, "name": "read_file", "args": {"path": f}},
                                                      "thoughtSignature": "skip_thought_signature_validator"}]},
                         {"role": "user", "parts": [{"functionResponse": {"id": cid, "name": "read_file",
                                                                          "response": {"output": FILE_BODY}}}]}]
        contents.append({"role": "user", "parts": [{"text": "Say hello."}]})
        b = {"contents": contents, "generationConfig": {"maxOutputTokens": 64}}
        if agent:
            b["systemInstruction"] = {"parts": [{"text": system}]}
            b["tools"] = [{"functionDeclarations": [{"name": n, "description": "Workspace tool",
                                                     "parametersJsonSchema": TOOL_SCHEMA} for n in TOOLS]}]
        return json.dumps(b, separators=(",", ":"))
    if path == ANTHROPIC:
        msgs = []
        for q, cid, f in turns:
            msgs += [{"role": "user", "content": q},
                     {"role": "assistant", "content": [{"type": "tool_use", "id": cid, "name": "read_file", "input": {"path": f}}]},
                     {"role": "user", "content": [{"type": "tool_result", "tool_use_id": cid, "content": FILE_BODY}]}]
        msgs.append({"role": "user", "content": "Say hello."})
        b = {"model": model, "max_tokens": 64, "messages": msgs}
        if agent:
            b["system"] = system
            b["tools"] = [{"name": n, "description": "Workspace tool", "input_schema": TOOL_SCHEMA} for n in TOOLS]
    else:
        msgs = [{"role": "system", "content": system}] if agent else []
        for q, cid, f in turns:
            msgs += [{"role": "user", "content": q},
                     {"role": "assistant", "content": None, "tool_calls": [{"id": cid, "type": "function",
                      "function": {"name": "read_file", "arguments": json.dumps({"path": f})}}]},
                     {"role": "tool", "tool_call_id": cid, "content": FILE_BODY}]
        msgs.append({"role": "user", "content": "Say hello."})
        b = {"model": model, "messages": msgs}
        if agent:
            b["tools"] = [{"type": "function", "function": {"name": n, "description": "Workspace tool",
                                                            "parameters": TOOL_SCHEMA}} for n in TOOLS]
    if stream:
        b["stream"] = True
    if stream == "usage":
        b["stream_options"] = {"include_usage": True}
    return json.dumps(b, separators=(",", ":"))


def stat_fields(pid):
    """/proc/PID/stat's fields after the command's name (the first is field 3, the state)."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def cpu_ticks(pid):
    fields = stat_fields(pid)
    return int(fields[11]) + int(fields[12])


def minor_faults(pid):
    """Pages the process touched for the first time (or again after the allocator gave them
    back): the kernel's work a user-space profile does not see."""
    return int(stat_fields(pid)[7])


def cpu_busy():
    """(busy, total) jiffies of CPU 0 and CPU 1 from /proc/stat."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            name, *vals = line.split()
            if name in ("cpu0", "cpu1"):
                v = [int(x) for x in vals[:8]]
                out[name] = (sum(v) - v[3] - v[4], sum(v))
    return out


def busy_since(start):
    """Fraction of CPU 0 and of CPU 1 busy since `start` (a cpu_busy() reading)."""
    now = cpu_busy()
    return tuple((now[c][0] - start[c][0]) / max(now[c][1] - start[c][1], 1) for c in ("cpu0", "cpu1"))


def wait_port(port, proc, secs=10):
    import socket

    end = time.time() + secs
    while time.time() < end:
        if proc.poll() is not None:
            sys.exit(f"vs-nginx: process for port {port} exited ({proc.returncode})")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"vs-nginx: nothing listens on {port} after {secs} s")


class Bench:
    def __init__(self, args):
        self.args = args
        self.work = tempfile.mkdtemp(prefix="ringway-vs-nginx-")
        self.procs = []
        self.cgroups = []
        self.raw = open(args.raw, "w") if args.raw else None
        rel = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")) + "/release"
        self.ringway = os.path.join(rel, "ringway")
        os.environ["RW_BENCH_GEMINI_KEY"] = GEMINI_KEY
        self.loadtest = os.path.join(rel, "loadtest")
        for tool in ("nginx", "oha", "taskset"):
            if not shutil.which(tool):
                sys.exit(f"vs-nginx: {tool} is not on PATH")
        for b in [self.ringway, self.loadtest] + ([args.before] if args.before else []):
            if not os.access(b, os.X_OK):
                sys.exit(f"vs-nginx: {b} is not built")

    def spawn(self, cmd, cpu, port, log):
        import socket

        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            sys.exit(f"vs-nginx: something already listens on {port}: stop it first")
        except OSError:
            pass
        out = open(os.path.join(self.work, log), "w")
        p = subprocess.Popen(["taskset", "-c", str(cpu)] + cmd, stdout=out, stderr=out)
        self.procs.append(p)
        wait_port(port, p)
        return p

    def start(self):
        mock = [self.ringway, "mock-upstream", "--listen"]
        self.spawn(mock + [f"127.0.0.1:{MOCK}", "--ttft-ms", "0", "--itl-ms", "0"], 1, MOCK, "mock.log")
        self.spawn(mock + [f"127.0.0.1:{PACED}", "--ttft-ms", "20", "--itl-ms", "20"], 1, PACED, "paced.log")
        self.spawn(["nginx", "-c", NGINX_CONF], 0, NGINX, "nginx.log")
        time.sleep(0.3)
        workers = subprocess.run(["pgrep", "-f", f"nginx: worker process"], capture_output=True, text=True).stdout.split()
        master = self.procs[-1].pid
        mine = [w for w in workers if open(f"/proc/{w}/stat").read().rsplit(")", 1)[1].split()[1] == str(master)]
        if len(mine) != 1:
            sys.exit(f"vs-nginx: expected one nginx worker, found {mine}")
        self.proxies = {"nginx": (int(mine[0]), NGINX, NGINX_PACED)}
        bins = [("ringway", self.ringway)] + ([("before", self.args.before)] if self.args.before else [])
        for (name, b), port in zip(bins, GW_PORTS):
            toml = os.path.join(self.work, f"{name}.toml")
            with open(toml, "w") as f:
                f.write(GW_TOML.format(port=port, mock=MOCK, paced=PACED))
            p = self.spawn([b, "serve", "--config", toml], 0, port, f"{name}.log")
            self.proxies[name] = (p.pid, port, port)
        if self.args.proxy_quota:
            for name, (pid, _, _) in self.proxies.items():
                self.limit(name, pid, self.args.proxy_quota)

    def limit(self, name, pid, pct):
        """Move process `pid` (all its threads) into a cpu cgroup of its own capped at `pct`% of
        one CPU: cgroup v2's cpu.max where the cpu controller is there, else v1's CFS quota."""
        period = 10_000
        quota = max(1000, period * pct // 100)
        v2 = "/sys/fs/cgroup/cgroup.controllers"
        if os.path.exists(v2) and "cpu" in open(v2).read().split():
            d = f"/sys/fs/cgroup/ringway-vs-nginx-{name}"
            files = [("cpu.max", f"{quota} {period}")]
        elif os.path.exists("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"):
            d = f"/sys/fs/cgroup/cpu/ringway-vs-nginx-{name}"
            files = [("cpu.cfs_period_us", str(period)), ("cpu.cfs_quota_us", str(quota))]
        else:
            sys.exit("vs-nginx: --proxy-quota needs a writable cpu cgroup (v1 or v2)")
        try:
            os.makedirs(d, exist_ok=True)
            for f, v in files:
                with open(os.path.join(d, f), "w") as fh:
                    fh.write(v)
            with open(os.path.join(d, "cgroup.procs"), "w") as fh:
                fh.write(str(pid))
        except OSError as e:
            sys.exit(f"vs-nginx: --proxy-quota: {d}: {e}")
        self.cgroups.append(d)
        # Warm every path once (pools, tokenizer-free routes, first allocations).
        for name in self.proxies:
            for scen in SCENARIOS:
                self.oha(name, scen, 1)

    def stop(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(self.work, ignore_errors=True)
        for d in self.cgroups:
            # Empty once its process has exited; a cgroup directory is removed with rmdir.
            for _ in range(50):
                try:
                    os.rmdir(d)
                    break
                except OSError:
                    time.sleep(0.1)

    def log(self, line):
        print(line, flush=True)
        if self.raw:
            self.raw.write(line + "\n")
            self.raw.flush()

    def oha(self, proxy, scen, secs):
        path, gw_model, ng_model, stream = SCENARIOS[scen]
        pid, port, _ = self.proxies[proxy]
        model = ng_model if proxy == "nginx" else gw_model
        if model is None:
            return None
        # Bodies go through a file: an agent-size one is longer than one argument may be.
        body_file = os.path.join(self.work, f"{scen}-{proxy}.json")
        with open(body_file, "w") as f:
            f.write(body(path, model, stream, agent=scen.endswith("-300k")))
        return self.oha_run(proxy, url_path(path, model, stream), body_file, secs)

    def oha_run(self, proxy, url, body_file, secs, conns=32, extra=()):
        """oha posting `body_file` to `url` on `proxy` for `secs`: rate, the proxy's CPU per
        request, how busy each core was, latency percentiles (ms) and failures."""
        pid, port, _ = self.proxies[proxy]
        before = cpu_ticks(pid)
        faults = minor_faults(pid)
        cores = cpu_busy()
        out = subprocess.run(
            ["taskset", "-c", "1", "oha", "--no-tui", "-z", f"{secs}s", "-w", "--worker-threads", "1",
             "--output-format", "json", "-c", str(conns), "-m", "POST",
             "-H", "content-type: application/json", "-H", "anthropic-version: 2023-06-01",
             "-H", f"x-goog-api-key: {GEMINI_KEY}", *extra,
             "-D", body_file, f"http://127.0.0.1:{port}{url}"],
            capture_output=True, text=True, check=True).stdout
        cpu = (cpu_ticks(pid) - before) / TICKS
        faults = minor_faults(pid) - faults
        cpu0, cpu1 = busy_since(cores)
        d = json.loads(out)
        codes = d["statusCodeDistribution"]
        n = sum(codes.values())
        bad = n - codes.get("200", 0) + sum(d.get("errorDistribution", {}).values())
        return {"rps": d["summary"]["requestsPerSec"], "cpu_us": cpu / max(n, 1) * 1e6, "bad": bad,
                "faults": faults / max(n, 1),
                "cpu0": cpu0, "cpu1": cpu1,
                "p50": d["latencyPercentiles"]["p50"] * 1e3, "p99": d["latencyPercentiles"]["p99"] * 1e3}

    def loadtest_run(self, proxy, extra, compare=True, paced=False):
        """loadtest against `proxy`, --compare nginx; returns the parsed JSON."""
        pid, port, pport = self.proxies[proxy]
        npid, nport, npport = self.proxies["nginx"]
        out = os.path.join(self.work, "lt.json")
        cmd = ["taskset", "-c", "1", self.loadtest, f"http://127.0.0.1:{pport if paced else port}",
               "--target-pid", str(pid), "--json", out, "--quiet"] + extra
        if compare:
            cmd += ["--compare", f"http://127.0.0.1:{npport if paced else nport}", "--compare-pid", str(npid)]
        subprocess.run(cmd, capture_output=True, text=True, check=True)
        with open(out) as f:
            return json.load(f)


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--secs", type=float, default=5)
    ap.add_argument("--before", help="a second ringway binary, measured alongside")
    ap.add_argument("--only", help="comma-separated scenarios (default: all); also paced, latency")
    ap.add_argument("--skip-loadtest", action="store_true", help="oha rows only")
    ap.add_argument("--raw", help="append every run's line to this file")
    ap.add_argument("--proxy-quota", type=int, metavar="PCT",
                    help="hold each proxy to PCT%% of one CPU (a cpu cgroup, 10 ms period), so that "
                         "the proxy and not the mock and load tool's core bounds a closed loop; the "
                         "paced and latency rows then run only when --only names them")
    args = ap.parse_args()
    if not 1 <= args.rounds <= 9 or not 1 <= args.secs <= 30:
        sys.exit("vs-nginx: --rounds 1..9, --secs 1..30")
    only = set(args.only.split(",")) if args.only else None
    b = Bench(args)
    try:
        b.start()
        report(b, args, only)
    finally:
        b.stop()


def report(b, args, only):
    secs = int(args.secs)
    names = list(b.proxies)
    want = lambda s: only is None or s in only
    # Open-loop rows under a CPU cap would measure the cap's throttling, not the proxy.
    want_open = lambda s: (only is not None and s in only) if args.proxy_quota else want(s)
    rows = []
    for scen in SCENARIOS:
        if not want(scen):
            continue
        runs = {n: [] for n in names}
        for r in range(args.rounds):
            order = names if r % 2 == 0 else names[::-1]
            for n in order:
                res = b.oha(n, scen, secs)
                if res is not None:
                    runs[n].append(res)
                    b.log(f"oha {scen} round {r} {n}: {res['rps']:.0f}/s {res['cpu_us']:.1f} us "
                          f"p50 {res['p50']:.3f} p99 {res['p99']:.3f} ms bad {res['bad']} "
                          f"busy CPU0 {res['cpu0']:.2f} CPU1 {res['cpu1']:.2f}")
        cells = {}
        for n in names:
            if runs[n]:
                cpus = [x["cpu_us"] for x in runs[n]]
                cells[n] = (med(x["rps"] for x in runs[n]), med(cpus),
                            sum(x["bad"] for x in runs[n]), min(cpus), max(cpus))
        # A closed loop is bound by whichever core saturates first: with the mock and oha on
        # CPU 1 that is usually CPU 1, and then throughput says how each proxy's traffic loads
        # it, not how fast the proxy is.
        busy = {n: (med(x["cpu0"] for x in runs[n]), med(x["cpu1"] for x in runs[n]))
                for n in names if runs[n]}
        b.log(f"oha {scen} cores busy (median; CPU 0 proxy, CPU 1 mock + oha): "
              + ", ".join(f"{n} {c0:.2f} / {c1:.2f}" for n, (c0, c1) in busy.items()))
        # The host's drift moves every proxy of a round together: ringway's CPU over nginx's
        # within each round shows how far the medians' ratio can be trusted.
        if runs.get("ringway") and runs.get("nginx"):
            cells["round_ratios"] = [r["cpu_us"] / g["cpu_us"]
                                     for r, g in zip(runs["ringway"], runs["nginx"]) if g["cpu_us"]]
        rows.append(("oha", scen, cells))
        # loadtest speaks Chat and Messages with its own small bodies.
        if (not args.skip_loadtest and SCENARIOS[scen][2] is not None
                and SCENARIOS[scen][0] != GEMINI and not scen.endswith("-300k")):
            path, model, _, stream = SCENARIOS[scen]
            fmt = "anthropic" if path == ANTHROPIC else "openai"
            if stream == "usage":
                continue  # loadtest has no include_usage preset
            extra = ["--format", fmt, "--model", model, "--conns", "32", "--duration", str(secs),
                     "--warmup", "1", "--phases", str(max(2, args.rounds + 1))]
            if stream:
                extra.append("--stream")
            d = b.loadtest_run("ringway", extra)
            rows.append(("loadtest", scen, lt_cells(d)))
            b.log(f"loadtest {scen}: {json.dumps(lt_cells(d))}")
    if want_open("paced"):
        # 200 streams/s hold ~54 streams at once, so nearly every event wakes the proxy on its
        # own; 2,000 and 4,000 hold ~540 and ~1,100, where wake-ups carry several events.
        for fmt, model, rate in (("openai", "gpt-paced", 200), ("anthropic", "claude-paced", 200),
                                 ("openai", "gpt-paced", 2000), ("openai", "gpt-paced", 4000)):
            extra = ["--format", fmt, "--model", model, "--stream", "--rate", str(rate),
                     "--max-conns", "5000", "--duration", str(max(secs, 6)), "--warmup", "2",
                     "--phases", str(max(2, args.rounds + 1))]
            d = b.loadtest_run("ringway", extra, paced=True)
            rows.append((f"paced {rate}/s", fmt, lt_cells(d)))
            b.log(f"paced {rate}/s {fmt}: {json.dumps(lt_cells(d))}")
    if want_open("latency"):
        for rate in (500, 2000):
            extra = ["--model", "gpt", "--rate", str(rate), "--duration", str(secs), "--warmup", "1",
                     "--phases", str(max(2, args.rounds + 1))]
            d = b.loadtest_run("ringway", extra)
            rows.append((f"latency {rate}/s", "openai", lt_cells(d)))
            b.log(f"latency {rate}: {json.dumps(lt_cells(d))}")
    print()
    print_table(rows, names)


def lt_cells(d):
    """ringway and nginx cells of one loadtest --compare JSON report."""
    out = {}
    for key, name in (("target", "ringway"), ("compare", "nginx")):
        t = d["targets"].get(key)
        if not t:
            continue
        proc = t.get("process") or {}
        lat = t.get("latency_ms") or {}
        out[name] = {
            "rps": t.get("rate"),
            "cpu_us": proc.get("cpu_us_per_request"),
            "p50": lat.get("p50"),
            "p99": lat.get("p99"),
            "errors": t.get("errors"),
        }
    return out


def print_table(rows, names):
    print("| tool | scenario | " + " | ".join(names) + " | ratio to nginx (throughput, CPU) |")
    print("| --- | --- |" + " --- |" * (len(names) + 1))
    for tool, scen, cells in rows:
        if tool == "oha":
            fmt = lambda c: (f"{c[0] / 1000:.1f}k/s, {c[1]:.1f} µs ({c[3]:.1f}–{c[4]:.1f})"
                             + (f", {c[2]} bad" if c[2] else ""))
            ng = cells.get("nginx")
            rw = cells.get("ringway")
            ratio = f"{rw[0] / ng[0]:.2f}×, {rw[1] / ng[1]:.2f}×" if ng and rw else ""
            per_round = cells.get("round_ratios")
            if per_round:
                ratio += f" (CPU by round {min(per_round):.2f}–{max(per_round):.2f}×)"
            line = [fmt(cells[n]) if n in cells else "" for n in names]
        else:
            def fmt(c):
                if c is None:
                    return ""
                s = f"{(c['rps'] or 0) / 1000:.2f}k/s"
                if c.get("cpu_us") is not None:
                    s += f", {c['cpu_us']:.1f} µs"
                s += f", p50 {c['p50']:.3f} / p99 {c['p99']:.3f} ms"
                if c.get("errors"):
                    s += f", {c['errors']} errors"
                return s
            ng, rw = cells.get("nginx"), cells.get("ringway")
            ratio = ""
            if ng and rw and ng.get("rps") and ng.get("cpu_us"):
                ratio = f"{rw['rps'] / ng['rps']:.2f}×, {rw['cpu_us'] / ng['cpu_us']:.2f}×"
            if tool.startswith("latency") and ng and rw:
                ratio = f"added p50 {rw['p50'] - ng['p50']:+.3f} / p99 {rw['p99'] - ng['p99']:+.3f} ms"
            line = [fmt(cells.get(n)) for n in names]
        print(f"| {tool} | {scen} | " + " | ".join(line) + f" | {ratio} |")


if __name__ == "__main__":
    main()
