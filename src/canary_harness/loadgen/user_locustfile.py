"""The user's own locustfile (``[load] profile = "locustfile"``): its path and the user classes to run,
checked before anything starts; pure apart from reading the file, and locust is never imported here.

The classes a file defines are found by reading its syntax tree (classes defined at module level, also
under ``if``/``try``, and names it imports), not by importing it: importing a locustfile runs its code
and patches this process with gevent. A name the file does not define is refused here, so locust never
starts with it (locust itself would only say "Unknown User(s)" once the stage's services were up).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from pathlib import Path

from canary_harness.errors import ConfigError

# Set in locust's processes of this profile: the harness's load/fragrance.py then adds its options and
# listeners (stats per served version, request and time caps) but none of its own user classes.
USER_LOCUSTFILE_ENV = "CANARY_LOAD_USER_LOCUSTFILE"


def parse_user_classes(raw: object, source: str) -> tuple[str, ...]:
    """``user_classes = ["ShopUser", ...]``: a list of distinct Python identifiers."""
    if isinstance(raw, str) or not isinstance(raw, (list, tuple)):
        raise ConfigError(f'load user_classes {raw!r} ({source}): must be a list of class names, e.g. ["ShopUser"]')
    names: list[str] = []
    for item in raw:
        if not isinstance(item, str) or not item.isidentifier():
            raise ConfigError(f"load user_classes {raw!r} ({source}): {item!r} is not a Python class name")
        if item in names:
            raise ConfigError(f"load user_classes {raw!r} ({source}): {item!r} is given twice")
        names.append(item)
    return tuple(names)


def defined_names(path: Path, source: str) -> set[str]:
    """Classes ``path`` defines at module level and names it imports; ConfigError if it cannot be read."""
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (OSError, SyntaxError, ValueError) as exc:
        raise ConfigError(f"load locustfile {str(path)!r} ({source}): cannot be read as Python ({exc})") from exc
    names: set[str] = set()
    for node in _module_level(tree.body):
        if isinstance(node, ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update(alias.asname or alias.name.split(".")[0] for alias in node.names)
    return names


def _module_level(body: Iterable[ast.stmt]) -> Iterator[ast.stmt]:
    """Statements run at import, including those inside if/try blocks (conditional definitions)."""
    for node in body:
        yield node
        if isinstance(node, ast.If):
            yield from _module_level(node.body + node.orelse)
        elif isinstance(node, ast.Try):
            yield from _module_level(
                node.body + node.orelse + node.finalbody + [stmt for handler in node.handlers for stmt in handler.body]
            )


def check_user_locustfile(locustfile: Path | None, user_classes: tuple[str, ...], source: str) -> Path:
    """The user's locustfile, checked: a ``.py`` file that defines every class in ``user_classes``.

    ``locustfile`` is relative to the working directory, as the other paths of canary.toml and of target
    profiles are. Returns it resolved (locust runs in the stats directory, another working directory).
    """
    if locustfile is None:
        raise ConfigError(
            f"load profile \"locustfile\" ({source}): give the file in key 'locustfile', "
            f'e.g. locustfile = "load/locustfile.py"'
        )
    path = Path(locustfile)
    if path.suffix != ".py" or not path.is_file():
        raise ConfigError(
            f"load locustfile {str(locustfile)!r} ({source} key 'locustfile'): no such .py file "
            f"(relative paths start at the working directory {str(Path.cwd())!r})"
        )
    missing = [name for name in user_classes if name not in defined_names(path, source)]
    if missing:
        raise ConfigError(
            f"load user_classes {list(user_classes)!r} ({source} key 'user_classes'): "
            f"{', '.join(missing)} not defined in {str(locustfile)!r}"
        )
    return path.resolve()
