"""The API reference at /docs and /redoc: served offline from the installed package, and complete."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.api.routes.docs import ASSET_PREFIX, ASSETS, assets_dir
from app.config import Settings
from tests.server import ServerProcess
from tests.web.browser import chromium_page, require_chromium

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("page,needs", [("/docs", ["swagger-ui-bundle.js", "swagger-ui.css"]),
                                        ("/redoc", ["redoc.standalone.js"])])
def test_doc_pages_load_their_files_from_this_server(client: TestClient, page: str,
                                                    needs: list[str]) -> None:
    html = client.get(page).text
    for name in needs:
        assert f'"{ASSET_PREFIX}/{name}"' in html, name
    # Nothing from a CDN or a font service: the pages must work offline.
    assert "http://" not in html and "https://" not in html, html


@pytest.mark.parametrize("name", sorted(ASSETS))
def test_doc_files_are_the_installed_packages(client: TestClient, name: str) -> None:
    response = client.get(f"{ASSET_PREFIX}/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(ASSETS[name])
    assert response.content == (assets_dir() / name).read_bytes()
    # Served from the installed package (site-packages, even when the venv sits in the clone as
    # `make` puts it), never a copy among the repository's files.
    assert "site-packages" in assets_dir().parts
    assert (REPO_ROOT / "app").resolve() not in assets_dir().parents


@pytest.mark.parametrize("name", ["core.py", "..%2Fcore.py", "missing.js"])
def test_only_the_doc_files_are_served(client: TestClient, name: str) -> None:
    response = client.get(f"{ASSET_PREFIX}/{name}")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")


@contextmanager
def offline_page(settings: Settings, tmp_path: Path) -> Iterator[tuple[Any, str, list[str]]]:
    """A browser page that may reach nothing but a `statecast serve`: (page, server URL, the
    outside addresses it asked for, refused)."""
    require_chromium()
    server = ServerProcess(settings, tmp_path / "serve.log", workers=0)
    try:
        with chromium_page() as page:
            outside: list[str] = []

            def only_the_server(route: Any) -> None:
                if route.request.url.startswith(server.url):
                    route.continue_()
                else:
                    outside.append(route.request.url)
                    route.abort()

            page.route("**/*", only_the_server)
            yield page, server.url, outside
    finally:
        server.stop()


def test_swagger_ui_renders_the_operations_offline(settings: Settings, tmp_path: Path) -> None:
    """In a browser that may reach nothing but the server, /docs lists the API's operations."""
    with offline_page(settings, tmp_path) as (page, url, outside):
        page.goto(url + "/docs")
        page.wait_for_selector(".opblock-summary-path", timeout=30_000)
        paths = page.eval_on_selector_all(
            ".opblock-summary-path", "nodes => nodes.map(n => n.dataset.path || n.innerText)")
        assert "/v1/series" in paths and "/v1/streams/{stream_id}/readings" in paths, paths
        assert outside == []


def test_redoc_renders_offline_without_asking_for_redoclys_logo(settings: Settings,
                                                                 tmp_path: Path) -> None:
    """ReDoc's footer would load a logo from Redocly's CDN: the page's policy keeps it local."""
    with offline_page(settings, tmp_path) as (page, url, outside):
        page.goto(url + "/redoc")
        page.wait_for_selector("text=API docs by Redocly", timeout=30_000)
        page.wait_for_selector("h2 >> text=Upload readings as JSON or CSV (all or nothing)")
        page.wait_for_timeout(500)
        assert outside == []
        assert page.query_selector("img[alt='redocly logo']") is None
