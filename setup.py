"""Packaging for mgnet: every setting lives in settings.ini (the nbdev 2 layout)."""
from configparser import ConfigParser

import setuptools

cfg = ConfigParser(delimiters=["="])
cfg.read("settings.ini", encoding="utf-8")
cfg = cfg["DEFAULT"]


def _list(key):
    return cfg.get(key, "").split()


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
    package_data={cfg["lib_path"]: ["resources/*"]},
    install_requires=_list("requirements"),
    extras_require={"dev": _list("dev_requirements")},
    entry_points={
        "console_scripts": _list("console_scripts"),
        "nbdev": [f"{cfg['lib_path']}={cfg['lib_path']}._modidx:d"],
    },
    zip_safe=False,
)
