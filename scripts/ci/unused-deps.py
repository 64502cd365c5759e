#!/usr/bin/env python3
"""Unused-dependency check (a small `cargo machete`): fails when

- a member's [dependencies] / [dev-dependencies] / [build-dependencies] entry is never
  named in that member's Rust sources (`name::`, `use name`, `extern crate name`,
  `#[name::...]`, with `-` read as `_`), or
- a [workspace.dependencies] entry is used by no member.

Known false positives go in ALLOW with a reason. Usage: scripts/ci/unused-deps.py
"""
import pathlib
import re
import sys
import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[2]
# (member dir, dependency) -> why it is needed although no source names it
ALLOW = {}


def rust_sources(member: pathlib.Path):
    for sub in ("src", "tests", "benches", "examples", "fuzz/fuzz_targets", "build.rs"):
        p = member / sub
        if p.is_file():
            yield p
        elif p.is_dir():
            yield from p.rglob("*.rs")


def main() -> int:
    ws = tomllib.loads((ROOT / "Cargo.toml").read_text())
    members = [ROOT / m for m in ws["workspace"]["members"]]
    problems = []
    used_anywhere = set()
    for member in members:
        manifest = tomllib.loads((member / "Cargo.toml").read_text())
        text = "\n".join(p.read_text(errors="replace") for p in rust_sources(member))
        for table in ("dependencies", "dev-dependencies", "build-dependencies"):
            for name, spec in manifest.get(table, {}).items():
                real = spec.get("package", name) if isinstance(spec, dict) else name
                used_anywhere.add(real)
                ident = name.replace("-", "_")
                pat = re.compile(
                    rf"(\b{ident}::|\buse\s+{ident}\b|\bextern\s+crate\s+{ident}\b|#\[{ident}::)"
                )
                if pat.search(text) or (member.name, name) in ALLOW:
                    continue
                problems.append(f"{member.relative_to(ROOT)}: [{table}] {name} is never used")
    for name in ws["workspace"].get("dependencies", {}):
        if name not in used_anywhere:
            problems.append(f"Cargo.toml: [workspace.dependencies] {name} is used by no member")
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} unused dependenc{'y' if len(problems) == 1 else 'ies'}")
        return 1
    print(f"unused-deps: {len(members)} members, no unused dependency")
    return 0


if __name__ == "__main__":
    sys.exit(main())
