"""Serve the dashboard at `/` and its static files, plotly.js from the installed plotly package."""

from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from app.errors import NotFound

router = APIRouter(include_in_schema=False)

WEB_DIR = Path(__file__).parent
# The dashboard's own files; nothing else in this folder is served.
ASSETS = {"app.js": "text/javascript", "style.css": "text/css"}
# The page's files change with each release; plotly.js is versioned by its package.
NO_CACHE = {"Cache-Control": "no-cache"}
PLOTLY_CACHE = {"Cache-Control": "public, max-age=86400"}


@lru_cache
def plotly_bundle() -> Path:
    """plotly.min.js as the `plotly` Python package ships it, so no JS lives in this repository."""
    import plotly

    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise NotFound(f"plotly.min.js is not at {path}; reinstall the `plotly` package")
    return path


@router.get("/")
def index() -> FileResponse:
    return FileResponse(WEB_DIR / "index.html", media_type="text/html", headers=NO_CACHE)


@router.get("/static/plotly.min.js")
def plotly_js() -> FileResponse:
    return FileResponse(plotly_bundle(), media_type="text/javascript", headers=PLOTLY_CACHE)


@router.get("/static/{name}")
def asset(name: str) -> FileResponse:
    if name not in ASSETS:
        raise NotFound(f"No static file {name!r}; expected one of {sorted(ASSETS)}")
    return FileResponse(WEB_DIR / name, media_type=ASSETS[name], headers=NO_CACHE)
