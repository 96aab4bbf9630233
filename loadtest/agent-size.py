#!/usr/bin/env python3
"""Agent-size requests through ringway against nginx `proxy_pass`, side by side in one run.

Bodies come from `agent-body` (loadtest/src/agent.rs: Claude Code's and Codex's captured
requests grown with tool turns to 50, 150 and 300 KB). Everything starts as in vs-nginx.py (its
Bench: the mock on CPU 1, nginx with request and response buffering off and ringway with one
worker on CPU 0, oha on CPU 1), with two more routes: `gpt-pii` (PII substitution on) and
`gpt-paced-tr` (a Messages client's model on the paced mock, for the memory row). Rows:

- same-format Chat and Messages against nginx, per size: CPU per request (oha, 32 connections,
  closed loop) and throughput;
- each translation among Chat, Messages and Responses (Chat and Messages clients never reach a
  Responses provider), per size: CPU per request, and its ratio to the same-format request of
  the provider's format and size;
- time to first byte added by a 300 KB translated request: p50 of 4 connections, translated
  against same-format, at the same rate;
- PII substitution on a 300 KB Chat request with five entities, against the same request with
  it off;
- memory: peak RSS above idle while 200 connections send 300 KB translated requests, in a
  closed loop to the paced mock (20 ms to the first token) and at 190/s to a mock that takes
  a second (about 190 held at once), against 200 × 2 × the body;
- 1 KB requests against nginx (vs-nginx.py's json-openai and json-anthropic rows).

Medians of --rounds rounds, proxies alternating. Needs what vs-nginx.py needs, and
`cargo build --release -p loadtest` for agent-body.

  loadtest/agent-size.py [--rounds 3] [--secs 4] [--sizes 50k,150k,300k] [--before BIN]
                         [--only cpu,ttfb,pii,memory]
"""

import argparse
import importlib.util
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("vs_nginx", os.path.join(HERE, "vs-nginx.py"))
vs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(vs)

vs.GW_TOML += """
[[route]]
model = "gpt-pii"
targets = ["mock/mock-gpt"]

[[route]]
model = "gpt-paced-tr"
targets = ["paced/mock-gpt"]

[[provider]]
name = "thinking"
kind = "openai"
base_url = "http://127.0.0.1:4712/v1"

[[route]]
model = "gpt-thinking-tr"
targets = ["thinking/mock-gpt"]

[pii]
routes = ["gpt-pii"]
"""
# The mock for the held-requests memory row: it answers a second after it has read a request,
# as a model that thinks before its first token does.
THINKING, THINKING_TTFT_MS = 4712, 1000

CHAT, MESSAGES, RESPONSES = "/v1/chat/completions", "/v1/messages", "/v1/responses"
SHAPE = {CHAT: "chat", MESSAGES: "messages", RESPONSES: "responses"}
# Five entities in the first user turn: two emails, a phone number, an SSN, an IPv4 address.
PII_TEXT = " Mail jane.roe@corp.test, cc ops@corp.test or call (415) 555-2671, SSN 123-45-6789, host 10.20.30.40."

# name: (client path, model through ringway, model at nginx or None, same-format row it is
# compared with)
PATHS = {
    "chat same-format": (CHAT, "gpt", "mock-gpt", None),
    "messages same-format": (MESSAGES, "claude", "mock-claude", None),
    "chat → messages": (CHAT, "claude", None, "messages same-format"),
    "messages → chat": (MESSAGES, "gpt", None, "chat same-format"),
    "responses → chat": (RESPONSES, "gpt", None, "chat same-format"),
    "responses → messages": (RESPONSES, "claude", None, "messages same-format"),
}


med = vs.med


class Agent:
    def __init__(self, bench, args):
        self.b = bench
        self.args = args
        self.gen = os.path.join(os.path.dirname(bench.loadtest), "agent-body")
        if not os.access(self.gen, os.X_OK):
            sys.exit(f"agent-size: {self.gen} is not built")

    def body(self, path, size, model, pii=False):
        name = os.path.join(self.b.work, f"{SHAPE[path]}-{size}-{model}{'-pii' if pii else ''}.json")
        if not os.path.exists(name):
            out = subprocess.run([self.gen, SHAPE[path], size, "--model", model],
                                 capture_output=True, check=True).stdout
            if pii:
                # Into the first user turn's text, which a Chat agent body opens with.
                marker = b'{"role":"user","content":"'
                at = out.index(marker) + len(marker)
                out = out[:at] + PII_TEXT.encode() + out[at:]
            with open(name, "wb") as f:
                f.write(out)
        return name

    def run(self, proxy, path, model, size, secs, conns=32, extra=(), pii=False):
        return self.b.oha_run(proxy, path, self.body(path, size, model, pii), secs, conns, extra)

    def rounds(self, label, fn):
        """fn(round) -> {proxy: result}; returns {proxy: [results]} over the rounds."""
        out = {}
        for r in range(self.args.rounds):
            for proxy, res in fn(r).items():
                if res is None:
                    continue
                if res["bad"]:
                    sys.exit(f"agent-size: {label} round {r} {proxy}: {res['bad']} failed requests")
                out.setdefault(proxy, []).append(res)
                self.b.log(f"{label} round {r} {proxy}: {res['rps']:.0f}/s {res['cpu_us']:.1f} us "
                           f"{res['faults']:.1f} faults p50 {res['p50']:.3f} p99 {res['p99']:.3f} ms")
        return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--secs", type=float, default=4)
    ap.add_argument("--sizes", default="50k,150k,300k")
    ap.add_argument("--before", help="a second ringway binary, measured alongside")
    ap.add_argument("--raw", help="append every run's line to this file")
    ap.add_argument("--only", default="cpu,ttfb,pii,memory",
                    help="which rows: cpu (per path and size), ttfb, pii, memory")
    args = ap.parse_args()
    args.only = set(args.only.split(","))
    if not args.only <= {"cpu", "ttfb", "pii", "memory"}:
        sys.exit("agent-size: --only takes cpu, ttfb, pii and memory")
    if not 1 <= args.rounds <= 9 or not 1 <= args.secs <= 30:
        sys.exit("agent-size: --rounds 1..9, --secs 1..30")
    bench_args = argparse.Namespace(before=args.before, raw=args.raw, proxy_quota=None)
    b = vs.Bench(bench_args)
    try:
        b.start()
        report(Agent(b, args), args)
    finally:
        b.stop()


def report(a, args):
    secs = int(args.secs)
    gateways = [n for n in a.b.proxies if n != "nginx"]
    table = []
    cpu = {}
    for size in args.sizes.split(",") if "cpu" in args.only else []:
        for label, (path, model, ng_model, _) in PATHS.items():
            def one(r, path=path, model=model, ng_model=ng_model):
                order = list(a.b.proxies) if r % 2 == 0 else list(a.b.proxies)[::-1]
                res = {}
                for p in order:
                    m = ng_model if p == "nginx" else model
                    if m is not None:
                        res[p] = a.run(p, path, m, size, secs)
                return res
            runs = a.rounds(f"{label} {size}", one)
            for p, rs in runs.items():
                cpu[(label, size, p)] = (med(r["cpu_us"] for r in rs), med(r["rps"] for r in rs))
    for size in args.sizes.split(",") if "cpu" in args.only else []:
        for label, (_, _, _, base) in PATHS.items():
            cells = []
            for p in ["nginx"] + gateways:
                c = cpu.get((label, size, p))
                cells.append(f"{c[0]:.0f} µs, {c[1]:.0f}/s" if c else "")
            rw = cpu.get((label, size, "ringway"))
            ng = cpu.get((label, size, "nginx"))
            ratio = ""
            if rw and ng:
                ratio = f"{rw[0] / ng[0]:.2f}× nginx's CPU, {rw[1] / ng[1]:.2f}× its throughput"
            elif rw and base and cpu.get((base, size, "ringway")):
                ratio = f"{rw[0] / cpu[(base, size, 'ringway')][0]:.2f}× same-format ({base})"
            table.append(f"| {size} | {label} | " + " | ".join(cells) + f" | {ratio} |")
    big = args.sizes.split(",")[-1]
    # Time to first byte: 4 connections at a rate both rows keep up with, same-format vs translated.
    ttfb = []
    pairs = (("messages → chat", "chat same-format"), ("chat → messages", "messages same-format"),
             ("responses → chat", "chat same-format"))
    for label, base in pairs if "ttfb" in args.only else ():
        def pair(r, label=label, base=base):
            res = {}
            for name in ((label, base) if r % 2 == 0 else (base, label)):
                path, model, _, _ = PATHS[name]
                res[name] = a.run("ringway", path, model, big, secs, conns=4, extra=("-q", "100"))
            return res
        runs = a.rounds(f"ttfb {label}", pair)
        t, s = med(r["p50"] for r in runs[label]), med(r["p50"] for r in runs[base])
        ttfb.append(f"| {big} | {label} | p50 {t:.3f} ms | {base}: p50 {s:.3f} ms | added {t - s:+.3f} ms |")
    pii_row = mem_row = None
    if "pii" in args.only:
        # PII on against off, the same Chat body with its five entities (each gateway binary:
        # with --before, the earlier one in the same rounds).
        def pii(r):
            res = {}
            for g in gateways:
                for on in ((True, False) if r % 2 == 0 else (False, True)):
                    res[(g, on)] = a.run(g, CHAT, "gpt-pii" if on else "gpt", big, secs, pii=True)
            return res
        runs = a.rounds("pii", pii)
        rows = []
        for g in gateways:
            on, off = (med(r["cpu_us"] for r in runs[(g, x)]) for x in (True, False))
            who = "" if g == "ringway" else f" ({g})"
            rows.append(f"| {big} | chat, 5 entities{who} | PII on {on:.0f} µs | off {off:.0f} µs | {on / off:.2f}× |")
        pii_row = "\n".join(rows)
    if "memory" in args.only:
        pid = a.b.proxies["ringway"][0]
        # Both rows against the RSS before either (memory the allocator keeps after the first
        # would hide the second's).
        idle = rss_kb(pid, "VmRSS")
        peak_before = rss_kb(pid, "VmHWM")
        body_kb = os.path.getsize(a.body(MESSAGES, big, "gpt-paced-tr")) / 1024
        bound = f"bound 200 × 2 × {body_kb:.0f} KB = {200 * 2 * body_kb / 1024:.0f} MB"

        def held(model, conns, secs, extra=()):
            # Reset the peak to now (Linux: "5" into clear_refs).
            with open(f"/proc/{pid}/clear_refs", "w") as f:
                f.write("5")
            res = a.run("ringway", MESSAGES, model, big, secs, conns=conns, extra=extra)
            if res["bad"]:
                # A refused request (a 503 when the helpers' queue is full) holds nothing:
                # the peak would flatter the gateway.
                sys.exit(f"agent-size: memory row {model}: {res['bad']} failed requests")
            return res, rss_kb(pid, "VmHWM")

        # 300 KB translated requests held while a model thinks: arrivals spread at 190/s, each
        # answered a second after it was read, so about 190 are in flight at any time.
        mock = [a.b.ringway, "mock-upstream", "--listen", f"127.0.0.1:{THINKING}",
                "--ttft-ms", str(THINKING_TTFT_MS), "--itl-ms", "20"]
        a.b.spawn(mock, 1, THINKING, "thinking.log")
        res, peak = held("gpt-thinking-tr", 200, max(secs, 6), ("-q", "190"))
        mem_row = (f"| {big} | 200 × messages → chat at 190/s, 1 s to the first token | peak RSS "
                   f"{peak / 1024:.0f} MB, idle {idle / 1024:.0f} MB (earlier peak {peak_before / 1024:.0f} MB) | "
                   f"above idle {(peak - idle) / 1024:.0f} MB | {bound}; p50 {res['p50']:.0f} ms |")
        # A closed loop to the paced mock (20 ms): all 200 come back, and are sent again,
        # together, so their translations are all made before the first of them is written.
        res, peak = held("gpt-paced-tr", 200, secs)
        mem_row += (f"\n| {big} | 200 × messages → chat, closed loop, 20 ms to the first token | peak RSS "
                    f"{peak / 1024:.0f} MB | above idle {(peak - idle) / 1024:.0f} MB | {bound}; {res['rps']:.0f}/s |")
    print()
    print("| size | path | nginx | " + " | ".join(gateways) + " | ratio |")
    print("| --- | --- | --- |" + " --- |" * (len(gateways) + 1))
    print("\n".join(table))
    print()
    print("| size | time to first byte (4 connections, 100 req/s) | translated | same-format | |")
    print("| --- | --- | --- | --- | --- |")
    print("\n".join(ttfb))
    for row in (pii_row, mem_row):
        if row:
            print(row)


def rss_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


if __name__ == "__main__":
    main()
