"""``quagga rtl coverage``: run the CI cocotb set and write its functional coverage report.

    quagga rtl coverage --out reports/rtl

Writes ``coverage.json`` (hits per bin of every cover point, merged over the CI runs) and
``coverage.md``; exit status 1 when a required bin is missed or a run fails.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from quant.fileio import write_text_atomic


def configure_coverage(sub) -> None:
    p = sub.add_parser("coverage", help="functional coverage of the CI cocotb set: coverage.md, coverage.json")
    p.add_argument("--out", default="reports/rtl", help="directory for coverage.md and coverage.json")
    p.add_argument("--build-dir", default="build/rtl/coverage", help="scratch directory (default build/rtl/coverage)")


def run_coverage(args) -> int:
    from quagga.commands.rtl_pnr import machine
    from rtl.ci_set import CI_RUNS, run_ci
    from rtl.coverage import markdown, merge

    t0 = time.perf_counter()
    exported, failed = [], []
    for run in CI_RUNS:
        for d, group, r in run_ci(run, Path(args.build_dir)):
            if not r.ok or len(r.records) != len(group) or r.coverage is None:
                failed.append(f"{run.name}:{d.key()}")
            if r.coverage is not None:
                exported.append(r.coverage)
    report = merge(exported)
    command = f"quagga rtl coverage --out {args.out}"
    host = machine()
    report.update({"command": command, "machine": host, "runs": [r.name for r in CI_RUNS],
                   "failed_runs": failed, "seconds": round(time.perf_counter() - t0, 1)})
    out = Path(args.out)
    write_text_atomic(out / "coverage.json", json.dumps(report, indent=1) + "\n")
    write_text_atomic(out / "coverage.md", markdown(report, command, host))
    print(f"coverage: {report['hit']} of {report['bins']} bins hit"
          + (f", missed {report['missed']}" if report["missed"] else "")
          + (f"; failed runs {failed}" if failed else "")
          + f" ({report['seconds']} s); wrote {out / 'coverage.md'} and {out / 'coverage.json'}")
    return 0 if not report["missed"] and not failed else 1
