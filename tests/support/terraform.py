"""The Terraform root modules, parsed with python-hcl2: no provider is needed to read what they declare."""

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import hcl2
from hcl2 import SerializationOptions

REPO = Path(__file__).resolve().parents[2]
STACK = REPO / "terraform" / "gcp"
BOOTSTRAP = STACK / "bootstrap"

# Plain values: no quotes around strings, no block markers, no comments. Expressions stay as "${...}".
HCL_OPTIONS = SerializationOptions(with_comments=False, explicit_blocks=False, strip_string_quotes=True)

Block = dict[str, Any]


@dataclass(frozen=True)
class Module:
    """One Terraform root module, parsed."""

    resources: dict[tuple[str, str], Block]
    variables: list[tuple[str, str, Block]]  # (file name, variable name, block), in file order
    outputs: list[tuple[str, Block]]
    locals: dict[str, Any]
    terraform: list[Block]
    text: str  # every .tf file, concatenated

    def resource(self, kind: str, name: str) -> Block:
        assert (kind, name) in self.resources, f"{kind}.{name} is missing"
        return self.resources[kind, name]

    def of_type(self, kind: str) -> dict[str, Block]:
        return {name: body for (found, name), body in self.resources.items() if found == kind}


@cache
def load(directory: Path) -> Module:
    resources: dict[tuple[str, str], Block] = {}
    variables: list[tuple[str, str, Block]] = []
    outputs: list[tuple[str, Block]] = []
    local_values: dict[str, Any] = {}
    terraform: list[Block] = []
    texts = []
    for path in sorted(directory.glob("*.tf")):
        texts.append(path.read_text())
        with path.open() as file:
            parsed = hcl2.load(file, serialization_options=HCL_OPTIONS)
        for entry in parsed.get("resource", []):
            for kind, named in entry.items():
                for name, body in named.items():
                    assert (kind, name) not in resources, f"{kind}.{name} is declared twice"
                    resources[kind, name] = body
        for entry in parsed.get("variable", []):
            variables.extend((path.name, name, body) for name, body in entry.items())
        for entry in parsed.get("output", []):
            outputs.extend(entry.items())
        for entry in parsed.get("locals", []):
            local_values.update(entry)
        terraform.extend(parsed.get("terraform", []))
    return Module(resources, variables, outputs, local_values, terraform, "\n".join(texts))
