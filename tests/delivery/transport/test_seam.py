"""The transport seam holds in the import graph: only `delivery.transport` knows which client runs.

Read from the source by grimp (imports inside functions and under
TYPE_CHECKING included), so a shortcut around the seam fails here.
"""

from __future__ import annotations

import grimp
import pytest

CLIENT_MODULES = ("delivery.transport.http1", "delivery.transport.aiohttp_client")
#: The modules on either side of the seam that once imported each other.
SEAM_NEIGHBOURS = ("delivery.sender", "delivery.classify", "delivery.records", "delivery.worker")


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("delivery", include_external_packages=True)


@pytest.mark.parametrize("client", CLIENT_MODULES)
def test_only_the_factory_imports_a_client(graph: grimp.ImportGraph, client: str) -> None:
    assert graph.find_modules_that_directly_import(client) == {"delivery.transport"}


def test_only_the_aiohttp_client_imports_aiohttp(graph: grimp.ImportGraph) -> None:
    assert graph.find_modules_that_directly_import("aiohttp") == {"delivery.transport.aiohttp_client"}


def test_the_transport_imports_nothing_above_it(graph: grimp.ImportGraph) -> None:
    upstream = graph.find_upstream_modules("delivery.transport", as_package=True)
    above = {m for m in upstream if m.startswith("delivery") and not m.startswith("delivery.transport")}
    assert above == set()


def test_no_import_cycle_runs_through_the_seam(graph: grimp.ImportGraph) -> None:
    modules = {*SEAM_NEIGHBOURS, *graph.find_descendants("delivery.transport"), "delivery.transport"}
    cycles = [
        (module, imported)
        for module in sorted(modules)
        for imported in sorted(graph.find_modules_directly_imported_by(module))
        if imported.startswith("delivery") and graph.chain_exists(importer=imported, imported=module)
    ]
    assert cycles == []
