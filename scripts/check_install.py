"""Install each package as the README says, word for word, into a fresh venv; run its tiny
command there and with the checkout's .venv; the numbers must be the same, and no tracked file
may change. ``make check-install`` runs it (and ``.ci/run`` runs that after ``make test``).

    .venv/bin/python scripts/check_install.py [lemoe distill-hetero ...] [--keep]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The tiny command of each package; {out} is a fresh output folder. Each writes results JSON
# files whose "metrics" must be identical between the installed package and the checkout.
TINY = {
    "lemoe": "lemoe edit --config tiny --output_dir {out}",
    "distill-hetero": "distill-hetero train --config tiny --output_dir {out} --results {out}/results.json",
    "semantic-peft": "semantic-peft train --config tiny --output_dir {out}",
    "infodiffusion": "infodiffusion reproduce --config tiny --output_dir {out}",
}
# numbers that measure the machine, not the method: not compared
TIMING = re.compile(r"(time|_s$|per_s|latency|throughput|speed|memory|rss|seconds)", re.IGNORECASE)
ENV = {
    "WANDB_MODE": "disabled",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "OMP_NUM_THREADS": "1",
    "PYTHONDONTWRITEBYTECODE": "1",
}


def readme_install_commands(package: str) -> list[str]:
    """The shell lines of the README's "Install one method alone" block, for ``package``."""
    text = (REPO / "README.md").read_text()
    section = text.split("## Install one method alone", 1)[1]
    block = section.split("```bash", 1)[1].split("```", 1)[0]
    lines = [line.split("  #", 1)[0].strip() for line in block.strip().splitlines()]
    return [line.replace("./lemoe", f"./{package}").replace("lemoe --help", f"{package} --help") for line in lines]


def run(command: str, cwd: Path, env: dict[str, str], log: Path) -> None:
    with log.open("a") as handle:
        handle.write(f"$ {command}\n")
        handle.flush()
        done = subprocess.run(["bash", "-c", command], cwd=cwd, env=env, stdout=handle, stderr=subprocess.STDOUT)
    if done.returncode:
        tail = "\n".join(log.read_text().splitlines()[-30:])
        raise SystemExit(f"FAILED ({done.returncode}) in {cwd}: {command}\n--- last lines of {log}:\n{tail}")


def metrics_of(folder: Path) -> dict[str, dict]:
    found = {}
    for file in sorted(folder.rglob("*.json")):
        data = json.loads(file.read_text())
        if isinstance(data, dict) and isinstance(data.get("metrics"), dict):
            found[str(file.relative_to(folder))] = data["metrics"]
    return found


def differences(a: object, b: object, where: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            if TIMING.search(str(key)):
                continue
            if key not in a or key not in b:
                out.append(f"{where}{key}: only in {'checkout' if key in a else 'installed'}")
            else:
                out.extend(differences(a[key], b[key], f"{where}{key}."))
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{where}{i}.")]
    same = a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))
    return [] if same else [f"{where.rstrip('.')}: checkout {a!r} vs installed {b!r}"]


def git_status() -> str:
    return subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True).stdout


def check(package: str, root: Path) -> str:
    work = root / package
    (work / "elsewhere").mkdir(parents=True)
    log = work / "log.txt"
    venv = work / "venv"
    env = {**os.environ, **ENV}
    env.pop("VIRTUAL_ENV", None)
    started = time.monotonic()
    run(f"{shlex.quote(sys.executable)} -m venv {venv}", REPO, env, log)
    venv_env = {**env, "PATH": f"{venv}/bin:{env['PATH']}", "VIRTUAL_ENV": str(venv)}
    for line in readme_install_commands(package):
        if line.startswith(("python -m venv", ". ")):
            continue  # the README makes and activates its venv: ours is made above and on PATH
        run(line, REPO, venv_env, log)
    installed_at = time.monotonic()
    tiny = TINY[package]
    run(tiny.format(out=work / "installed"), work / "elsewhere", venv_env, log)
    checkout_env = {**env, "PATH": f"{REPO / '.venv' / 'bin'}:{env['PATH']}"}
    run(tiny.format(out=work / "checkout"), REPO, checkout_env, log)
    a, b = metrics_of(work / "checkout"), metrics_of(work / "installed")
    if not a:
        raise SystemExit(f"{package}: the tiny command wrote no results JSON with metrics under {work / 'checkout'}")
    problems = differences(a, b)
    if problems:
        raise SystemExit(f"{package}: installed and checkout differ:\n  " + "\n  ".join(problems[:40]))
    n = sum(len(m) for m in a.values())
    return (
        f"{package}: README install {installed_at - started:.0f} s; `{tiny.split(' --')[0]} ...` gave the same "
        f"{n} metrics in {len(a)} file(s) installed and from the checkout ({time.monotonic() - installed_at:.0f} s)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("packages", nargs="*", help=f"some of {', '.join(TINY)} (default: all)")
    parser.add_argument("--keep", action="store_true", help="keep the venvs and outputs (printed path)")
    args = parser.parse_args()
    unknown = sorted(set(args.packages) - set(TINY))
    if unknown:
        parser.error(f"unknown package(s) {', '.join(unknown)}; choose from {', '.join(TINY)}")
    args.packages = args.packages or list(TINY)
    before = git_status()
    root = Path(tempfile.mkdtemp(prefix="check-install-"))
    try:
        for package in args.packages:
            print(check(package, root), flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"kept {root}")
    after = git_status()
    if after != before:
        raise SystemExit(f"tracked files changed while running the tiny commands:\n{after}")
    print(f"check-install passed: {', '.join(args.packages)}; git status unchanged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
