"""``nexus mcp``: the agents' door. A Model Context Protocol server (the ``server`` extra) over the spaces of
one API key: find, store, assemble and read cognition artifacts, KPI status, forget, list spaces.

    nexus mcp                                         # stdio; the key in NEXUS_API_KEY
    nexus mcp --transport http --host 127.0.0.1 --port 8765   # streamable HTTP at /mcp, Bearer key per request

``server`` (FastMCP wiring), ``tools`` (what each tool does, plain functions), ``auth`` (who calls),
``pipelines`` (the two calls that run a job here and wait), ``models`` (structured output).
"""
