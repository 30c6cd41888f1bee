"""Package discovery for the stage folders (the rest of the metadata is in pyproject.toml).

train/, optimize/, serve/ and bench/ sit at the top level so the pipeline is visible, but
install under the tuneloop package, so nothing named `serve` or `train` lands in
site-packages. pyproject.toml's `packages.find` cannot map several folders to one package
tree, so the packages are found here: every folder with an `__init__.py` below a stage
folder is included, and a new subpackage can never be left out of the wheel.
"""

from setuptools import find_packages, setup

STAGE_FOLDERS = {
    "tuneloop": "tuneloop",
    "tuneloop.train": "train",
    "tuneloop.optimize": "optimize",
    "tuneloop.serve": "serve",
    "tuneloop.bench": "bench",
}


def stage_packages() -> list[str]:
    packages = []
    for package, folder in STAGE_FOLDERS.items():
        packages.append(package)
        packages += [f"{package}.{sub}" for sub in find_packages(folder)]
    return packages


setup(package_dir=STAGE_FOLDERS, packages=stage_packages())
