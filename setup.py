"""Build hook: wheels carry the top-level `hub_cards/` and `spaces/corit-demo/` inside the corit_hf package.

Those folders stay the single source of truth in the source tree; `corit_hf.resources.shared_folder` finds them
in either place. Editable installs read them from the checkout, so nothing is copied there.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


SHARED_FOLDERS = ("hub_cards", "spaces/corit-demo")


class BuildPyWithSharedFolders(build_py):
    def run(self):
        super().run()
        if self.editable_mode:
            return
        for folder in SHARED_FOLDERS:
            target = Path(self.build_lib) / "corit_hf" / folder
            shutil.copytree(folder, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildPyWithSharedFolders})
