"""`/docs` (Swagger UI) and `/redoc`, with their files served from the installed package.

FastAPI's own pages load Swagger UI and ReDoc from a CDN, so they are blank offline. The
`fastapi-offline` package ships both bundles; this router serves them from where it installed
them, so no JavaScript lives in this repository and no page reaches outside the server.
"""

from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

from app.errors import NotFound

router = APIRouter(include_in_schema=False)

ASSET_PREFIX = "/static/docs"
# The files of the package that the pages load; nothing else in its folder is served.
ASSETS = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css",
          "redoc.standalone.js": "text/javascript", "favicon.png": "image/png"}
# Versioned by the installed package, so a day's caching is safe.
ASSET_CACHE = {"Cache-Control": "public, max-age=86400"}


@lru_cache
def assets_dir() -> Path:
    import fastapi_offline

    return Path(fastapi_offline.__file__).parent / "static"


def _prefix(request: Request) -> str:
    return str(request.scope.get("root_path", ""))


@router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    root = _prefix(request)
    return get_swagger_ui_html(
        openapi_url=f"{root}{request.app.openapi_url}", title=f"{request.app.title} - Swagger UI",
        swagger_js_url=f"{root}{ASSET_PREFIX}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{ASSET_PREFIX}/swagger-ui.css",
        swagger_favicon_url=f"{root}{ASSET_PREFIX}/favicon.png")


# ReDoc's sidebar footer loads Redocly's logo from their CDN, and no option turns it off: the page
# may load images from this server alone, so the browser never asks, and ReDoc drops the logo.
REDOC_POLICY = {"Content-Security-Policy": "img-src 'self' data:"}


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    root = _prefix(request)
    page = get_redoc_html(
        openapi_url=f"{root}{request.app.openapi_url}", title=f"{request.app.title} - ReDoc",
        redoc_js_url=f"{root}{ASSET_PREFIX}/redoc.standalone.js",
        redoc_favicon_url=f"{root}{ASSET_PREFIX}/favicon.png", with_google_fonts=False)
    page.headers.update(REDOC_POLICY)
    return page


@router.get(ASSET_PREFIX + "/{name}")
def asset(name: str) -> FileResponse:
    if name not in ASSETS:
        raise NotFound(f"No API docs file {name!r}; expected one of {sorted(ASSETS)}")
    path = assets_dir() / name
    if not path.is_file():
        raise NotFound(f"{name} is not at {path}; reinstall the `fastapi-offline` package")
    return FileResponse(path, media_type=ASSETS[name], headers=ASSET_CACHE)
