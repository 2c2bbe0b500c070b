#!/usr/bin/env python3
"""Turns loadtest/run.sh's results.jsonl into one table: each figure for the mock directly,
the bare hop and the gateway, the gateway's ratio to the hop and to direct, and the budget
of the performance budget (loadtest/README.md) where one applies. Standard library only."""

import json
import math
import statistics
import sys


def load(path):
    rows = [json.loads(line) for line in open(path) if line.strip()]
    for r in rows:
        if r["kind"] == "oha":
            r["oha"] = json.load(open(r["file"]))
    return rows


def fmt(v, unit=""):
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    if isinstance(v, float):
        if abs(v) >= 100:
            s = f"{v:,.0f}"
        elif abs(v) >= 10:
            s = f"{v:.1f}"
        else:
            s = f"{v:.2f}"
    else:
        s = f"{v:,}"
    return s + unit


def ratio(a, b):
    if a is None or b in (None, 0):
        return None
    return a / b


def group(rows, key):
    """The rows under each key, in run order: one per interleaved round."""
    out = {}
    for r in rows:
        out.setdefault(key(r), []).append(r)
    return out


def percentile(sorted_values, p):
    """The probe's own percentile: the value at rank p/100 * (n - 1), rounded half up."""
    if not sorted_values:
        return 0
    rank = int(math.floor(p / 100 * (len(sorted_values) - 1) + 0.5))
    return sorted_values[min(rank, len(sorted_values) - 1)]


def pool_probe(results):
    """One probe figure from the rounds of one target: every stream's TTFC, gap and total
    pooled before the percentiles are taken. Rounds without samples (run without --samples,
    or a probe that failed outright) keep the first round's figures; the streams that
    completed and the failures are every round's."""
    pooled = dict(results[0])
    pooled["ok"] = sum(r.get("ok", 0) for r in results)
    # -1: a probe that gave no result at all.
    pooled["errors"] = -1 if any(r.get("errors", 0) < 0 for r in results) else sum(r.get("errors", 0) for r in results)
    if len(results) == 1 or not all("ttfc_us" in r for r in results):
        return pooled
    for key in ("records", "deltas", "stalls_over_30ms"):
        pooled[key] = sum(r.get(key, 0) for r in results)
    reads = sum(r.get("reads_with_records", 0) for r in results)
    pooled["records_per_read"] = pooled["records"] / reads if reads else 0.0
    for name in ("ttfc", "gap", "total"):
        values = sorted(v for r in results for v in r[f"{name}_us"])
        for p in (50, 90, 99):
            pooled[f"{name}_p{p}_us"] = percentile(values, p)
        pooled[f"{name}_max_us"] = values[-1] if values else 0
    return pooled


class Table:
    def __init__(self):
        self.rows = []

    def section(self, title):
        self.rows.append(("##", title))

    def row(self, name, direct, hop, gw, unit="", goal="", ok=None, ratios=True):
        r_hop = ratio(gw, hop) if ratios else None
        r_dir = ratio(gw, direct) if ratios else None
        verdict = "" if ok is None else ("PASS" if ok else "FAIL")
        self.rows.append(
            (
                name,
                fmt(direct, unit),
                fmt(hop, unit),
                fmt(gw, unit),
                "-" if r_hop is None else f"{r_hop:.2f}x",
                "-" if r_dir is None else f"{r_dir:.2f}x",
                goal,
                verdict,
            )
        )

    def print(self):
        head = ("figure", "direct", "hop", "gateway", "gw/hop", "gw/direct", "goal", "")
        widths = [len(h) for h in head]
        for r in self.rows:
            if r[0] != "##":
                widths = [max(w, len(c)) for w, c in zip(widths, r)]
        line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"
        print(line(head))
        print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        for r in self.rows:
            if r[0] == "##":
                print(line((f"**{r[1]}**",) + ("",) * (len(head) - 1)))
            else:
                print(line(r))


def main(path):
    rows = load(path)
    runs = [r for r in rows if r["kind"] == "oha"]
    # Each figure pools its target's interleaved rounds (one round in older results).
    oha = group((r for r in runs if not r.get("rate")), lambda r: (r["target"], r["mode"], r["c"]))
    fixed = group((r for r in runs if r.get("rate")), lambda r: (r["target"], r["mode"]))
    probes = {
        key: pool_probe([r["result"] for r in results])
        for key, results in group(
            (r for r in rows if r["kind"] == "probe"), lambda r: (r["target"], r["result"].get("label"))
        ).items()
    }
    memory = {(r["test"], r["target"], r["streams"]): r for r in rows if r["kind"] == "memory"}
    idle = next((r for r in rows if r["kind"] == "idle"), {})
    idle_fresh = next((r for r in rows if r["kind"] == "idle_fresh"), {})
    peak = next((r for r in rows if r["kind"] == "peak_after_oha"), {})
    t = Table()
    verdicts = []

    def check(name, ok):
        verdicts.append((name, ok))
        return ok

    # Every helper below takes the rounds of one figure and pools them.
    def requests(rs):
        return sum(sum(r["oha"].get("statusCodeDistribution", {}).values()) for r in rs)

    def errors(rs):
        bad = 0
        for r in rs:
            o = r["oha"]
            bad += sum(v for k, v in o.get("statusCodeDistribution", {}).items() if not k.startswith("2"))
            # oha aborts the requests in flight at the deadline; those are not failures.
            bad += sum(v for k, v in o.get("errorDistribution", {}).items() if "deadline" not in k)
        return bad

    server_of = {"direct": "mock", "hop": "hop", "gateway": "gateway"}

    def secs(rs):
        return sum(r["oha"]["summary"].get("total") or 0 for r in rs)

    def ticks(rs):
        return sum(r["cpu_ticks"][server_of[r["target"]]] / r["clk_tck"] for r in rs)

    def throughput(rs):
        # oha's requests per second of each round, weighted by the round's length.
        total = secs(rs)
        return None if not total else sum(r["oha"]["summary"]["requestsPerSec"] * r["oha"]["summary"]["total"] for r in rs) / total

    def cpu_us(rs):
        n = requests(rs)
        return None if n == 0 else ticks(rs) / n * 1e6

    def busy(rs):
        # The server's CPU time over the runs' length, in one CPU: near 100 % means the server
        # was the limit, not the load generator or the mock.
        total = secs(rs)
        return None if not total else ticks(rs) / total * 100

    def pct(rs, p):
        # Latency percentiles are not poolable from oha's summaries: the median of the rounds'.
        values = [r["oha"].get("latencyPercentiles", {}).get(p) for r in rs]
        values = [v for v in values if v is not None]
        return None if not values else statistics.median(values) * 1e6

    def cpu_ratio_by_round(hs, gs):
        # The gateway's CPU per request over the hop's, round by round: how far the machine
        # moved the ratio within this run.
        pairs = [ratio(cpu_us([g]), cpu_us([h])) for h, g in zip(hs, gs)]
        return " / ".join("-" if p is None else f"{p:.2f}" for p in pairs)

    for mode in ("nonstream", "stream"):
        t.section(f"oha, {mode}: throughput and latency")
        for c in (1, 32, 256):
            d, h, g = (oha.get((x, mode, c)) for x in ("direct", "hop", "gateway"))
            if not (d and h and g):
                continue
            rps = [throughput(x) for x in (d, h, g)]
            goal, ok = "", None
            if mode == "nonstream" and c in (32, 256):
                goal = ">= 0.8x hop (aim 0.9)"
                ok = check(f"non-stream throughput c={c}", rps[2] >= 0.8 * rps[1])
            t.row(f"c={c} req/s", *rps, goal=goal, ok=ok)
            errs = [errors(x) for x in (d, h, g)]
            t.row(f"c={c} failed requests", *errs, ratios=False, goal="0", ok=check(f"{mode} c={c} errors", errs[2] == 0))
            for p in ("p50", "p99"):
                t.row(f"c={c} latency {p}", *(pct(x, p) for x in (d, h, g)), unit=" us")
            if c == 1:
                for p, budget in (("p50", "hop + 40 us"), ("p99", "<= 2x hop")):
                    dv, hv, gv = (pct(x, p) for x in (d, h, g))
                    added_h, added_g = hv - dv, gv - dv
                    ok = added_g <= added_h + 40 if p == "p50" else added_g <= 2 * max(added_h, 1)
                    t.row(f"c=1 added latency {p} vs direct", None, added_h, added_g, unit=" us",
                          goal=budget, ok=check(f"{mode} added latency {p}", ok))
            cpu = [cpu_us(x) for x in (d, h, g)]
            goal, ok = "", None
            if c in (32, 256):
                goal = "<= 1.3x hop"
                ok = check(f"{mode} CPU/request c={c}", cpu[2] <= 1.3 * cpu[1])
            t.row(f"c={c} server CPU per request", *cpu, unit=" us", goal=goal, ok=ok)
            if c in (32, 256):
                if len(g) > 1:
                    t.row(f"c={c} CPU gw/hop by round", None, None, cpu_ratio_by_round(h, g), ratios=False)
                t.row(f"c={c} server CPU busy", *(busy(x) for x in (d, h, g)), unit=" %", ratios=False)

    for mode in ("nonstream", "stream"):
        d, h, g = (fixed.get((x, mode)) for x in ("direct", "hop", "gateway"))
        if not (d and h and g):
            continue
        rate = g[0]["rate"]
        t.section(f"oha, {mode} at a fixed {rate:,} req/s, c=32: the same load on every server")
        rps = [throughput(x) for x in (d, h, g)]
        # A server that cannot keep up with the rate is not at the same load: no verdict then.
        held = all(x >= 0.95 * rate for x in rps)
        t.row("req/s", *rps, ratios=False, goal=f">= 95 % of {rate:,}", ok=held)
        for p in ("p50", "p99"):
            t.row(f"latency {p}", *(pct(x, p) for x in (d, h, g)), unit=" us")
        cpu = [cpu_us(x) for x in (d, h, g)]
        t.row("server CPU per request", *cpu, unit=" us", goal="<= 1.3x hop",
              ok=check(f"{mode} CPU/request at {rate}/s", held and cpu[2] <= 1.3 * cpu[1]))
        if len(g) > 1:
            t.row("CPU gw/hop by round", None, None, cpu_ratio_by_round(h, g), ratios=False)

    t.section("upstream connection reuse during the oha runs (accepted at the mock)")
    reuse = {}
    for target in ("direct", "hop", "gateway"):
        conns = reqs = 0
        for r in runs:
            if r["target"] == target:
                conns += r["mock_after"]["connections"] - r["mock_before"]["connections"]
                reqs += r["mock_after"]["requests"] - r["mock_before"]["requests"]
        reuse[target] = (conns, reqs)
    t.row("connections accepted", *(reuse[x][0] for x in ("direct", "hop", "gateway")), ratios=False)
    t.row("requests served", *(reuse[x][1] for x in ("direct", "hop", "gateway")), ratios=False)
    rr = [None if reuse[x][1] == 0 else 100.0 * (1 - reuse[x][0] / reuse[x][1]) for x in ("direct", "hop", "gateway")]
    t.row("connection reuse", *rr, unit=" %", ratios=False, goal=">= 99 %",
          ok=check("upstream connection reuse", rr[2] is not None and rr[2] >= 99.0))

    for c in (1, 32):
        label = f"latency-c{c}"
        d, h, g = (probes.get((x, label)) for x in ("direct", "hop", "gateway"))
        if not (d and h and g):
            continue
        t.section(f"streaming probe, c={c}: 100 frames, 1 ms apart")
        errs = [x.get("errors") for x in (d, h, g)]
        t.row("streams ok / failed", f"{d.get('ok')}/{errs[0]}", f"{h.get('ok')}/{errs[1]}", f"{g.get('ok')}/{errs[2]}",
              ratios=False, goal="0 failed", ok=check(f"probe c={c} errors", errs[2] == 0))
        for key in ("ttfc_p50_us", "ttfc_p99_us", "gap_p50_us", "gap_p99_us", "total_p50_us", "total_p99_us"):
            t.row(key.replace("_us", ""), *(x.get(key) for x in (d, h, g)), unit=" us")
        for p, goal in (("p50", "hop + 60 us"), ("p99", "< 1,000 us")):
            dv, hv, gv = (x.get(f"ttfc_{p}_us") for x in (d, h, g))
            ah, ag = hv - dv, gv - dv
            ok = ag <= ah + 60 if p == "p50" else ag < 1000
            t.row(f"added ttfc {p} vs direct", None, ah, ag, unit=" us", goal=goal, ok=check(f"c={c} added TTFC {p}", ok))
        gp = [x.get("gap_p50_us") for x in (d, h, g)]
        t.row("gap p50 minus hop's", None, 0, gp[2] - gp[1], unit=" us", ratios=False, goal="within 20 us",
              ok=check(f"c={c} gap p50", abs(gp[2] - gp[1]) <= 20))
        t.row("records per body read", *(x.get("records_per_read") for x in (d, h, g)), ratios=False,
              goal="1.00 (one event out per event in)", ok=check(f"c={c} one event per read", abs(g.get("records_per_read", 0) - 1.0) < 0.02))
        st = [x.get("stalls_over_30ms") for x in (d, h, g)]
        t.row("waits over 30 ms (Nagle)", *st, ratios=False, goal="0", ok=check(f"c={c} no Nagle stall", st[2] == 0))

    t.section("memory")
    t.row("idle RSS at start", idle.get("mock_kb", 0) / 1024, idle.get("hop_kb", 0) / 1024, idle.get("gateway_kb", 0) / 1024,
          unit=" MiB", goal="< 16 MiB", ok=check("idle RSS", idle.get("gateway_kb", 1e9) < 16 * 1024))
    if idle_fresh:
        t.row("idle RSS, fresh process after the run", None, idle_fresh["hop_kb"] / 1024, idle_fresh["gateway_kb"] / 1024, unit=" MiB")
    if peak:
        t.row("peak RSS over the oha runs", peak["mock_kb"] / 1024, peak["hop_kb"] / 1024, peak["gateway_kb"] / 1024, unit=" MiB")
    for (test, _, n) in sorted({(k[0], None, k[2]) for k in memory}, key=lambda k: (k[0] != "hold", k[2])):
        h, g = memory.get((test, "hop", n)), memory.get((test, "gateway", n))
        if not g:
            continue
        ph, pg = probes.get(("hop", f"{test}-{n}"), {}), probes.get(("gateway", f"{test}-{n}"), {})
        per = [None if x is None else (x["peak_kb"] - x["base_kb"]) / n for x in (h, g)]
        if test == "hold":
            t.row(f"{n:,} held streams: failed", None, ph.get("errors"), pg.get("errors"), ratios=False, goal="0",
                  ok=check(f"{n} held streams without errors", pg.get("errors") == 0))
            t.row(f"{n:,} held streams: peak RSS", None, h and h["peak_kb"] / 1024, g["peak_kb"] / 1024, unit=" MiB")
            # Without a hop run (UPSTREAM_HTTP2=1) there is nothing to compare with.
            t.row(f"{n:,} held streams: RSS per stream", None, per[0], per[1], unit=" KiB",
                  goal="<= 1.2x hop" if h else "(hop not run)",
                  ok=check(f"{n} streams RSS per stream", per[1] <= 1.2 * per[0]) if h else None)
        else:
            t.row(f"{n} stalled clients: RSS per stream", None, per[0], per[1], unit=" KiB", goal="<= 256 KiB",
                  ok=check("stalled client memory", per[1] <= 256))
            t.row(f"{n} stalled clients: failed", None, ph.get("errors"), pg.get("errors"), ratios=False)

    t.print()
    passed = sum(1 for _, ok in verdicts if ok)
    print(f"\nbudget items met: {passed} of {len(verdicts)}")
    for name, ok in verdicts:
        if not ok:
            print(f"  missed: {name}")


if __name__ == "__main__":
    main(sys.argv[1])
