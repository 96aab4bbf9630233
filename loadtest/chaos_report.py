#!/usr/bin/env python3
"""Report of one loadtest/chaos.sh run: `python3 loadtest/chaos_report.py OUT_DIR`.

Reads what chaos.sh left in OUT_DIR (run.env, faults.log, req-*.tsv, load-*.json,
metrics.txt, gateway.log) and prints the summary. Exit status 1 when any request failed or
was lost, else 0. Can be re-run on an old run's directory.

A request is
  served  when it got a 2xx answer that completed cleanly,
  lost    when no answer came at all: timeout, or the connection refused / closed before any
          response head,
  failed  otherwise: a non-2xx answer, an in-stream error, a broken body.

Each failed or lost request is also put in one of two classes, from the fault schedule:
  "every target faulted at some time while it ran": the faults moved while its failover
          chain ran (a request can outlive several switches: a stall costs a whole
          first_byte_timeout), so each attempt may have met a fault; not by itself a gateway
          fault;
  "a target stayed healthy throughout": some target had no fault from the request's start to
          its end, and the gateway still did not serve it from there: gateway-attributable.
"""

import bisect
import glob
import json
import os
import re
import sys
from collections import Counter, defaultdict

LOST = {"timeout", "connect", "write", "read"}
TARGETS = "abc"


def pct(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, int(round(p / 100 * len(xs) + 0.5)) - 1))]


def fmt(v):
    return "-" if v is None else f"{v:.1f}"


def mib(k):
    return f"{int(k) / 1024:.1f} MiB ({k} KiB)" if str(k).isdigit() else "-"


def main(out):
    env = {}
    try:
        for line in open(os.path.join(out, "run.env")):
            k, _, v = line.rstrip("\n").partition("=")
            env[k] = v
    except OSError:
        pass
    g = lambda k: env.get(k, "?")

    # Fault timeline: (unix_ms, (fault of a, b, c)), sorted.
    times, tables = [], []
    for line in open(os.path.join(out, "faults.log")):
        if line.startswith("#"):
            continue
        ms, _, a, b, c = line.rstrip("\n").split("\t")
        times.append(int(ms))
        tables.append((a, b, c))

    def faults_at(ms):
        i = bisect.bisect_right(times, ms) - 1
        return tables[i] if i >= 0 else ("none", "none", "none")

    def faulted_during(start, end):
        """Targets that had a fault at any moment of [start, end]."""
        i = max(0, bisect.bisect_right(times, start) - 1)
        j = bisect.bisect_right(times, end)
        hit = set()
        for t in tables[i:j] or [faults_at(start)]:
            hit |= {x for x, f in zip(TARGETS, t) if f != "none"}
        return hit

    def label(t):
        return " ".join(f"{m}={f}" for m, f in zip(TARGETS, t) if f != "none") or "no faults"

    reqs = []
    json_total = 0
    for path in sorted(glob.glob(os.path.join(out, "req-*.tsv"))):
        cls = os.path.basename(path)[4:-4]
        for line in open(path):
            if line.startswith("#"):
                continue
            f = line.rstrip("\n").split("\t")
            if len(f) < 9:
                continue
            reqs.append(dict(cls=cls, start=float(f[0]), end=float(f[1]), lat=float(f[2]),
                             ttft=None if f[3] == "-" else float(f[3]), outcome=f[4],
                             status=int(f[5]), id=f[6], provider=f[7], attempts=f[8]))
        try:
            t = json.load(open(os.path.join(out, f"load-{cls}.json")))["targets"]
            t = t["target"] if isinstance(t, dict) else t[0]
            json_total = None if json_total is None else json_total + t["ok"] + t["errors"]
        except (OSError, ValueError, KeyError, IndexError, TypeError):
            json_total = None

    def kind(r):
        if r["outcome"] == "ok":
            return "served"
        if r["outcome"] in LOST or (r["outcome"] == "closed" and r["status"] == 0):
            return "lost"
        return "failed"

    sent = len(reqs)
    by = Counter(kind(r) for r in reqs)
    served, failed, lost = by["served"], by["failed"], by["lost"]
    ok = [r for r in reqs if r["outcome"] == "ok"]
    lat = [r["lat"] for r in ok]
    ttft = [r["ttft"] for r in ok if r["ttft"] is not None]

    print()
    print("=" * 78)
    print(f"chaos soak: {g('DURATION')}s at {g('RATE')} req/s ({g('MODE')}), seed {g('SEED')}, "
          f"{g('SWITCHES')} fault switches every {g('EVERY')}s")
    print("=" * 78)
    note = "" if json_total in (None, sent) else f"   (loadtest JSON counted {json_total})"
    print(f"sent    {sent}{note}")
    print(f"served  {served}   (2xx, complete)")
    print(f"failed  {failed}   (an answer came, but non-2xx or an in-stream error / broken body)")
    print(f"lost    {lost}   (no answer: timeout, or connection closed/refused before any head)")
    print(f"latency ms (served)   p50 {fmt(pct(lat, 50))}  p99 {fmt(pct(lat, 99))}  "
          f"max {fmt(max(lat) if lat else None)}")
    print(f"TTFT ms (streams)     p50 {fmt(pct(ttft, 50))}  p99 {fmt(pct(ttft, 99))}  "
          f"max {fmt(max(ttft) if ttft else None)}")
    print("per client class:")
    for cls in sorted({r["cls"] for r in reqs}):
        rs = [r for r in reqs if r["cls"] == cls]
        c = Counter(kind(r) for r in rs)
        l = [r["lat"] for r in rs if r["outcome"] == "ok"]
        t = [r["ttft"] for r in rs if r["outcome"] == "ok" and r["ttft"] is not None]
        extra = f"  TTFT p50 {fmt(pct(t, 50))} p99 {fmt(pct(t, 99))}" if t else ""
        print(f"  {cls:<17} sent {len(rs):>6} served {c['served']:>6} failed {c['failed']:>4} "
              f"lost {c['lost']:>4}  latency p50 {fmt(pct(l, 50))} p99 {fmt(pct(l, 99))}{extra}")
    prov = Counter(r["provider"] for r in ok)
    att = Counter(r["attempts"] for r in ok)
    print("served by provider:  " + "  ".join(f"{k}={v}" for k, v in sorted(prov.items())))
    print("attempts (served):   " + "  ".join(
        f"{k}={v}" for k, v in sorted(att.items(), key=lambda kv: (len(kv[0]), kv[0]))))
    print(f"gateway VmRSS start {mib(g('RSS_START'))}, end {mib(g('RSS_END'))}; "
          f"VmHWM end {mib(g('HWM_END'))}")

    metrics = defaultdict(Counter)
    pat = re.compile(r'^(ringway_[a-z_]+)\{([^}]*)\}\s+([0-9.eE+-]+)$')
    try:
        for line in open(os.path.join(out, "metrics.txt")):
            m = pat.match(line.strip())
            if m:
                labels = tuple(sorted(re.findall(r'(\w+)="([^"]*)"', m.group(2))))
                metrics[m.group(1)][labels] += float(m.group(3))
    except OSError:
        pass

    def show(name, key):
        c = Counter()
        for labels, v in metrics.get(name, {}).items():
            c[dict(labels).get(key, "")] += v
        return "  ".join(f"{k}={int(v)}" for k, v in sorted(c.items())) or "-"

    print("gateway metrics:")
    print(f"  attempts_total by target:        {show('ringway_attempts_total', 'target')}")
    print(f"  fallbacks_total by reason:       {show('ringway_fallbacks_total', 'reason')}")
    print(f"  fallbacks_total by target:       {show('ringway_fallbacks_total', 'target')}")
    print(f"  breaker_opened_total by target:  {show('ringway_breaker_opened_total', 'target')}")
    print(f"  requests_total by status:        {show('ringway_requests_total', 'status')}")
    print(f"  errors_total by kind:            {show('ringway_errors_total', 'kind')}")

    bad = [r for r in reqs if kind(r) != "served"]
    healthy_throughout = 0
    if bad:
        def cover(r):
            return ("every target faulted at some time while it ran"
                    if faulted_during(r["start"], r["end"]) == set(TARGETS)
                    else "a target stayed healthy throughout")
        classes = Counter(cover(r) for r in bad)
        healthy_throughout = classes["a target stayed healthy throughout"]
        print()
        print(f"{len(bad)} failed or lost requests:")
        for k, n in classes.most_common():
            print(f"  {n:>6}  {k}")
        print("by outcome, client class and faults active at their start:")
        combos = Counter((kind(r), r["outcome"], r["cls"], label(faults_at(r["start"])))
                         for r in bad)
        for (k, o, cls, fl), n in combos.most_common(40):
            print(f"  {n:>6}  {k:<6} {o:<13} {cls:<17} {fl}")
        if len(combos) > 40:
            print(f"  … {len(combos) - 40} more combinations")
        by_fault = Counter()
        for r in bad:
            if cover(r) == "a target stayed healthy throughout":
                for f in set(faults_at(r["start"])) - {"none"}:
                    by_fault[f] += 1
        if by_fault:
            print("faults active at the start of the requests that had a healthy target "
                  "throughout (a request counts once per distinct fault):")
            for f, n in by_fault.most_common():
                print(f"  {n:>6}  {f}")

        index = defaultdict(list)
        anonymous = []  # (unix_ms, line) of gateway lines that name no request id
        try:
            gw = open(os.path.join(out, "gateway.log"), errors="replace").read().splitlines()
        except OSError:
            gw = []
        for line in gw:
            ids = [tok for tok in line.split() if tok.startswith("rw-")]
            if ids:
                index[ids[0]].append(line)
            else:
                try:
                    anonymous.append((float(line.split()[0]) * 1000, line))
                except (ValueError, IndexError):
                    pass
        anon_times = [t for t, _ in anonymous]

        def sample(r):
            print(f"  {r['start']:.0f} {r['cls']} {r['outcome']} status={r['status']} "
                  f"id={r['id']} provider={r['provider']} attempts={r['attempts']} "
                  f"latency={r['lat']:.0f}ms")
            print(f"      faults at start: {label(faults_at(r['start']))}; "
                  f"at end: {label(faults_at(r['end']))}; {cover(r)}")
            lines = index.get(r["id"], [])
            for line in lines[:6]:
                print(f"      | {line[:260]}")
            if not lines:
                # No line names this request: show what the gateway logged while it ran.
                i = bisect.bisect_left(anon_times, r["start"])
                j = bisect.bisect_right(anon_times, r["end"] + 5)
                for _, line in anonymous[i:j][:2]:
                    print(f"      | (no request id; logged while it ran) {line[:220]}")

        print()
        print("examples: the first failed/lost request of each (outcome, class, faults) "
              "combination, up to 30:")
        seen = set()
        shown = 0
        for r in sorted(bad, key=lambda r: r["start"]):
            key = (r["outcome"], r["cls"], label(faults_at(r["start"])))
            if key in seen:
                continue
            seen.add(key)
            sample(r)
            shown += 1
            if shown >= 30:
                break
    print()
    print(f"RESULT: sent={sent} served={served} failed={failed} lost={lost} "
          f"(of the failed+lost, {healthy_throughout} had a target healthy throughout)")
    return 1 if failed + lost > 0 else 0


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        sys.exit(0 if len(sys.argv) == 2 else 2)
    sys.exit(main(sys.argv[1]))
