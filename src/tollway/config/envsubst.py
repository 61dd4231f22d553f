"""``${VAR}`` and ``${VAR:-default}`` substitution, done on the text before YAML parsing;
``$${…}`` is a literal ``${…}`` (a value that means one of its own: ai-data-masking's
``${name}`` group reference)."""

from __future__ import annotations

import re
from collections.abc import Mapping

_VAR = re.compile(r"\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class UnsetVariable(Exception):
    def __init__(self, names: list[str]) -> None:
        super().__init__(", ".join(names))
        self.names = names


def substitute(text: str, env: Mapping[str, str]) -> str:
    """Replace every reference; raise ``UnsetVariable`` naming each unset one without a default.

    Lines that are YAML comments are left alone, so a commented-out example such as
    ``# token: ${SECRET}`` does not demand the variable.
    """
    missing: list[str] = []

    def repl(m: re.Match[str]) -> str:
        if m.group(1):
            return m.group(0)[1:]  # $${…}: the reference, as written, one dollar less
        name, default = m.group(2), m.group(3)
        value = env.get(name)
        if value is None or (value == "" and default is not None):
            if default is not None:
                return default
            missing.append(name)
            return ""
        return value

    out: list[str] = []
    for line in text.splitlines(keepends=True):
        out.append(line if line.lstrip().startswith("#") else _VAR.sub(repl, line))
    if missing:
        raise UnsetVariable(sorted(set(missing)))
    return "".join(out)
