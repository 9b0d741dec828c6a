"""benchmarks/gpu_wheels.py: which wheels of a closure go to the GPU suite's folder (the closure check itself
needs a python 3.12 and the downloaded wheels: `make gpu-wheels` runs it)."""
from __future__ import annotations

from pathlib import Path

from tests.benchmarks.scripts import load

gpu_wheels = load("gpu_wheels")


def touch(folder: Path, *names: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(name.encode())


def test_distribution_names_are_normalised_as_pip_does():
    assert gpu_wheels.dist_name(Path("typing_extensions-4.16.0-py3-none-any.whl")) == "typing-extensions"
    assert gpu_wheels.dist_name(Path("PyYAML-6.0.4-cp312-cp312-manylinux2014_x86_64.whl")) == "pyyaml"
    assert gpu_wheels.names("Typing_Extensions  zope.interface") == {"typing-extensions", "zope-interface"}


def test_the_folder_gets_what_the_image_lacks_and_one_version_of_each(tmp_path):
    closure, dest = tmp_path / "closure", tmp_path / "wheels"
    touch(closure, "snakemake-9.27.1-py3-none-any.whl", "pulp-3.3.2-py3-none-any.whl",
          "typing_extensions-4.16.0-py3-none-any.whl", "connection_pool-0.0.3-py3-none-any.whl")
    touch(dest, "snakemake-9.22.0-py3-none-any.whl", "open_clip_torch-3.3.0-py3-none-any.whl")
    shipped = gpu_wheels.ship(closure, dest, {"typing-extensions", "pulp"})
    assert sorted(p.name for p in shipped) == ["connection_pool-0.0.3-py3-none-any.whl",
                                               "snakemake-9.27.1-py3-none-any.whl"]
    assert sorted(p.name for p in dest.iterdir()) == ["connection_pool-0.0.3-py3-none-any.whl",
                                                      "open_clip_torch-3.3.0-py3-none-any.whl",
                                                      "snakemake-9.27.1-py3-none-any.whl"]


def test_a_check_python_that_does_not_run_is_named(tmp_path):
    [problem] = gpu_wheels.check(str(tmp_path / "no-python3.12"), [], set())
    assert "no-python3.12 is not a runnable python 3.12" in problem and "GPU_CHECK_PYTHON" in problem
