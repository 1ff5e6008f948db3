#!/usr/bin/env python3
"""Issue 12's harness: weir beside the plain-Python reference, at several table sizes, in one run.

For each size it serves `SKU Candidates` grown to that many rows from `weir sim airtable` (rate
limit off, in its own process, so the simulator's CPU is not weir's), then ingests it four ways,
each into a fresh warehouse, each timed by /usr/bin/time -v on the ingesting process alone:

    weir cdc      `weir run`, the table's own ingestion (cdc, SCD 1 upsert on id)
    weir append   `weir run` with scd_type APPEND_ONLY
    python upsert benches/airtable_to_delta.py --mode upsert (requests, pyarrow, deltalake merge)
    python append benches/airtable_to_delta.py --mode append

and prints one table: wall time, rows/s, the process's CPU (user + sys) per row, and peak RSS.
Three more ways are there when their programs are given:

    read path     --read-path BIN: the read_path bench (host/runtime/benches/read_path.rs), one
                  round at the size; two rows, `sandbox read` and `native read` (a third,
                  `other read`, with WEIR_BENCH_COMPARE set): the same
                  connector through wasmtime and compiled natively (read + convert to Arrow, no
                  sink), its own in-process simulator; read + convert is the reading thread's
                  CPU, and CPU all of weir's threads' (the simulator's left out)
    spark weir    --spark-python PY (a Python with pyspark and this package) and --airtable-wasm:
                  Spark local[2] counting the table through weir's `lakeflow_connect` source
                  (host/spark/bench/spark_rows.py --only-weir); wall is the read, CPU the whole
                  process tree's (the JVM's start included), RSS the sum of its processes' peaks

The Python script also reports its own read + convert CPU (JSON parsing and Arrow building, its
HTTP exchanges and Delta writes left out, as weir's HTTP client and sink are), and the
run ends with issue 12's done-means at each size: read + convert per row through the sandbox,
natively and in Python, and weir's upsert against its append.
With --paced N it also runs host/cli/bench/paced_six_tables.sh N (all six tables at Airtable's
limit). With --plot FILE it writes an SVG of rows/s against table size. --baseline BIN adds the
ways `baseline cdc` and `baseline append` (another weir build, for a before/after in one run), and
--rounds N runs the ways N times in turn, so that a noisy machine drifts over all of them alike.

    python3 benches/harness.py --weir target/release/weir \
        --python /path/to/venv/bin/python --sizes 10000,50000,200000,1000000 \
        --plot benches/rows_per_second.svg --paced 2

    # issue 12's done-means in one run at 200,000 rows
    cargo bench -p weir-runtime --bench read_path --no-run     # prints the bench binary's path
    python3 benches/harness.py --weir target/release/weir --python VENV/bin/python --sizes 200000 \
        --ways "read path,weir cdc,weir append,python upsert,python append,spark weir" --rounds 2 \
        --read-path target/release/deps/read_path-HASH --spark-python SPARK_VENV/bin/python \
        --airtable-wasm target/release/build/weir-artifacts-HASH/out/airtable.wasm --paced 2

The Python interpreter needs requests, pyarrow and deltalake (requirements-test.txt + requests);
SPARK_VENV needs pyspark 4.3, requests and weir's package built for release (`pip install ./host/spark`).
"""

import argparse
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TOKEN = "patWeirSim.0123456789abcdef0123456789abcdef"
TABLE = "SKU Candidates"
COMMIT_ROWS = 50_000


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed(cmd, env=None, cwd=None):
    """Runs cmd under /usr/bin/time -v: (stdout, wall s, cpu s, peak RSS MiB)."""
    with tempfile.NamedTemporaryFile("r") as report:
        started = time.monotonic()
        proc = subprocess.run(
            ["/usr/bin/time", "-v", "-o", report.name, *cmd],
            env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        wall = time.monotonic() - started
        text = report.read()
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    field = lambda name: float(re.search(rf"{name}: ([0-9.]+)", text).group(1))  # noqa: E731
    cpu = field(r"User time \(seconds\)") + field(r"System time \(seconds\)")
    rss = field(r"Maximum resident set size \(kbytes\)") / 1024
    return proc.stdout, wall, cpu, rss


class Simulator:
    def __init__(self, weir, rows):
        self.port = free_port()
        self.log = tempfile.NamedTemporaryFile("w+")
        self.proc = subprocess.Popen(
            [weir, "sim", "airtable", "--port", str(self.port), "--rows", str(rows), "--table", TABLE,
             "--no-rate-limit"],
            stdout=self.log, stderr=subprocess.STDOUT,
        )
        # The port accepts connections before the tables are grown: wait for an answer, so that
        # the growth is not counted in the first way's wall time.
        deadline = time.monotonic() + 600
        request = urllib.request.Request(
            f"{self.url}/v0/meta/bases/appProductLaunch/tables", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(request, timeout=600).read()
                return
            except OSError:
                if self.proc.poll() is not None:
                    sys.exit(f"the simulator exited: {open(self.log.name).read()}")
                time.sleep(0.5)
        sys.exit("the simulator did not answer in 10 minutes")

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def weir_run(weir, sim, work, append, connector):
    with open(os.path.join(work, "token"), "w") as f:
        f.write(TOKEN)
    with open(os.path.join(work, "connections.toml"), "w") as f:
        unsigned = "allow_unsigned = true\n" if connector.endswith(".wasm") else ""
        f.write(
            f'[connections.airtable]\nconnector = {json.dumps(connector)}\nbase_id = "appProductLaunch"\n'
            f'base_url = "{sim.url}"\nbearer_token = {{ file = "token" }}\nallow_loopback = true\n{unsigned}'
            # The simulator's limit is off; so is weir's pacing, to measure weir and not the limit.
            '[connections.airtable.rate_limits]\n"base:{base}" = 100000\n"token:{bearer_token}" = 100000\n'
        )
    config = {"checkpoint_records": str(COMMIT_ROWS)}
    if append:
        config["scd_type"] = "APPEND_ONLY"
    spec = {"connection_name": "airtable", "objects": [{"table": {"source_table": TABLE, "table_configuration": config}}]}
    with open(os.path.join(work, "pipeline.json"), "w") as f:
        json.dump(spec, f)
    out, wall, cpu, rss = timed(
        [weir, "run", "pipeline.json", "--warehouse", "wh", "--commit-rows", str(COMMIT_ROWS), "--json"], cwd=work
    )
    report = json.loads(out)
    report = report[0] if isinstance(report, list) else report
    if report.get("error"):
        sys.exit(f"weir run failed: {report['error']}")
    return report["rows_read"], wall, cpu, rss


def python_run(python, sim, work, mode):
    """(rows, wall s, CPU s, peak RSS MiB, read + convert CPU s)."""
    env = dict(os.environ, AIRTABLE_TOKEN=TOKEN)
    out, wall, cpu, rss = timed(
        [python, os.path.join(HERE, "airtable_to_delta.py"), "--base-url", sim.url, "--base-id", "appProductLaunch",
         "--table", TABLE, "--out", os.path.join(work, "py"), "--mode", mode, "--commit-rows", str(COMMIT_ROWS)],
        env=env,
    )
    summary = json.loads(out.strip().splitlines()[-1])
    return summary["rows"], wall, cpu, rss, summary["read_convert_cpu_s"]


def read_path_run(bench, size):
    """One round of the read_path bench: {path: (rows, wall s, the reading thread's CPU s, all weir
    threads' CPU s)} for `sandbox` and `native` (and `other`, when WEIR_BENCH_COMPARE is set)."""
    proc = subprocess.run([bench, "--bench"], env=dict(os.environ, WEIR_BENCH_ROWS=str(size), WEIR_BENCH_ROUNDS="1"),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        sys.exit(f"the read_path bench failed:\n{proc.stdout}")
    paths = {}
    for line in proc.stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 9 and cells[0].isdigit():
            path = cells[1].split(" ")[0]
            rows = int(cells[2])  # CPU from its µs a row, which carries more digits than its seconds
            cpu = lambda cell: float(cell) * rows / 1e6  # noqa: E731
            paths[path] = (rows, max(float(cells[7]), 0.05), cpu(cells[5]), cpu(cells[8]))  # wall to 0.1 s
    if not {"sandbox", "native"} <= set(paths):
        sys.exit(f"the read_path bench printed no figures for both paths:\n{proc.stdout}")
    return paths


def spark_run(python, wasm, sim):
    """Spark counting the table through weir's source: (rows, read s, CPU s, peak RSS MiB), CPU and
    RSS of all its processes as the script reports them (rusage would miss the JVM)."""
    # Spark's Python workers, and its lookup of installed data sources, run PYSPARK_PYTHON.
    env = dict(os.environ, PYSPARK_PYTHON=python,
               PATH=os.pathsep.join([os.path.dirname(python), os.environ.get("PATH", "")]))
    out, _, _, _ = timed(
        [python, os.path.join(ROOT, "host", "spark", "bench", "spark_rows.py"), "--sim-url", sim.url,
         "--airtable-wasm", wasm, "--only-weir"],
        env=env,
    )
    summary = json.loads(out.strip().splitlines()[-1])
    return summary["rows"], summary["seconds"], summary["cpu_s"], summary["peak_rss_mib"]


def median(values):
    values, n = sorted(values), len(values)
    return (values[(n - 1) // 2] + values[n // 2]) / 2 if values else None


def done_means(results, size):
    """Issue 12's done-means at one size, from the medians of its rounds."""
    at = lambda way, key: median([r[key] / r["rows"] * 1e6 for r in results  # noqa: E731
                                  if r["size"] == size and r["way"] == way and r.get(key) is not None])
    sandbox, native = at("sandbox read", "read_cpu"), at("native read", "read_cpu")
    sandbox_all, native_all = at("sandbox read", "cpu"), at("native read", "cpu")
    python = median([r["read_cpu"] / r["rows"] * 1e6 for r in results
                     if r["size"] == size and r["way"].startswith("python ")])
    cdc, append = at("weir cdc", "cpu"), at("weir append", "cpu")
    lines = []
    if sandbox:
        lines.append(f"read + convert through the sandbox: {sandbox:.2f} µs a row (target ≤ 5)")
    if sandbox and native:
        lines.append(f"sandbox / native: {sandbox / native:.2f}× ({native:.2f} µs natively; target ≤ 1.3×)")
    if sandbox_all and native_all:
        lines.append(f"the same with all of weir's threads: {sandbox_all:.2f} µs sandboxed, {native_all:.2f} µs "
                     f"natively ({sandbox_all / native_all:.2f}×)")
    if sandbox and python:
        lines.append(f"Python's read + convert: {python:.2f} µs a row, {python / sandbox:.1f}× weir's (target ≥ 8×)")
    if cdc and append:
        lines.append(f"weir upsert (cdc) / append, process CPU a row: {cdc / append:.2f}× (target ≤ 2×)")
    return lines


def plot(results, path):
    """An SVG line chart: rows/s (linear) against table size (log), one line per way."""
    ways = list(dict.fromkeys(r["way"] for r in results))
    sizes = sorted({r["size"] for r in results})
    colors = ["#1f77b4", "#2ca02c", "#d62728", "#ff7f0e", "#9467bd"]
    w, h, left, bottom, top, right = 640, 360, 70, 50, 20, 150
    top_rate = max(r["rows_per_s"] for r in results) * 1.1
    lo, hi = math.log10(min(sizes)), math.log10(max(sizes))
    x = lambda s: left + (w - left - right) * ((math.log10(s) - lo) / ((hi - lo) or 1))  # noqa: E731
    y = lambda v: h - bottom - (h - bottom - top) * v / top_rate  # noqa: E731
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<line x1="{left}" y1="{h - bottom}" x2="{w - right}" y2="{h - bottom}" stroke="black"/>',
           f'<line x1="{left}" y1="{top}" x2="{left}" y2="{h - bottom}" stroke="black"/>',
           f'<text x="{(w - right + left) / 2}" y="{h - 10}" text-anchor="middle">rows in the table (log scale)</text>',
           f'<text x="15" y="{(h - bottom + top) / 2}" transform="rotate(-90 15 {(h - bottom + top) / 2})" '
           'text-anchor="middle">rows/s, end to end</text>']
    for s in sizes:
        out.append(f'<text x="{x(s)}" y="{h - bottom + 15}" text-anchor="middle">{s:,}</text>')
    step = 10 ** math.floor(math.log10(top_rate / 2))
    for i in range(0, int(top_rate / step) + 1):
        v = i * step
        out.append(f'<text x="{left - 5}" y="{y(v) + 4}" text-anchor="end">{v:,.0f}</text>')
        out.append(f'<line x1="{left}" y1="{y(v)}" x2="{w - right}" y2="{y(v)}" stroke="#ddd"/>')
    for i, way in enumerate(ways):
        pts = sorted((r["size"], r["rows_per_s"]) for r in results if r["way"] == way)
        color = colors[i % len(colors)]
        out.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="'
                   + " ".join(f"{x(s):.1f},{y(v):.1f}" for s, v in pts) + '"/>')
        out.extend(f'<circle cx="{x(s):.1f}" cy="{y(v):.1f}" r="3" fill="{color}"/>' for s, v in pts)
        out.append(f'<text x="{w - right + 10}" y="{top + 15 * i + 10}" fill="{color}">{way}</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weir", default=os.path.join(ROOT, "target", "release", "weir"))
    p.add_argument("--python", default=sys.executable, help="a Python with requests, pyarrow and deltalake")
    p.add_argument("--sizes", default="10000,50000,200000")
    p.add_argument("--connector", default="airtable",
                   help="the bundled connector, or a .wasm built by `weir build` (to compare builds)")
    p.add_argument("--ways", default="weir cdc,weir append,python upsert,python append")
    p.add_argument("--plot", help="write an SVG of rows/s against table size here")
    p.add_argument("--paced", type=int, default=0, help="runs of the six-table paced ingest (0: none)")
    p.add_argument("--baseline", help="another weir binary, for the ways 'baseline cdc' and 'baseline append'")
    p.add_argument("--rounds", type=int, default=1,
                   help="run the ways this many times in turn at each size (the plot takes medians)")
    p.add_argument("--read-path", help="the read_path bench's binary, for the way 'read path'")
    p.add_argument("--spark-python", help="a Python with pyspark and weir's package, for the way 'spark weir'")
    p.add_argument("--airtable-wasm", help="the packaged airtable.wasm of the build, for the way 'spark weir'")
    args = p.parse_args()

    ways = [w.strip() for w in args.ways.split(",")]
    if "read path" in ways and not args.read_path:
        sys.exit("the way 'read path' needs --read-path (cargo bench -p weir-runtime --bench read_path --no-run)")
    if "spark weir" in ways and not (args.spark_python and args.airtable_wasm):
        sys.exit("the way 'spark weir' needs --spark-python and --airtable-wasm")
    results = []
    print(f"{'rows':>9}  {'way':<14} {'rows read':>10} {'wall s':>8} {'rows/s':>9} {'CPU s':>8} {'CPU µs/row':>10} "
          f"{'peak RSS MiB':>12} {'read+convert µs/row':>19}", flush=True)
    for size in [int(s) for s in args.sizes.split(",")]:
        sim = Simulator(args.weir, size)
        try:
            for way in [w for _ in range(args.rounds) for w in ways]:
                work = tempfile.mkdtemp(prefix="weir-harness-")
                runs = []
                try:
                    engine, how = way.split()
                    if way == "read path":
                        for path, (rows, wall, read_cpu, cpu) in read_path_run(args.read_path, size).items():
                            runs.append({"way": f"{path} read", "rows": rows, "wall": wall, "cpu": cpu,
                                         "read_cpu": read_cpu})
                    elif way == "spark weir":
                        rows, wall, cpu, rss = spark_run(args.spark_python, args.airtable_wasm, sim)
                        runs.append({"way": way, "rows": rows, "wall": wall, "cpu": cpu, "rss": rss})
                    elif engine in ("weir", "baseline"):
                        weir = args.weir if engine == "weir" else args.baseline
                        rows, wall, cpu, rss = weir_run(weir, sim, work, how == "append", args.connector)
                        runs.append({"way": way, "rows": rows, "wall": wall, "cpu": cpu, "rss": rss})
                    else:
                        rows, wall, cpu, rss, read_cpu = python_run(args.python, sim, work, how)
                        runs.append({"way": way, "rows": rows, "wall": wall, "cpu": cpu, "rss": rss, "read_cpu": read_cpu})
                finally:
                    shutil.rmtree(work, ignore_errors=True)
                for r in runs:
                    r.update(size=size, rows_per_s=r["rows"] / r["wall"])
                    results.append(r)
                    rss = f"{r['rss']:>12.0f}" if "rss" in r else f"{'—':>12}"
                    read = f"{r['read_cpu'] / r['rows'] * 1e6:>19.1f}" if "read_cpu" in r else f"{'—':>19}"
                    print(f"{size:>9,}  {r['way']:<14} {r['rows']:>10,} {r['wall']:>8.1f} {r['rows_per_s']:>9,.0f} "
                          f"{r['cpu']:>8.1f} {r['cpu'] / r['rows'] * 1e6:>10.1f} {rss} {read}", flush=True)
        finally:
            sim.stop()
    print("\n(sandbox read, native read: read + convert, no sink; their CPU is all of weir's threads', the simulator's "
          "left out, and their read + convert the reading thread's alone; every other way's CPU is the whole process's)",
          flush=True)
    for size in [int(s) for s in args.sizes.split(",")]:
        lines = done_means(results, size)
        if lines:
            print(f"\nissue 12 at {size:,} rows (medians of the rounds):")
            print("\n".join(f"  {line}" for line in lines), flush=True)
    if args.plot:
        runs = {}
        for r in results:
            if not r["way"].endswith(" read"):  # the read path's rows/s are not end to end
                runs.setdefault((r["size"], r["way"]), []).append(r)
        plot([sorted(rs, key=lambda r: r["rows_per_s"])[len(rs) // 2] for rs in runs.values()], args.plot)
        print(f"plot: {args.plot}")
    if args.paced:
        print("\nsix tables at Airtable's limit (5 requests/s per base):", flush=True)
        subprocess.run([os.path.join(ROOT, "host", "cli", "bench", "paced_six_tables.sh"), args.weir, str(args.paced)],
                       check=True)


if __name__ == "__main__":
    main()
