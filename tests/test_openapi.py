"""/openapi.json describes every answer the service gives, so that a client or a fuzzer can rely on it."""

from typing import Any

from fastapi.testclient import TestClient

from app.health import LIVENESS_PATH, READINESS_PATH
from app.problems import PROBLEM_MEDIA_TYPE


def operations(spec: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(path, method): operation for path, item in spec["paths"].items() for method, operation in item.items()}


def test_every_operation_and_response_is_documented(client: TestClient) -> None:
    documented = {
        key: set(operation["responses"]) for key, operation in operations(client.get("/openapi.json").json()).items()
    }
    assert documented == {
        ("/hello/{username}", "put"): {"204", "400", "413", "415", "503"},
        ("/hello/{username}", "get"): {"200", "400", "404", "503"},
        (LIVENESS_PATH, "get"): {"200"},
        (READINESS_PATH, "get"): {"200", "503"},
    }


def test_errors_are_documented_as_problem_details(client: TestClient) -> None:
    for (_, _), operation in operations(client.get("/openapi.json").json()).items():
        for status, response in operation["responses"].items():
            if status.startswith(("4", "5")):
                schema = response["content"][PROBLEM_MEDIA_TYPE]["schema"]
                assert set(schema["required"]) == {"type", "title", "status", "detail"}
            if status == "503":
                assert "Retry-After" in response["headers"]


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """The schema itself, where `schema` may be a local $ref into the document's components."""
    if "$ref" not in schema:
        return schema
    *_, name = schema["$ref"].split("/")
    resolved: dict[str, Any] = document["components"]["schemas"][name]
    return resolved


def test_the_username_and_body_carry_the_contract(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    spec = operations(document)
    put = spec[("/hello/{username}", "put")]
    (username,) = put["parameters"]
    assert username["schema"]["pattern"] == "^[A-Za-z]{1,100}$"
    assert (username["schema"]["minLength"], username["schema"]["maxLength"]) == (1, 100)
    body = resolve(document, put["requestBody"]["content"]["application/json"]["schema"])
    assert body["required"] == ["dateOfBirth"]
    assert body["additionalProperties"] is False
    assert body["properties"]["dateOfBirth"]["pattern"] == "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
    assert body["properties"]["dateOfBirth"]["type"] == "string"
    greeting = spec[("/hello/{username}", "get")]["responses"]["200"]["content"]["application/json"]["schema"]
    assert greeting == {"$ref": "#/components/schemas/Greeting"}


def test_docs_page_is_served(client: TestClient) -> None:
    response = client.get("/docs")
    assert response.status_code == 200
    assert "openapi.json" in response.text
