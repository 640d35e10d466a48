"""Colab rehearsal: install seqlab the way a lab's bootstrap cell does, into a Colab-like venv.

Colab's runtime already holds torch and ipywidgets 7.x and a kernel. The test builds such an
environment in a fresh virtual environment (torch at this environment's own version, ipywidgets
7.8, ipykernel, and nothing else: no ``-e .``, no PYTHONPATH, none of requirements-dev.txt), runs
the source of a lab's ``colab-bootstrap`` cell there as Colab would (``google.colab`` present),
with the repository's GitHub URL replaced by a ``git+file://`` URL of a snapshot of this
checkout, and checks that:

- pip installed seqlab and its declared dependencies only: torch, ipywidgets and everything else
  that was there before is neither reinstalled, upgraded, downgraded nor removed (pip's own
  installation report, ``pip freeze`` before and after, the files of torch and ipywidgets);
- one lab (Lab 1: the data loader, numpy, matplotlib, ipywidgets) runs top to bottom under the
  smoke budget on that venv's own kernel, from a folder outside the repository (Colab's
  ``/content`` holds no checkout), importing seqlab from the venv;
- every distribution the lab's code imported is seqlab or reachable from what seqlab declares
  (the notebook-server packages that ipywidgets 7 drags in do not count as declared).

The snapshot is a one-commit git repository made from this checkout's working tree (tracked
files plus untracked files git does not ignore), so that uncommitted work is what gets tested;
in CI (a fresh clone) that is exactly HEAD.
"""
from __future__ import annotations

import importlib.metadata as md
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAB = ROOT / "notebooks" / "01-ngrams.ipynb"
KERNEL = "seqlab-colab-rehearsal"
# What a Colab runtime already holds, as far as a lab is concerned (Colab ships ipywidgets 7.7).
COLAB_IPYWIDGETS = "ipywidgets==7.8.*"
COLAB_KERNEL_STACK = ["ipykernel"]
UNTOUCHABLE = ("torch", "ipywidgets")

pytestmark = pytest.mark.slow

# Runs in the rehearsal venv: a frozen picture of the installed distributions and of the files
# of torch and ipywidgets.
SNAPSHOT = r"""
import importlib.metadata as md, json, os, sys
dists = {d.metadata["Name"].lower().replace("_", "-"): d.version for d in md.distributions()}
files = {}
for name in sys.argv[1:]:
    d = md.distribution(name)
    init = d.locate_file(f"{name}/__init__.py")
    files[name] = {"version": d.version, "dist_info": str(getattr(d, "_path", "")),
                   "init_mtime_ns": os.stat(init).st_mtime_ns}
print(json.dumps({"dists": dists, "files": files}))
"""

# Injected as the lab's first cell: what the kernel had imported before the lab's own code.
AUDIT_START = "import sys as _rh_sys\n_rh_before = set(_rh_sys.modules)"

# Injected as the lab's last cell: where seqlab came from, versions, and the audit of imports.
AUDIT_END = r"""
import sys as _sys
_new = sorted({m.split(".")[0] for m in list(_sys.modules)} - {m.split(".")[0] for m in _rh_before})
import importlib.metadata as _md, json as _json, os as _os
from packaging.requirements import Requirement as _Req
from packaging.utils import canonicalize_name as _canon

def _closure(names, stop):
    # distributions reachable through install requirements (extras off), not descending into `stop`
    seen, todo = set(), [_canon(n) for n in names]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in stop:
            continue
        try:
            reqs = _md.requires(name) or []
        except _md.PackageNotFoundError:
            continue
        for r in map(_Req, reqs):
            if r.marker is None or r.marker.evaluate({"extra": ""}):
                todo.append(_canon(r.name))
    return seen

_owner = _md.packages_distributions()
_imported = {m: sorted({_canon(d) for d in _owner.get(m, [])}) for m in _new if m in _owner}
# ipywidgets 7's front-end bundles pull in the notebook server: nothing a lab may import
_declared = _closure(["seqlab"], stop={"widgetsnbextension", "jupyterlab-widgets"})
import seqlab as _sl, torch as _t, ipywidgets as _w
print("REHEARSAL " + _json.dumps({
    "seqlab_file": _sl.__file__, "prefix": _sys.prefix, "sys_path": _sys.path, "cwd": _os.getcwd(),
    "torch": _t.__version__, "ipywidgets": _w.__version__, "budget": run.budget,
    "imported": _imported, "undeclared": {m: d for m, d in _imported.items() if not set(d) & _declared},
}))
"""


def _run(cmd, **kw):
    """Run a command; on failure show its output (pip's, mostly) in the assertion message."""
    result = subprocess.run(cmd, capture_output=True, text=True, **kw)
    out = "\n".join(line for line in (result.stdout + result.stderr).splitlines()
                    if "is ignored: it is neither a file nor a directory" not in line)  # this machine's pip.conf
    assert result.returncode == 0, f"{' '.join(map(str, cmd))} failed ({result.returncode}):\n{out[-6000:]}"
    return result.stdout, out


def _clean_env(**extra):
    """The environment without anything that could put the checkout or the test's venv on a path."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP", "PYTHONUSERBASE")}
    env.update(extra)
    return env


def _snapshot_repo(dest: Path, branch: str) -> str:
    """A one-commit git repository of this checkout's working tree at ``dest``; returns its commit."""
    listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], capture_output=True, check=True).stdout
    for rel in filter(None, listed.decode().split("\0")):
        src = ROOT / rel
        if src.is_file():  # a tracked file deleted in the working tree is left out, as a commit would
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    git = ["git", "-C", str(dest), "-c", "user.name=rehearsal", "-c", "user.email=rehearsal@localhost",
           "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "init", "-q", "-b", branch], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "snapshot of the checkout under test"], check=True)
    return subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()


def _torch_spec() -> str:
    # the exact build this environment runs (e.g. 2.13.0+cpu), as Colab's torch is a fixed build
    return f"torch=={md.version('torch')}"


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory):
    from seqlab.course.booktools import BOOTSTRAP_TAG, bootstrap_source, repository_url

    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("the rehearsal installs from a git checkout: git and a .git folder are needed")
    tmp = tmp_path_factory.mktemp("colab-rehearsal")
    venv, times = tmp / "venv", {}
    py = venv / "bin" / "python"
    env = _clean_env()

    # 1. a fresh venv holding what Colab has before the bootstrap cell runs
    t0 = time.perf_counter()
    _run([sys.executable, "-m", "venv", str(venv)], env=env)
    _, pip_colab = _run([str(py), "-m", "pip", "install", _torch_spec(), COLAB_IPYWIDGETS,
                         *COLAB_KERNEL_STACK], env=env)
    _run([str(py), "-m", "ipykernel", "install", "--prefix", str(venv), "--name", KERNEL,
          "--display-name", "Colab rehearsal"], env=env)
    times["colab venv"] = time.perf_counter() - t0
    before = json.loads(_run([str(py), "-c", SNAPSHOT, *UNTOUCHABLE], env=env)[0])
    freeze_before = _run([str(py), "-m", "pip", "freeze"], env=env)[0].splitlines()
    assert not any(line.lower().startswith("seqlab") for line in freeze_before)

    # 2. the repository as GitHub would serve it: a snapshot of the working tree, on the branch
    #    the bootstrap cell names
    url, branch = repository_url(ROOT)
    repo = tmp / "repo"
    repo.mkdir()
    t0 = time.perf_counter()
    commit = _snapshot_repo(repo, branch)
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain"],
                                capture_output=True, text=True).stdout.strip())
    times["snapshot"] = time.perf_counter() - t0

    # 3. the bootstrap cell itself, run as in Colab (google.colab imported), from the local URL.
    #    (file://localhost/...: older pips reject a git+file:/// URL with an empty host.)
    import nbformat

    nb = nbformat.read(LAB, as_version=4)
    cells = [c for c in nb.cells if BOOTSTRAP_TAG in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{LAB.name}: expected one cell tagged {BOOTSTRAP_TAG!r}"
    source = cells[0].source
    assert source == bootstrap_source(url, branch), "the bootstrap cell drifted: python -m seqlab bootstrap --write"
    remote = f"git+{url}@{branch}"
    assert source.count(remote) == 1
    local = f"git+file://localhost{repo.as_posix()}@{branch}"
    cell = ("import sys, types\nsys.modules['google.colab'] = types.ModuleType('google.colab')\n"
            + source.replace(remote, local))
    (tmp / "bootstrap_cell.py").write_text(cell)
    report = tmp / "pip-report.json"
    t0 = time.perf_counter()
    # PIP_REPORT: pip's JSON installation report, without changing the cell's command line
    _, pip_bootstrap = _run([str(py), str(tmp / "bootstrap_cell.py")], cwd=tmp,
                            env=_clean_env(PIP_REPORT=str(report)))
    times["bootstrap cell"] = time.perf_counter() - t0
    after = json.loads(_run([str(py), "-c", SNAPSHOT, *UNTOUCHABLE], env=env)[0])
    freeze_after = _run([str(py), "-m", "pip", "freeze"], env=env)[0].splitlines()

    # 4. the lab, top to bottom, on the venv's kernel, from a folder outside the checkout
    content = tmp / "content"
    content.mkdir()
    lab = nbformat.read(LAB, as_version=4)
    lab.cells.insert(0, nbformat.v4.new_code_cell(AUDIT_START))
    lab.cells.append(nbformat.v4.new_code_cell(AUDIT_END))
    data = os.environ.get("SEQLAB_DATA") or (str(ROOT.parent / "shared" / "data")
                                             if (ROOT.parent / "shared" / "data").is_dir() else "")
    kernel_env = _clean_env(SEQLAB_BUDGET="smoke", SEQLAB_CACHE=str(tmp / "cache"),
                            **({"SEQLAB_DATA": data} if data else {}))
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager
    from jupyter_core.utils import run_sync
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    # only the venv's kernelspec is visible: its argv is the venv's python
    specs = KernelSpecManager(kernel_dirs=[str(venv / "share" / "jupyter" / "kernels")])
    km = AsyncKernelManager(kernel_name=KERNEL, kernel_spec_manager=specs)
    assert specs.get_kernel_spec(KERNEL).argv[0] == str(py)
    t0 = time.perf_counter()
    try:
        NotebookClient(lab, km=km, timeout=600, kernel_name=KERNEL,
                       resources={"metadata": {"path": str(content)}}).execute(env=kernel_env)
        error = None
    except CellExecutionError as err:
        error = str(err)
    finally:  # the client does not shut down a kernel it was handed
        if run_sync(km.is_alive)():
            run_sync(km.shutdown_kernel)(now=True)
    times["lab (smoke)"] = time.perf_counter() - t0
    lines = [line for o in lab.cells[-1].get("outputs", []) for line in o.get("text", "").splitlines()]
    audit = next((json.loads(line[len("REHEARSAL "):]) for line in lines if line.startswith("REHEARSAL ")), None)

    print(f"\nColab rehearsal: checkout HEAD {head[:12]}{' + uncommitted changes' if dirty else ''}, "
          f"installed from snapshot commit {commit[:12]} at {local}")
    print("preinstalled (Colab): " + ", ".join(f"{n} {after['files'][n]['version']}" for n in UNTOUCHABLE)
          + f", {len(freeze_before)} distributions in all")
    print("times: " + ", ".join(f"{k} {v:.0f} s" for k, v in times.items()))
    yield {"before": before, "after": after, "freeze_before": freeze_before, "freeze_after": freeze_after,
           "report": json.loads(report.read_text()) if report.exists() else None,
           "pip_colab": pip_colab, "pip_bootstrap": pip_bootstrap, "venv": venv, "content": content,
           "error": error, "audit": audit, "commit": commit}
    shutil.rmtree(tmp, ignore_errors=True)  # about 1.4 GB, torch mostly


def _name(item) -> str:
    return item["metadata"]["name"].lower().replace("_", "-")


def test_bootstrap_installs_seqlab_and_touches_nothing_colab_has(rehearsal):
    report = rehearsal["report"]
    assert report is not None, "pip wrote no installation report"
    installed = {_name(i): i["metadata"]["version"] for i in report["install"]}
    print("pip installed: " + ", ".join(f"{n} {v}" for n, v in sorted(installed.items())))
    assert "seqlab" in installed
    for name in UNTOUCHABLE:
        assert name not in installed, f"the bootstrap cell reinstalled {name}: {installed[name]}"
        before, after = rehearsal["before"]["files"][name], rehearsal["after"]["files"][name]
        assert after == before, f"{name} changed on disk: {before} -> {after}"
    preinstalled = set(rehearsal["before"]["dists"])
    touched = sorted(set(installed) & preinstalled)
    assert not touched, f"the bootstrap cell reinstalled or changed what Colab had: {touched}"
    gone = [line for line in rehearsal["freeze_before"] if line not in rehearsal["freeze_after"]]
    assert not gone, f"pip freeze lost or changed: {gone}"
    for word in ("Uninstalling", "Attempting uninstall"):
        assert word not in rehearsal["pip_bootstrap"], rehearsal["pip_bootstrap"]
    assert any(line.startswith("seqlab @ git+file://") and rehearsal["commit"] in line
               for line in rehearsal["freeze_after"])


def test_lab_runs_on_the_rehearsal_kernel(rehearsal):
    assert rehearsal["error"] is None, f"a cell of {LAB.name} failed:\n{rehearsal['error'][-4000:]}"
    audit = rehearsal["audit"]
    assert audit is not None, "the audit cell printed nothing"
    venv = str(rehearsal["venv"].resolve())
    assert audit["prefix"] == venv and audit["seqlab_file"].startswith(venv), audit
    assert audit["cwd"] == str(rehearsal["content"])
    assert not [p for p in audit["sys_path"] if p and str(ROOT) in p], audit["sys_path"]
    assert audit["budget"] == "smoke"
    for name in UNTOUCHABLE:
        assert audit[name] == rehearsal["before"]["files"][name]["version"]
    print("the lab imported: " + ", ".join(sorted({d for ds in audit["imported"].values() for d in ds})))
    assert not audit["undeclared"], (
        f"{LAB.name} imports distributions seqlab does not declare: {audit['undeclared']}")
