"""The lock files that `make install`, `make install-dev` and the image install from: each pins every package
of the extras it stands for at a version pyproject.toml allows (a dependency changed without `make lock` fails
here), torch is the CPU build everywhere (no CUDA packages), and the two locks agree with each other."""

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
LOCKS = REPO / "requirements"
EXTRAS = {"app.lock": ("server", "pipelines"), "notebook.lock": ("notebook",), "dev.lock": ("dev",)}
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)$")


def lock_pins(lock: str) -> dict[NormalizedName, Version]:
    """Every `name==version` line of a pip-compile lock; any other requirement line fails (not an exact pin)."""
    pins: dict[NormalizedName, Version] = {}
    for line in (LOCKS / lock).read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = PIN.match(line)
        assert match, f"{lock}: not an exact pin: {line!r}"
        pins[canonicalize_name(match[1])] = Version(match[2])
    return pins


def declared(extras: tuple[str, ...]) -> list[Requirement]:
    """The core dependencies and those of the extras, following the project's references to its own extras."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    own = canonicalize_name(project["name"])
    requirements = [Requirement(text) for text in project["dependencies"]]
    pending, seen = list(extras), set()
    while pending:
        extra = pending.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for text in project["optional-dependencies"][extra]:
            requirement = Requirement(text)
            if canonicalize_name(requirement.name) == own:
                pending.extend(requirement.extras)
            else:
                requirements.append(requirement)
    return [r for r in requirements if r.marker is None or r.marker.evaluate({"extra": ""})]


@pytest.mark.parametrize("lock", sorted(EXTRAS))
def test_each_lock_pins_every_declared_dependency_at_a_version_pyproject_allows(lock):
    pins = lock_pins(lock)
    for requirement in declared(EXTRAS[lock]):
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{lock} lacks {requirement}: run `make lock`"
        assert requirement.specifier.contains(pins[name], prereleases=True), \
            f"{lock} pins {name}=={pins[name]}, pyproject.toml asks {requirement}: run `make lock`"


@pytest.mark.parametrize("lock", sorted(EXTRAS))
def test_each_lock_holds_the_cpu_build_of_torch_and_no_cuda_package(lock):
    pins = lock_pins(lock)
    assert pins[canonicalize_name("torch")].local == "cpu"
    cuda = [name for name in pins if name.startswith("nvidia-") or name == "triton"]
    assert not cuda, f"{lock} pulls CUDA packages: {cuda}"


@pytest.mark.parametrize("lock", ["app.lock", "notebook.lock"])
def test_each_smaller_lock_pins_what_the_dev_lock_pins(lock):
    smaller, dev = lock_pins(lock), lock_pins("dev.lock")
    assert {name: version for name, version in smaller.items() if dev.get(name) != version} == {}


def test_the_image_and_make_install_torch_at_the_locks_version_then_the_lock():
    torch = lock_pins("app.lock")[canonicalize_name("torch")].public
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text()
    assert f"torch=={torch} " in dockerfile and "-r requirements/app.lock" in dockerfile
    first = [line for line in (LOCKS / "torch-cpu.in").read_text().splitlines() if not line.startswith("#")]
    assert first == [f"torch=={torch}"]
    makefile = (REPO / "Makefile").read_text()
    assert "-r requirements/torch-cpu.in" in makefile
    assert all(f"-r requirements/{lock}" in makefile for lock in EXTRAS)
