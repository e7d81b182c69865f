"""docs/system-diagram.mmd draws the system that terraform/gcp and the Cloud Build configs really create, the table
"Who may do what" in terraform/gcp/README.md lists every grant iam.tf makes, and every SVG in docs/ is a render
of the current source.

The renders themselves need Node.js and Chromium (`make diagram`); these tests need neither: they read the Mermaid
source, the Terraform (python-hcl2), the Cloud Build configs, and the sha256 each render carries of its source.
"""

import hashlib
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.terraform import BOOTSTRAP, STACK, load

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
SYSTEM_DIAGRAM = DOCS / "system-diagram.mmd"
STACKS = (STACK, BOOTSTRAP)
# Each config's steps are drawn as <prefix>_<step id> nodes.
PIPELINES = {"build_step": REPO / "cloudbuild.yaml", "rollout_step": REPO / "cloudbuild-rollout.yaml"}
ACCESS_TABLE = STACK / "README.md"


# Every Terraform resource that is a component of the system, by address, and the id of the node that draws it.
# A new resource of a component type fails test_every_component_resource_has_a_node until it is added here and drawn.
NODE_OF_RESOURCE: dict[str, str] = {
    # delivery
    "google_cloudbuildv2_repository.main": "repo_link",
    "google_cloudbuild_trigger.build": "trigger_build",
    "google_cloudbuild_trigger.pull_request": "trigger_pr",
    "google_cloudbuild_trigger.rollout": "trigger_rollout",
    "google_cloudbuild_trigger.rollout_manual": "trigger_rollout_manual",
    "google_pubsub_topic.cloud_builds": "cloud_builds_topic",
    "google_artifact_registry_repository.main": "artifact_registry",
    "google_storage_bucket.rollout_lock": "lock_bucket",
    # request path
    "google_binary_authorization_policy.main": "binauthz",
    "google_cloud_run_v2_service.main": "run_service",
    # data
    "google_firestore_database.main": "firestore",
    "google_firestore_backup_schedule.daily": "backups",
    "google_firestore_backup_schedule.weekly": "backups",
    # observability
    # One node for the SLOs and the service they are defined on, one for every alert policy.
    "google_monitoring_custom_service.main": "slos",
    "google_monitoring_slo.availability": "slos",
    "google_monitoring_slo.latency": "slos",
    "google_monitoring_alert_policy.slo_burn_rate": "alerts",  # for_each: fast and slow, for both SLOs
    "google_monitoring_uptime_check_config.ready": "uptime_check",
    "google_monitoring_alert_policy.uptime": "alerts",
    "google_monitoring_notification_channel.email": "email_channel",
    # Terraform state (terraform/gcp/bootstrap)
    "google_storage_bucket.state": "tf_state",
}

# Resource types drawn as nodes.
COMPONENT_TYPES = {
    "google_artifact_registry_repository",
    "google_binary_authorization_policy",
    "google_cloud_run_v2_service",
    "google_cloudbuild_trigger",
    "google_cloudbuildv2_repository",
    "google_firestore_backup_schedule",
    "google_firestore_database",
    "google_monitoring_alert_policy",
    "google_monitoring_custom_service",
    "google_monitoring_notification_channel",
    "google_monitoring_slo",
    "google_monitoring_uptime_check_config",
    "google_pubsub_topic",
    "google_storage_bucket",
}
# Who may do what: identities, their grants and custom roles are rows of the access table, not drawn.
GRANT_TYPES = {
    "google_artifact_registry_repository_iam_member",
    "google_cloud_run_v2_service_iam_member",
    "google_project_iam_member",
    "google_service_account_iam_member",
    "google_storage_bucket_iam_member",
}
ACCESS_TYPES = GRANT_TYPES | {"google_service_account", "google_project_iam_custom_role"}
# Plumbing with nothing to draw: APIs switched on, and the Data Access audit logs the bootstrap turns on.
NOT_DRAWN_TYPES = {"google_project_service", "google_project_iam_audit_config"}

# How the access table names who holds a grant, and where it is held.
GRANTEE = {
    "runtime": "runtime SA",
    "builder": "builder SA",
    "deployer": "deployer SA",
    "pr_checks": "pr-checks SA",
    "allUsers": "allUsers",
}
WHERE = {
    "google_project_iam_member": "the project",
    "google_cloud_run_v2_service_iam_member": "the Cloud Run service",
    "google_service_account_iam_member": "the runtime SA",
    "google_storage_bucket_iam_member": "the rollout-lock bucket",
    "google_artifact_registry_repository_iam_member": "the Docker repository",
}

# One link per line, labelled: `a -- "text" --> b`, `a -. "text" .-> b`, `a == "text" ==> b` or `a -->|text| b`.
LABELLED_LINK = re.compile(
    r"(?P<source>\w+)\s+"
    r'(?:--\s+"(?P<solid>[^"]*)"\s+-->|-\.\s+"(?P<dotted>[^"]*)"\s+\.->|==\s+"(?P<thick>[^"]*)"\s+==>'
    r"|(?P<piped_arrow>-->|-\.->|==>)\|(?P<piped>[^|]*)\|)"
    r"\s*(?P<target>\w+)"
)
# Whatever makes a line a link, labelled or not, once quoted text is set aside (~~~, the invisible link, draws nothing).
LINK_TOKEN = re.compile(r"-->|\.->|==>|---|-\.-|===|--[xo]\b|<--|<==|<-\.")
QUOTED = re.compile(r'"[^"]*"')
NODE_DEFINITION = re.compile(r"(?P<id>[A-Za-z_]\w*)(?P<shape>\[|\(|\{|>)")
NOT_NODES = {"subgraph", "end", "direction", "flowchart", "graph", "classDef", "class", "style", "linkStyle", "click"}

STAMP = re.compile(rb"<!-- rendered from (?P<name>[^ ]+) sha256:(?P<digest>[0-9a-f]{64}) -->")
OPENING_TAG = re.compile(rb"<svg\b[^>]*>")


@dataclass(frozen=True)
class Link:
    line: int
    source: str
    target: str
    label: str
    dotted: bool


@dataclass(frozen=True)
class Flowchart:
    nodes: dict[str, str]  # id -> the rest of its definition line (shape and label)
    links: list[Link]  # the labelled links, in file order
    link_lines: list[int]  # the line of every link, labelled or not: what linkStyle's indices count
    unlabelled: list[tuple[int, str]]  # link lines that are not one labelled link
    link_styles: list[tuple[int, list[int], str]]  # (line, link indices, style)


def body(text: str) -> list[tuple[int, str]]:
    """The diagram's statements with their line numbers: no front matter, no comments, no blank lines."""
    lines = text.splitlines()
    start = 0
    if lines and lines[0].strip() == "---":
        start = next(number for number in range(1, len(lines)) if lines[number].strip() == "---") + 1
    return [
        (number + 1, line.strip())
        for number, line in enumerate(lines)
        if number >= start and line.strip() and not line.strip().startswith("%%")
    ]


def parse(text: str) -> Flowchart:
    nodes: dict[str, str] = {}
    links: list[Link] = []
    link_lines: list[int] = []
    unlabelled: list[tuple[int, str]] = []
    link_styles: list[tuple[int, list[int], str]] = []
    for number, line in body(text):
        keyword = line.split(maxsplit=1)[0]
        if keyword == "linkStyle":
            _, indices, style = line.split(maxsplit=2)
            link_styles.append((number, [int(index) for index in indices.split(",")], style))
        elif LINK_TOKEN.search(QUOTED.sub('""', line)):
            link_lines.append(number)
            match = LABELLED_LINK.fullmatch(line)
            label = "".join(text or "" for text in match.group("solid", "dotted", "thick", "piped")) if match else ""
            if match is None or not label.strip():
                unlabelled.append((number, line))
                continue
            dotted = match.group("dotted") is not None or match.group("piped_arrow") == "-.->"
            links.append(Link(number, match.group("source"), match.group("target"), label, dotted))
        elif keyword not in NOT_NODES and (node := NODE_DEFINITION.match(line)):
            assert node.group("id") not in nodes, f"line {number}: node {node.group('id')} is defined twice"
            nodes[node.group("id")] = line[node.end("id") :]
    return Flowchart(nodes, links, link_lines, unlabelled, link_styles)


@cache
def system() -> Flowchart:
    return parse(SYSTEM_DIAGRAM.read_text())


@dataclass(frozen=True)
class Resource:
    kind: str
    name: str
    body: dict[str, Any]
    local_values: dict[str, Any]  # the locals of the module that declares it

    @property
    def address(self) -> str:
        return f"{self.kind}.{self.name}"


@cache
def resources() -> tuple[Resource, ...]:
    """Every resource of the main stack and of the bootstrap that makes its state bucket."""
    return tuple(
        Resource(kind, name, body, module.locals)
        for module in map(load, STACKS)
        for (kind, name), body in module.resources.items()
    )


def held(resource: Resource) -> list[str]:
    """What one IAM member resource grants: a predefined role, or every permission of a custom role."""
    role = resource.body["role"]
    custom = re.fullmatch(r'\$\{google_project_iam_custom_role\.(\w+)\["(\w+)"\]\.name\}', role)
    if custom is None:
        return [role]
    roles = next(other for other in resources() if other.address == f"google_project_iam_custom_role.{custom[1]}")
    assert roles.body["for_each"] == "${local.deployer_permissions}", roles.address
    return [str(permission) for permission in roles.local_values["deployer_permissions"][custom[2]]]


def grantee(resource: Resource) -> str:
    member = resource.body["member"]
    account = re.fullmatch(r"\$\{google_service_account\.(\w+)\.member\}", member)
    return account.group(1) if account else member


@cache
def access_rows() -> list[dict[str, str]]:
    """The rows of the table under "## Who may do what" in terraform/gcp/README.md."""
    text = ACCESS_TABLE.read_text()
    section = text[text.index("## Who may do what") :]
    lines = [line for line in section.splitlines()[1:] if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    return [dict(zip(header, (cell.strip() for cell in line.strip("|").split("|")), strict=True)) for line in lines[2:]]


# --- (a) the renders are current -------------------------------------------------------------------------------


def sources() -> list[Path]:
    return sorted(DOCS.glob("*.mmd"))


def test_docs_holds_the_diagrams() -> None:
    assert SYSTEM_DIAGRAM in sources()
    assert DOCS / "rollout-sequence.mmd" in sources()


@pytest.mark.parametrize("source", sources(), ids=lambda path: path.name)
def test_each_render_carries_the_sha256_of_its_current_source(source: Path) -> None:
    render = source.with_suffix(".svg")
    assert render.is_file(), f"{render.name} is missing: run `make diagram`"
    svg = render.read_bytes()
    tag = OPENING_TAG.search(svg)
    assert tag is not None, f"{render.name} has no <svg> element"
    stamp = STAMP.match(svg, tag.end())
    assert stamp is not None, f"{render.name} has no `rendered from` comment right after <svg>: run `make diagram`"
    assert stamp.group("name").decode() == source.name
    assert stamp.group("digest").decode() == hashlib.sha256(source.read_bytes()).hexdigest(), (
        f"{render.name} is a render of an older {source.name}: run `make diagram`"
    )


def test_every_render_has_a_source() -> None:
    assert {path.stem for path in DOCS.glob("*.svg")} == {path.stem for path in sources()}


# --- (b) every component in the Terraform has a node ------------------------------------------------------------


def test_every_resource_type_is_drawn_as_a_node_or_an_arrow_or_named_as_not_drawn() -> None:
    unclassified = {resource.kind for resource in resources()} - COMPONENT_TYPES - ACCESS_TYPES - NOT_DRAWN_TYPES
    assert not unclassified, f"decide how the diagram shows {sorted(unclassified)} and say so in tests/test_diagram.py"


def test_every_component_resource_has_a_node() -> None:
    components = {resource.address for resource in resources() if resource.kind in COMPONENT_TYPES}
    assert components - NODE_OF_RESOURCE.keys() == set(), "draw these and map them in NODE_OF_RESOURCE"
    assert NODE_OF_RESOURCE.keys() - components == set(), "these are no longer in terraform/gcp: drop their nodes"


@pytest.mark.parametrize("address", sorted(NODE_OF_RESOURCE))
def test_each_mapped_node_is_defined_in_the_diagram(address: str) -> None:
    node = NODE_OF_RESOURCE[address]
    assert node in system().nodes, f"{address} is drawn by node {node}, which {SYSTEM_DIAGRAM.name} does not define"


def test_the_diagram_draws_components_and_flows_not_who_may_do_what() -> None:
    assert not [link for link in system().links if link.dotted], "grants belong in the access table"
    assert not [node for node in system().nodes if node.startswith("sa_")], "identities belong in the access table"
    assert not system().link_styles


# --- (b') every grant is a row of the access table ----------------------------------------------------------------


def test_every_grant_is_a_row_of_the_access_table_with_what_it_holds_and_where() -> None:
    rows = access_rows()
    missing = []
    for resource in resources():
        if resource.kind not in GRANT_TYPES:
            continue
        who = GRANTEE[grantee(resource)]
        where = WHERE[resource.kind]
        matching = [row for row in rows if row["identity"] == who and row["on"] == where]
        if not any(all(f"`{item}`" in row["holds"] for item in held(resource)) for row in matching):
            missing.append(f"{who} | {', '.join(held(resource))} | {where}  ({resource.address})")
    assert not missing, f"grants with no row in terraform/gcp/README.md, Who may do what: {missing}"


def test_every_row_of_the_access_table_is_a_grant_iam_tf_makes() -> None:
    grants = {
        (GRANTEE[grantee(resource)], WHERE[resource.kind]) for resource in resources() if resource.kind in GRANT_TYPES
    }
    stale = [row for row in access_rows() if (row["identity"], row["on"]) not in grants]
    assert not stale, f"rows for grants iam.tf no longer makes: {stale}"
    assert all(row["for"] for row in access_rows()), "every row says what the grant is for"


# --- (c) every pipeline step has a node --------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", sorted(PIPELINES))
def test_every_cloudbuild_step_has_a_node(prefix: str) -> None:
    steps = yaml.safe_load(PIPELINES[prefix].read_text())["steps"]
    ids = [step["id"] for step in steps]
    assert ids, f"{PIPELINES[prefix].name} has no steps"
    missing = [f"{prefix}_{re.sub(r'\W', '_', step)}" for step in ids]
    missing = [node for node in missing if node not in system().nodes]
    assert not missing, f"{PIPELINES[prefix].name} steps without a node: {missing}"


# --- (d) every arrow says what flows over it ---------------------------------------------------------------------


def test_every_arrow_is_labelled() -> None:
    assert system().links, f"no links found in {SYSTEM_DIAGRAM.name}"
    assert system().unlabelled == [], 'write each link on its own line with a label, as `a -- "what flows" --> b`'


def test_every_arrow_joins_two_defined_nodes() -> None:
    undefined = [
        (link.line, end) for link in system().links for end in (link.source, link.target) if end not in system().nodes
    ]
    assert undefined == [], "define each node once, with its label, before linking it (a typo makes a bare node)"


# --- the parser these tests rely on ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "a --> b",
        "a -.-> b",
        "a ==> b",
        "a --- b",
        'a -- "" --> b',
        "a -->|| b",
        'a -- "x" --> b -- "y" --> c',
        'a & b -- "x" --> c',
        'a["A"] -- "x" --> b',
    ],
)
def test_an_unlabelled_or_compound_link_is_caught(line: str) -> None:
    assert parse(f"flowchart TB\n  {line}\n").unlabelled == [(2, line)]


@pytest.mark.parametrize(
    ("line", "dotted"),
    [('a -- "x" --> b', False), ('a -. "x" .-> b', True), ('a == "x" ==> b', False), ("a -.->|x| b", True)],
)
def test_a_labelled_link_is_read(line: str, dotted: bool) -> None:
    assert parse(f"flowchart TB\n  {line}\n").links == [Link(2, "a", "b", "x", dotted)]
