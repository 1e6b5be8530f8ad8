"""Packaging for mgnet: every setting lives in settings.ini (the nbdev 2 layout)."""
import shutil
from configparser import ConfigParser
from pathlib import Path

import setuptools
from setuptools.command.build_py import build_py

cfg = ConfigParser(delimiters=["="])
cfg.read("settings.ini", encoding="utf-8")
cfg = cfg["DEFAULT"]


def _list(key):
    return cfg.get(key, "").split()


class BuildWithNotebooks(build_py):
    """Ship the experiment notebooks (nbs/experiments/*.ipynb, their source in a checkout) inside the package, as
    mgnet/resources/experiments/, so that an installed wheel runs the benchmark, the sweep and the explorer."""

    def run(self):
        super().run()
        dest = Path(self.build_lib) / cfg["lib_path"] / "resources" / "experiments"
        dest.mkdir(parents=True, exist_ok=True)
        for nb in sorted(Path(cfg["nbs_path"], "experiments").glob("*.ipynb")):
            shutil.copyfile(nb, dest / nb.name)


setuptools.setup(
    name=cfg["lib_name"],
    version=cfg["version"],
    description=cfg["description"],
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    author=cfg["author"],
    author_email=cfg["author_email"],
    license="Apache-2.0",
    keywords=cfg["keywords"],
    python_requires=">=" + cfg["min_python"],
    # mgnet/resources holds data files only (the ImageNet100 class list), listed so setuptools ships it without warning
    packages=setuptools.find_packages(include=[cfg["lib_path"], cfg["lib_path"] + ".*"])
             + [cfg["lib_path"] + ".resources"],
    include_package_data=True,
    package_data={cfg["lib_path"]: ["resources/*", "resources/recipes/*.yaml"]},   # recipes: mgnet.recipes
    install_requires=_list("requirements"),
    extras_require={"dev": _list("dev_requirements"), "onnx": _list("onnx_requirements")},
    entry_points={
        "console_scripts": _list("console_scripts"),
        "nbdev": [f"{cfg['lib_path']}={cfg['lib_path']}._modidx:d"],
    },
    cmdclass={"build_py": BuildWithNotebooks},
    zip_safe=False,
)
