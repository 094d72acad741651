"""The dashboard's files: served by the API, and nothing in them loaded from elsewhere."""

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

WEB = Path(__file__).resolve().parents[2] / "app" / "web"


def test_index_is_served_at_the_root_with_its_scripts(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    for src in ("/static/plotly.min.js", "/static/app.js", "/static/style.css"):
        assert src in response.text


@pytest.mark.parametrize("path,media_type", [("/static/app.js", "text/javascript"),
                                             ("/static/style.css", "text/css"),
                                             ("/static/plotly.min.js", "text/javascript")])
def test_static_files_have_their_media_types(client: TestClient, path: str,
                                             media_type: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(media_type)


def test_plotly_comes_from_the_installed_package(client: TestClient) -> None:
    import plotly

    bundle = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    assert client.get("/static/plotly.min.js").content == bundle.read_bytes()
    # No copy of third-party code in the repository.
    assert not (WEB / "plotly.min.js").exists()


@pytest.mark.parametrize("name", ["routes.py", "__init__.py", "..%2Froutes.py", "missing.js"])
def test_only_the_dashboards_files_are_served(client: TestClient, name: str) -> None:
    response = client.get(f"/static/{name}")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")


def test_nothing_is_loaded_from_the_internet() -> None:
    for name in ("index.html", "app.js", "style.css"):
        text = (WEB / name).read_text()
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", text, re.IGNORECASE), name
        assert "@import" not in text and "cdn" not in text.lower(), name


def test_the_dashboard_is_not_in_the_api_schema(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert "/" not in paths and not any(p.startswith("/static") for p in paths)
