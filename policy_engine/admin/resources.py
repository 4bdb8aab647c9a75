"""Files that ship inside the package, for the commands that need them by default.

- ``MIGRATIONS``: the table's migration steps (``policy-engine migrate``); they describe
  the layout this version of the stores reads and writes, so they always come from here.
- ``EXAMPLE_PERMISSIONS`` and ``EXAMPLE_CATALOG``: the pet store example, the default of
  ``demo``, ``quickstart`` and ``serve`` and what ``init`` copies into a new repository.
- ``TEMPLATE``: the SAM deployment template ``init`` copies.
- ``SCAFFOLD``: the files only ``init`` writes (CI workflow, pre-commit configuration).

Every other command reads what its arguments name, relative to the current folder.

In the repository, ``migrations/``, ``permissions/``, ``catalog/`` and ``template.yaml``
stay at the top level; ``policy_engine/admin/shipped/`` holds symbolic links to them, so
there is one copy of each. Building a wheel or an sdist follows the links and stores the
files themselves under ``policy_engine/admin/shipped/`` (``package-data`` in
pyproject.toml); an editable install reads them through the links.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["EXAMPLE_CATALOG", "EXAMPLE_PERMISSIONS", "MIGRATIONS", "SCAFFOLD", "SHIPPED", "TEMPLATE"]

#: The package-data folder (in the repository: links to the top-level folders).
SHIPPED = Path(__file__).parent / "shipped"
MIGRATIONS = SHIPPED / "migrations"
EXAMPLE_PERMISSIONS = SHIPPED / "permissions"
EXAMPLE_CATALOG = SHIPPED / "catalog"
TEMPLATE = SHIPPED / "template.yaml"
SCAFFOLD = SHIPPED / "scaffold"

