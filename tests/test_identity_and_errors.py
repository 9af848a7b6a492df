import dataclasses

import pytest

from nexus_query import errors
from nexus_query.context import RequestContext, validate_id


@pytest.mark.parametrize("good", ["acme", "a", "t_acme", "acme-2", "0day", "a" * 63])
def test_validate_id_accepts_lowercase_ascii_ids(good):
    assert validate_id(good, "tenant_id") == good


@pytest.mark.parametrize(
    "bad",
    ["", "../globex", "globex/..", "/etc", "acme/main", "ACME", "acme.main", "-acme", "_global",
     "a" * 64, "acme\n", "аcme",  # Cyrillic 'а'
     "acme\u200b", "ａｃｍｅ", None, 7],
)
def test_validate_id_refuses_paths_lookalikes_and_non_strings(bad):
    with pytest.raises(errors.InvalidId) as info:
        validate_id(bad, "tenant_id")
    assert info.value.envelope()["error"]["field"] == "tenant_id"


def test_request_context_is_immutable_and_validated():
    ctx = RequestContext("acme")
    assert (ctx.tenant_id, ctx.project_id, ctx.environment) == ("acme", "default", "dev")
    with pytest.raises(dataclasses.FrozenInstanceError):
        ctx.tenant_id = "globex"  # type: ignore[misc]
    with pytest.raises(errors.InvalidId):
        RequestContext("../globex")


def test_missing_route_renders_the_contract_envelope_with_503():
    err = errors.MissingRoute("nexus_store")
    assert err.status == 503
    body = err.envelope()
    assert body["error"]["code"] == "nexus_store.missing_route"
    assert body["error"]["resource_kind"] == "nexus_store"
    assert body["error"]["message"]


@pytest.mark.parametrize(
    "cls, code, status",
    [
        (errors.CursorInvalid, "nexus.cursor_invalid", 410),
        (errors.InvalidRequest, "nexus.invalid_request", 400),
        (errors.ValidationFailed, "nexus.validation_failed", 422),
        (errors.Unauthorized, "nexus.unauthorized", 401),
        (errors.GlobalSpaceReadOnly, "nexus.global_space_read_only", 403),
        (errors.NotFound, "nexus.not_found", 404),
        (errors.EmbedderMismatch, "nexus.embedder_mismatch", 409),
        (errors.BudgetExceeded, "nexus.budget_exceeded", 402),
    ],
)
def test_each_error_knows_its_code_and_status(cls, code, status):
    err = cls("something went wrong", detail_field="x")
    assert (err.code, err.status) == (code, status)
    assert err.envelope() == {"error": {"code": code, "message": "something went wrong", "detail_field": "x"}}
    assert isinstance(err, errors.NexusError)
