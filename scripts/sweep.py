#!/usr/bin/env python3
"""Batch-size sweep (issue 7, docs/contract.md §11): runs a 3-stage topology (RandomSentenceSpout -> split ->
count) with topology.producer.batch.size b = 1, 10, 100, 1000, at a fixed offered rate and at full
speed; prints throughput and p50/p99 end-to-end latency per b; fits the lecture's micro-batch model
(throughput = b / (2Ln + b*Ls)) to the full-speed points; draws measured points and fitted curve as
an SVG. Usage: sweep.py GALE OUTDIR SVG [--rate R] [--secs S]"""
import json, math, os, subprocess, sys

gale, out, svg = sys.argv[1], sys.argv[2], sys.argv[3]
args = sys.argv[4:]
rate = float(args[args.index("--rate") + 1]) if "--rate" in args else 20000
secs = float(args[args.index("--secs") + 1]) if "--secs" in args else 4
os.makedirs(out, exist_ok=True)
BATCHES = [1, 10, 100, 1000]


def run(b, offered, mode_line=""):
    y = os.path.join(out, f"sweep-{b}-{'rate' if offered else 'full'}.yaml")
    spout_props = f'properties: [{{name: "ratePerSecond", value: {offered}}}]' if offered else ""
    batching = mode_line or f"""topology.producer.batch.size: {b}
  topology.batch.flush.interval.millis: {0 if b == 1 else 1}"""
    with open(y, "w") as f:
        f.write(f"""name: "sweep"
config:
  topology.acker.executors: 0
  {batching}
spouts:
  - id: "sentences"
    className: "RandomSentenceSpout"
    {spout_props}
bolts:
  - {{id: "split", className: "SplitSentenceBolt"}}
  - {{id: "count", className: "WordCountBolt"}}
streams:
  - {{from: "sentences", to: "split", grouping: {{type: SHUFFLE}}}}
  - {{from: "split", to: "count", grouping: {{type: FIELDS, args: ["word"]}}}}
""")
    m = os.path.join(out, "m.json")
    subprocess.run([gale, "local", y, "--duration", str(secs), "--metrics-json", m],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(m) as f:
        r = json.load(f)
    count = next(c for c in r["components"] if c["id"] == "count")
    lat = r.get("latency") or {}
    run.p999 = lat.get("p999_ms", float("nan"))
    return count["executed"] / r["elapsed_secs"], lat.get("p50_ms", float("nan")), lat.get("p99_ms", float("nan"))


# Issue 7's latency criterion as such: gale.mode latency (batch 1, no flush wait) at 10k tuples/s
# offered by the spout, through the same 3 stages.
thr, p50, p99 = run(1, 10000, "gale.mode: latency")
print(f"bench: latency-mode offered_tuples_per_s=10000 tuples_per_s={thr:.0f} p50_ms={p50:.3f} "
      f"p99_ms={p99:.3f} p999_ms={run.p999:.3f} (3 stages; count executes ~6.4 words per sentence)")


rows = []
for b in BATCHES:
    thr_r, p50_r, p99_r = run(b, rate)
    thr_f, p50_f, p99_f = run(b, None)
    rows.append((b, thr_r, p50_r, p99_r, thr_f, p50_f, p99_f))
    print(f"bench: sweep b={b} offered_sentences_per_s={rate:.0f} tuples_per_s={thr_r:.0f} p50_ms={p50_r:.3f} p99_ms={p99_r:.3f} "
          f"full_tuples_per_s={thr_f:.0f} full_p50_ms={p50_f:.3f} full_p99_ms={p99_f:.3f}")

# Fit 1/throughput = 2Ln/b + Ls (least squares in x = 1/b) on the full-speed points.
xs = [1 / r[0] for r in rows]
ys = [1 / r[4] for r in rows]
n = len(xs)
mx, my = sum(xs) / n, sum(ys) / n
slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
ls = my - slope * mx
ln = slope / 2
pred = [b / (2 * ln + b * ls) for b in BATCHES]
errs = [abs(p - r[4]) / r[4] for p, r in zip(pred, rows)]
print(f"bench: sweep-model Ln_us={ln * 1e6:.3f} Ls_us={ls * 1e6:.4f} "
      f"max_rel_error={max(errs):.3f} mean_rel_error={sum(errs) / n:.3f} "
      f"(throughput = b / (2Ln + b*Ls), fitted to full-speed points)")

# SVG: throughput vs b (log x), measured and fitted; p99 latency at the fixed rate on a second axis.
W, H, L, R, T, B = 640, 400, 70, 70, 30, 50
def xpos(b): return L + (math.log10(b) / 3) * (W - L - R)
tmax = max(max(r[4] for r in rows), max(pred)) * 1.1
def ypos(t): return T + (1 - t / tmax) * (H - T - B)
lmax = max(max(r[3] for r in rows if not math.isnan(r[3])), 0.001) * 1.2
def ylat(v): return T + (1 - v / lmax) * (H - T - B)
parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
         f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<text x="{W/2}" y="18" text-anchor="middle">Gale batch-size sweep: throughput (full speed) and p99 latency (at {rate:.0f} sentences/s)</text>',
         f'<line x1="{L}" y1="{H-B}" x2="{W-R}" y2="{H-B}" stroke="black"/>',
         f'<line x1="{L}" y1="{T}" x2="{L}" y2="{H-B}" stroke="black"/>',
         f'<line x1="{W-R}" y1="{T}" x2="{W-R}" y2="{H-B}" stroke="black"/>']
for b in BATCHES:
    parts.append(f'<text x="{xpos(b)}" y="{H-B+16}" text-anchor="middle">b={b}</text>')
for i in range(5):
    t = tmax * i / 4
    parts.append(f'<text x="{L-6}" y="{ypos(t)+4}" text-anchor="end">{t/1e6:.1f}M</text>')
    v = lmax * i / 4
    parts.append(f'<text x="{W-R+6}" y="{ylat(v)+4}">{v:.2f}ms</text>')
curve = " ".join(f"{xpos(b):.1f},{ypos(b / (2*ln + b*ls)):.1f}" for b in [10 ** (k / 20) for k in range(0, 61)])
parts.append(f'<polyline points="{curve}" fill="none" stroke="steelblue" stroke-dasharray="5,3"/>')
for r in rows:
    parts.append(f'<circle cx="{xpos(r[0]):.1f}" cy="{ypos(r[4]):.1f}" r="4" fill="steelblue"/>')
    if not math.isnan(r[3]):
        parts.append(f'<rect x="{xpos(r[0])-4:.1f}" y="{ylat(r[3])-4:.1f}" width="8" height="8" fill="darkorange"/>')
parts.append(f'<text x="{L+10}" y="{T+14}" fill="steelblue">● throughput (tuples/s at the last bolt), dashed: fitted model Ln={ln*1e6:.2f}us Ls={ls*1e6:.3f}us</text>')
parts.append(f'<text x="{L+10}" y="{T+30}" fill="darkorange">■ p99 end-to-end latency at a fixed offered rate (right axis)</text>')
parts.append("</svg>")
with open(svg, "w") as f:
    f.write("\n".join(parts))
print(f"bench: sweep-plot path={svg}")
