import pytest

from nexus_query.config import FileRoute
from nexus_query.context import RequestContext
from nexus_query.errors import Forbidden, InvalidId, InvalidRequest
from nexus_query.paths import TenantFiles, safe_relative_path, space_location
from nexus_query.routing import RoutingRegistry

ACME = RequestContext("acme")


def test_space_path_scheme_is_root_tenant_project_space(nexus_home):
    route = RoutingRegistry.default().store_route(ACME)
    location = space_location(route, ACME, "main")
    assert location.dataset_uri == f"{nexus_home}/lance/acme/default/main.lance"


@pytest.mark.parametrize("space", ["../globex", "/etc", "main/../../globex", "Main", "main.lance", ""])
def test_crafted_space_ids_never_become_paths(nexus_home, space):
    route = RoutingRegistry.default().store_route(ACME)
    with pytest.raises(InvalidId):
        space_location(route, ACME, space)


@pytest.mark.parametrize(
    "path", ["../globex/default/x.json", "/etc/passwd", "a/../../globex/x", "s3://bucket/x", "~/x",
             "a//b", "a/./b", "a\\..\\b", "", ".."],
)
def test_safe_relative_path_refuses_escapes(path):
    with pytest.raises((Forbidden, InvalidRequest)):
        safe_relative_path(path)


def test_tenant_files_stay_under_the_tenant_root(tmp_path):
    route = FileRoute(protocol="file", bucket=str(tmp_path / "blobs"))
    acme = TenantFiles.for_tenant(route, ACME)
    globex = TenantFiles.for_tenant(route, RequestContext("globex"))
    own = acme.write_bytes_atomic(b"hello", "media", "cat.png")
    assert own == f"{tmp_path}/blobs/acme/default/media/cat.png"
    assert acme.relative(own) == "media/cat.png"
    assert acme.relative("file://" + own) == "media/cat.png"
    assert acme.relative("media/cat.png") == "media/cat.png"
    globex_file = globex.write_bytes_atomic(b"secret", "media", "plan.txt")
    for reference in (globex_file, "file://" + globex_file,
                      f"{tmp_path}/blobs/acme/default/../../globex/default/media/plan.txt",
                      "s3://bucket/acme/default/media/cat.png"):
        with pytest.raises(Forbidden):
            acme.relative(reference)
    assert acme.list("media") == ["media/cat.png"]
    assert acme.read_bytes("media", "cat.png") == b"hello"
