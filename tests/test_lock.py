"""requirements.lock: exact versions of everything both README commands install, within
pyproject.toml's ranges; and tools/refresh-lock, run offline against a local index."""
import base64
import hashlib
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"


def _pins(text):
    """{name: (version, marker or None)} from a lock file (the entry that applies here)."""
    pins = {}
    for m in re.finditer(r"^([A-Za-z0-9_.-]+)==([^\s;\\]+)(?: ; ([^\\\n]+))?", text, re.M):
        name, version, marker = canonicalize_name(m.group(1)), m.group(2), m.group(3)
        if marker is None or Marker(marker.strip()).evaluate():
            pins[name] = version
    return pins


def _requirements():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["test"]]


def test_lock_pins_every_declared_dependency_within_its_range():
    pins = _pins(LOCK.read_text())
    for req in _requirements():
        if req.marker and not req.marker.evaluate():
            continue
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is not in requirements.lock"
        assert req.specifier.contains(Version(pins[name]), prereleases=True), (req, pins[name])


def test_every_locked_line_has_an_exact_version_and_hashes():
    entries = re.split(r"\n(?=[A-Za-z0-9])", LOCK.read_text().strip())
    assert len(entries) > 50
    for entry in entries:
        if entry.startswith("#"):
            continue
        assert re.match(r"^[A-Za-z0-9_.-]+==\S+", entry), entry[:80]
        assert "--hash=sha256:" in entry, entry[:80]


def test_this_environment_is_the_lock():
    """The test command installs from the lock: every package it pins is installed at that version."""
    for name, version in _pins(LOCK.read_text()).items():
        assert importlib.metadata.version(name) == version, name


def _wheel(folder: Path, name: str, version: str, requires=()):
    """A minimal pure-Python wheel, written by hand."""
    dist = f"{name}-{version}.dist-info"
    files = {f"{name}/__init__.py": f"VERSION = {version!r}\n",
             f"{dist}/METADATA": "Metadata-Version: 2.1\n" f"Name: {name}\nVersion: {version}\n"
                                 + "".join(f"Requires-Dist: {r}\n" for r in requires),
             f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    files[f"{dist}/RECORD"] = "\n".join(record + [f"{dist}/RECORD,,"]) + "\n"
    with zipfile.ZipFile(folder / f"{name}-{version}-py3-none-any.whl", "w") as z:
        for path, text in files.items():
            z.writestr(path, text)


def test_refresh_lock_offline_keeps_pins_until_asked_to_upgrade(tmp_path):
    index = tmp_path / "index"
    index.mkdir()
    for v in ("1.0", "2.0", "3.0"):
        _wheel(index, "alpha", v)
    _wheel(index, "beta", "1.0", requires=["alpha>=1"])
    proj = tmp_path / "proj"
    (proj / "tools").mkdir(parents=True)
    shutil.copy2(ROOT / "tools" / "refresh-lock", proj / "tools" / "refresh-lock")
    (proj / "pyproject.toml").write_text(
        '[project]\nname = "demo"\nversion = "0"\nrequires-python = ">=3.11"\n'
        'dependencies = ["alpha>=1,<3"]\n[project.optional-dependencies]\ntest = ["beta"]\n')
    env = dict(os.environ, UV_CACHE_DIR=str(tmp_path / "uv-cache"), UV_NO_CONFIG="1",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")

    def refresh(*extra):
        res = subprocess.run([str(proj / "tools" / "refresh-lock"), "--no-index", "--find-links", str(index), *extra],
                             cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        return (proj / "requirements.lock").read_text()

    lock = refresh()
    assert _pins(lock) == {"alpha": "2.0", "beta": "1.0"}  # the newest within the range
    alpha_2 = hashlib.sha256((index / "alpha-2.0-py3-none-any.whl").read_bytes()).hexdigest()
    assert f"--hash=sha256:{alpha_2}" in lock
    (proj / "requirements.lock").write_text(lock.replace("alpha==2.0", "alpha==1.0"))
    assert _pins(refresh())["alpha"] == "1.0"  # a pin that still fits is kept
    assert _pins(refresh("--upgrade-package", "alpha"))["alpha"] == "2.0"


def test_both_readme_commands_install_from_the_lock_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## The two commands.*?```bash\n(.*?)```", readme, re.S).group(1)
    commands = [line for line in block.splitlines() if line.startswith("python3 -m venv")]
    assert len(commands) == 2 and commands[0].endswith("&& dvc repro") and commands[1].endswith("&& pytest")
    for c in commands:
        assert "pip install -q -r requirements.lock && pip install -q --no-deps -e ." in c, c
    assert commands[1] in (ROOT / ".ci" / "run").read_text()
