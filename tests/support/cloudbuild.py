"""Cloud Build's substitution of a build config's strings, as the build-config reference describes it."""

import re
from collections.abc import Mapping

# A $ that Cloud Build would substitute: $NAME or ${NAME}. $$ is an escaped dollar, left to the shell.
REFERENCE = re.compile(r"(?<!\$)(?:\$\$)*\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
_TOKEN = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def substitute(text: str, values: Mapping[str, str]) -> str:
    """`text` as a build step receives it: every $NAME and ${NAME} replaced, every $$ turned into $."""

    def replace(found: re.Match[str]) -> str:
        if found.group(0) == "$$":
            return "$"
        name = found.group(1) or found.group(2)
        if name not in values:
            raise KeyError(f"${name} has no value: Cloud Build would refuse the build")
        return values[name]

    return _TOKEN.sub(replace, text)
