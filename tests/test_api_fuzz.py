"""A fuzz run of the API from its own OpenAPI document against a server on loopback: no request, valid or
not, gets a 500, every answer matches the document, every error is the contract's envelope, a request the
document calls valid is accepted (ST202) and one it calls invalid is refused (ST201)."""

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

from nexus_query.api import create_app
from nexus_query.api.auth import CAPABILITY_PREFIX
from tests.helpers import ACME_KEY

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          positive_data_acceptance, negative_data_rejection]
CONFIG = Path(__file__).resolve().parents[1] / "schemathesis.toml"  # the one rule the document cannot state
# Every operation the app documents, including ones added later by other domains.
OPERATIONS = [f"{method.upper()} {path}" for path, ops in create_app().openapi()["paths"].items() for method in ops]


def assert_enveloped(response) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error"} and isinstance(body["error"]["code"], str) and body["error"]["message"]
        assert "Traceback" not in response.text


def fuzz(base_url: str, operation_label: str, mode: GenerationMode, api_key: str, max_examples: int) -> int:
    """Run ``max_examples`` generated requests of one operation; returns how many were sent."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json", config=SchemathesisConfig.from_path(CONFIG))
    operation = next(r.ok() for r in schema.get_all_operations() if r.ok().label == operation_label)
    sent = []

    @settings(max_examples=max_examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode), existing_space=st.booleans())
    def run(case, existing_space):
        if existing_space and mode == GenerationMode.POSITIVE and "space_id" in (case.path_parameters or {}):
            case.path_parameters["space_id"] = "main"  # so generated bodies reach the search itself
        response = case.call(base_url=base_url, headers={"Authorization": f"Bearer {api_key}"})
        sent.append(response.status_code)
        case.validate_response(response, checks=CHECKS)
        assert_enveloped(response)
        path = operation_label.split()[1]
        if api_key != ACME_KEY and path.startswith("/nexus/") and not path.startswith(CAPABILITY_PREFIX):
            assert response.status_code == 401  # a capability link's token is its own permission

    run()
    return len(sent)


@pytest.mark.slow
@pytest.mark.parametrize("operation,mode", [(op, GenerationMode.POSITIVE) for op in OPERATIONS]
                         + [(op, GenerationMode.NEGATIVE) for op in OPERATIONS if "{" in op])  # healthz takes no input
def test_fuzzed_requests_with_a_valid_key_never_break_the_contract(api, operation, mode):  # noqa: F811
    _, _, base_url = api
    assert fuzz(base_url, operation, mode, ACME_KEY, max_examples=40) > 0


@pytest.mark.slow
@pytest.mark.parametrize("operation", OPERATIONS)
def test_fuzzed_requests_without_a_valid_key_are_401_envelopes(api, operation):  # noqa: F811
    _, _, base_url = api
    assert fuzz(base_url, operation, GenerationMode.POSITIVE, "not-a-key", max_examples=10) > 0
