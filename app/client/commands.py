"""The client subcommands of `statecast`: login, series, upload, train, models, job, forecast,
stream.

Each talks to a running API over HTTP (`--url` and `--key` before or after the subcommand, else
STATECAST_URL / STATECAST_API_KEY, else the user config file: app/client/credentials.py), prints
results on stdout and progress on stderr, and turns an API error into one line on stderr with
exit status 1.
"""

import argparse
import contextlib
import csv
import functools
import getpass
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.client.api import (
    DEFAULT_URL,
    MAX_BULK_READINGS,
    ApiClient,
    ApiError,
    ClientError,
    drop_none,
)
from app.client.credentials import (
    KEY_ENV,
    URL_ENV,
    resolve_key,
    resolve_url,
    write_user_config,
)
from app.client.fleet import FleetOutcome, plan_requests, read_fleet_csv, rows_named
from app.client.output import cell, metrics_table, table
from app.client.progress import ProgressBar, format_bytes, format_duration
from app.config import Settings

POLL_INTERVAL_S = 0.5
# A job still queued after this long is probably waiting for a worker that is not running.
UNCLAIMED_WARNING_S = 30.0
SERIES_PAGE_LIMIT = 1000
FINAL_JOB_STATUSES = ("succeeded", "failed", "cancelled")
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130

# Replaced in tests by a factory that answers from an in-process app.
connect: Callable[[str, str | None], ApiClient] = ApiClient.connect

Handler = Callable[[ApiClient, argparse.Namespace], int]

# The flags of `statecast train`, one per field of app.ml.spec.ModelSpec (a test keeps them in
# step); only flags given are sent, so the server's defaults stay the single source of truth.
SPEC_FLAGS: list[tuple[str, dict[str, Any]]] = [
    ("cell", {"choices": ["lstm", "gru", "simple_rnn"], "help": "recurrent cell (default gru)"}),
    ("units", {"type": int, "help": "units per layer (default 16)"}),
    ("layers", {"type": int, "help": "stacked recurrent layers (default 1)"}),
    ("dropout", {"type": float, "help": "dropout between layers, in [0, 1) (default 0)"}),
    ("stateful", {"action": argparse.BooleanOptionalAction,
                  "help": "a stream model: hidden state carried from reading to reading "
                          "(default yes, unless bidirectional)"}),
    ("bidirectional", {"action": argparse.BooleanOptionalAction,
                       "help": "read windows both ways (default no)"}),
    ("window", {"type": int, "help": "input steps (default: one day of readings)"}),
    ("horizon", {"type": int, "help": "steps forecast at once (default: one day of readings)"}),
    ("calendar", {"action": argparse.BooleanOptionalAction,
                  "help": "time-of-day and weekday inputs (default: on unless deseasonalised)"}),
    ("deseasonalize", {"choices": ["mstl", "none"],
                       "help": "remove daily and weekly seasonality first (default mstl)"}),
    ("covariates", {"type": lambda text: [n for n in text.split(",") if n],
                    "help": "comma-separated covariates the model reads; '' for none "
                            "(default: all the series links)"}),
    ("covariate_inputs", {"choices": ["profile", "network", "both"],
                          "help": "where covariates enter: a regression profile, the network's "
                                  "inputs (window models), or both (default profile)"}),
    ("loss", {"choices": ["mae", "mse"], "help": "training loss (default mae)"}),
    ("epochs", {"type": int, "help": "most training epochs (default 40)"}),
    ("patience", {"type": int, "help": "epochs without improvement before stopping (default 8)"}),
    ("batch_size", {"type": int, "help": "windows per batch (default 64)"}),
    ("learning_rate", {"type": float, "help": "Adam learning rate (default 0.001)"}),
    ("seed", {"type": int, "help": "random seed (default 0)"}),
    ("chunk", {"type": int, "help": "truncated BPTT steps of a stateful model"}),
    ("validation_fraction", {"type": float, "help": "share held out for validation (default 0.1)"}),
    ("test_fraction", {"type": float, "help": "share held out for the test metrics (default 0.1)"}),
    ("auto", {"action": argparse.BooleanOptionalAction,
              "help": "search candidate specs by validation accuracy (the choice when unsure)"}),
    ("budget_s", {"type": int, "help": "seconds the auto search may spend (default 600)"}),
]


TIMEZONE_HELP = ("IANA time zone, e.g. Europe/Berlin (default UTC): timestamps without an "
                 "offset are its local times")
# The upload flags sent as query options, by their API names.
UPLOAD_OPTIONS = ("ts_col", "value_col", "sep", "decimal", "ts_format", "dayfirst", "ambiguous",
                  "on_conflict", "covariate_cols")
URL_HELP = f"the API's address (else {URL_ENV}, the saved config, or {DEFAULT_URL})"
KEY_HELP = (f"API key (else {KEY_ENV}, the config `statecast login` or `statecast serve` saved, "
            "or STATECAST_KEY_FILE)")


def add_global_options(parser: argparse.ArgumentParser) -> None:
    """--url and --key before the subcommand; the subcommands accept them after it too."""
    parser.add_argument("--url", help=URL_HELP + "; client commands")
    parser.add_argument("--key", help=KEY_HELP + "; client commands")


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: given after the subcommand they override the ones before it; not given, they
    # leave those alone (a default here would overwrite them with None).
    common.add_argument("--url", default=argparse.SUPPRESS, help=URL_HELP)
    common.add_argument("--key", default=argparse.SUPPRESS, help=KEY_HELP)
    common.add_argument("--json", action="store_true", help="print the API's JSON as it is")
    return common


def add(parent: Any, name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
    """A client subcommand `name` under `parent`, running `handler` with a connected client."""
    parser: argparse.ArgumentParser = parent.add_parser(name, parents=[_common_options()],
                                                        help=help_text)
    parser.set_defaults(handler=functools.partial(_run, handler))
    return parser


def register_keys(key_commands: Any) -> None:
    """`statecast keys list|revoke|rotate`: the keys of the tenant of the key in use."""
    add(key_commands, "list", keys_list, "list this tenant's keys (client)")
    revoke = add(key_commands, "revoke", keys_revoke,
                 "revoke a key: refused at once, within 5 s on every replica (client)")
    revoke.add_argument("key_id", type=int)
    rotate = add(key_commands, "rotate", keys_rotate,
                 "make a replacement of a key (same name and scope), printed once (client)")
    rotate.add_argument("key_id", type=int)
    rotate.add_argument("--revoke", action="store_true",
                        help="revoke the old key at once (else once the new one is deployed)")


def register(subparsers: Any) -> None:
    """Add the client subcommands to `statecast`'s subparsers."""
    common = _common_options()
    login = subparsers.add_parser("login", parents=[common],
                                  help="check a key against the API and save it (client)")
    login.set_defaults(handler=login_command)

    def group(name: str, help_text: str) -> Any:
        parser = subparsers.add_parser(name, help=help_text)
        return parser.add_subparsers(dest=f"{name}_command", required=True, metavar="ACTION")

    series = group("series", "create, list, show and delete series (client)")
    create = add(series, "create", series_create, "create a series")
    create.add_argument("name")
    create.add_argument("--freq", required=True, help="pandas offset alias: 15min, 30min, h, D")
    create.add_argument("--timezone", help=TIMEZONE_HELP)
    create.add_argument("--unit", help="unit of the values, e.g. kWh")
    create.add_argument("--description")
    add_calendar_options(create)
    create.add_argument("--covariate", action="append", default=[], metavar="NAME=SERIES",
                        help="read SERIES (name or id) as the covariate NAME, its future known "
                             "(a weather forecast); repeatable")
    create.add_argument("--past-covariate", action="append", default=[], metavar="NAME=SERIES",
                        help="the same, for a covariate whose future is not known; repeatable")
    update = add(series, "update", series_update,
                 "change a series' unit, description, holidays or special days")
    update.add_argument("name", help="series name (or id)")
    update.add_argument("--unit")
    update.add_argument("--description")
    add_calendar_options(update)
    update.add_argument("--no-holidays", action="store_true", help="remove its holidays")
    update.add_argument("--no-special-days", action="store_true",
                        help="remove its special days")
    link = add(series, "link", series_link, "make a series read another as a covariate")
    link.add_argument("name", help="series name (or id)")
    link.add_argument("covariate", help="the covariate series' name (or id)")
    link.add_argument("--as", dest="covariate_name", required=True, metavar="NAME",
                      help="the covariate's name (in specs, uploads and forecasts)")
    link.add_argument("--past-only", action="store_true",
                      help="its future is not known: models read only its past")
    unlink = add(series, "unlink", series_unlink, "stop a series reading a covariate")
    unlink.add_argument("name", help="series name (or id)")
    unlink.add_argument("covariate_name", metavar="NAME", help="the covariate's name")
    add(series, "list", series_list, "list the series of the key's tenant")
    show = add(series, "show", series_show, "a series and its extent")
    show.add_argument("name", help="series name (or id)")
    delete = add(series, "delete", series_delete, "delete a series, its readings and models")
    delete.add_argument("name", help="series name (or id)")
    delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    upload = add(subparsers, "upload", upload_file, "upload a CSV file of readings (client)")
    upload.add_argument("file", type=Path)
    upload.add_argument("--series", required=True, help="series name (or id)")
    upload.add_argument("--freq", help="create the series with this frequency if it is missing "
                        "(removed again if the upload fails)")
    upload.add_argument("--timezone", help=TIMEZONE_HELP + "; with --freq")
    # One flag per query option of POST /v1/series/{id}/readings (a test keeps them in step).
    upload.add_argument("--ts-col", help="timestamp column (default the first)")
    upload.add_argument("--value-col", help="value column (default the second)")
    upload.add_argument("--sep", help="field separator (default ,)")
    upload.add_argument("--decimal", choices=[".", ","], help="decimal mark (default .)")
    upload.add_argument("--ts-format", help="strftime format of every timestamp, e.g. "
                        "'%%d/%%m/%%Y %%H:%%M' (default: ISO 8601, else inferred for the column)")
    upload.add_argument("--dayfirst", action=argparse.BooleanOptionalAction,
                        help="12/08/2000 is 12 August (--no-dayfirst: December 8); default: "
                             "inferred, and a column that reads both ways is refused")
    upload.add_argument("--ambiguous", choices=["earliest", "latest", "infer"],
                        help="a local time the clocks repeat in autumn: the first, the second, "
                             "or inferred from the order of the rows (default: refused)")
    upload.add_argument("--on-conflict", choices=["error", "replace"],
                        help="a stored timestamp sent with another value (default error)")
    upload.add_argument("--covariate-cols", metavar="COL[:NAME],...",
                        help="columns to store in the series' covariates, each the column of "
                             "the covariate of that name, or COL:NAME")

    train = add(subparsers, "train", train_model, "train a model in the background (client)")
    train.add_argument("--series", required=True, action="append",
                       help="series name (or id); repeat for one global model of several")
    for name, options in SPEC_FLAGS:
        if "type" in options:
            options = {**options, "metavar": name.upper()}
        train.add_argument("--" + name.replace("_", "-"), dest=f"spec_{name}", **options)
    train.add_argument("--wait", action="store_true",
                       help="follow the training with a progress bar, then print its metrics")

    models = group("models", "list, show and promote trained models (client)")
    models_list = add(models, "list", model_list, "list models, newest first")
    models_list.add_argument("--series", help="only models of this series (name or id)")
    model_show_parser = add(models, "show", model_show, "a model's spec and metrics")
    model_show_parser.add_argument("model_id", type=int)
    promote = add(models, "promote", model_promote, "make a model its series' default")
    promote.add_argument("model_id", type=int)

    job = group("job", "follow or cancel a background job (client)")
    job_show_parser = add(job, "show", job_show, "a job and its progress")
    job_show_parser.add_argument("job_id", type=int)
    job_show_parser.add_argument("--wait", action="store_true", help="follow it to the end")
    cancel = add(job, "cancel", job_cancel, "cancel a queued or running job")
    cancel.add_argument("job_id", type=int)

    forecast = add(subparsers, "forecast", forecast_series, "forecast a series (client)")
    forecast.add_argument("--series", required=True, help="series name (or id)")
    forecast.add_argument("--horizon", type=int,
                          help="steps ahead (default 48, or the rows of --covariates)")
    forecast.add_argument("--covariates", type=Path, metavar="FILE.csv",
                          help="known-future covariates for the steps ahead: a CSV with a "
                               "column per covariate (its name as header) and a row per step; a "
                               "ts or timestamp column, if any, must match the forecast's steps")
    forecast.add_argument("--fallback", choices=["no_covariates"],
                          help="if the covariates do not cover the horizon, forecast with a "
                               "model that reads none (the output says so)")
    forecast.add_argument("--level", type=int, action="append",
                          help="interval level in percent, repeatable (default 80 and 95)")
    forecast.add_argument("--csv", action="store_true", help="write CSV to stdout")
    forecast.add_argument("--plot", type=Path, metavar="FILE.png",
                          help="also draw history and forecast into this image")
    forecast.add_argument("--history", type=int, default=336,
                          help="readings of history drawn by --plot (default 336)")

    stream = group("stream", "feed readings to a stream and forecast its next step (client)")
    stream_create_parser = add(stream, "create", stream_create, "open a stream on a series")
    stream_create_parser.add_argument("--series", required=True, help="series name (or id)")
    stream_create_parser.add_argument("stream_id", nargs="?",
                                      help="your own id for the stream (default: the server "
                                           "makes one), as the other stream commands take it")
    stream_create_parser.add_argument("--model", type=int, help="pin this model (default: follow "
                                                                 "the series' default model)")
    stream_show_parser = add(stream, "show", stream_show, "a stream's state and accuracy")
    stream_show_parser.add_argument("stream_id")
    push = add(stream, "push", stream_push, "send readings: --ts/--value, or --file CSV")
    push.add_argument("stream_id")
    push.add_argument("--ts", help="timestamp of one reading")
    push.add_argument("--value", type=float, help="value of that reading")
    push.add_argument("--file", help="CSV of ts,value rows with a header ('-' for stdin)")
    push_many = add(stream, "push-many", stream_push_many,
                    "send readings of many streams at once from a stream_id,ts,value CSV")
    push_many.add_argument("--file", required=True,
                           help="CSV with a header naming stream_id, ts and value ('-' for stdin; "
                                "an empty value is a missing reading)")
    push_many.add_argument("--rewarm", action="store_true",
                           help="restart a stream from its stored history when a gap is too "
                                "long to fill, instead of refusing it")
    stream_forecast_parser = add(stream, "forecast", stream_forecast, "the next-step forecast")
    stream_forecast_parser.add_argument("stream_id")
    stream_forecast_parser.add_argument("--horizon", type=int, default=1, help="steps (default 1)")


def _run(handler: Handler, settings: Settings, args: argparse.Namespace) -> int:
    """Connect, run one client command, and turn failures into one line and an exit status."""
    try:
        key = resolve_key(args.key, settings.key_file).value
    except ClientError as exc:
        print(f"statecast: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    client = connect(resolve_url(args.url).value, key)
    try:
        return handler(client, args)
    except ClientError as exc:
        print(f"statecast: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("\nstatecast: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        client.close()


def login_command(settings: Settings, args: argparse.Namespace) -> int:
    """`statecast login`: check the key against the API, then save URL and key for later."""
    url = resolve_url(args.url).value
    key = args.key
    if not key:
        key = (getpass.getpass(f"API key for {url}: ") if sys.stdin.isatty()
               else sys.stdin.readline()).strip()
    if not key:
        print("statecast: error: no key given (--key KEY, or type it when asked)", file=sys.stderr)
        return EXIT_FAILED
    client = connect(url, key)
    try:
        client.get("/v1/series", limit=1)
    except ClientError as exc:
        print(f"statecast: error: not saved: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        client.close()
    path = write_user_config(url=url, key=key)
    print(f"key for {url} saved in {path} (mode 0600); later commands use it from any directory")
    return 0


def emit(args: argparse.Namespace, body: Any, text: str) -> None:
    print(json.dumps(body, indent=2) if args.json else text)


def find_series(client: ApiClient, ref: str) -> dict[str, Any]:
    """A series by name, or by id when no series has that name."""
    names: list[str] = []
    offset = 0
    while True:
        page = client.get("/v1/series", offset=offset, limit=SERIES_PAGE_LIMIT)
        for series in page["data"]:
            if series["name"] == ref:
                found: dict[str, Any] = series
                return found
            names.append(series["name"])
        offset += len(page["data"])
        if not page["data"] or offset >= page["count"]:
            break
    if ref.isdigit():
        by_id: dict[str, Any] = client.get(f"/v1/series/{ref}")
        return by_id
    known = ", ".join(repr(n) for n in names[:10]) or "none yet"
    raise ClientError(f"No series named {ref!r} (this key's series: {known}); "
                   "create one with `statecast series create NAME --freq 30min`")


# --- keys -----------------------------------------------------------------------------------

def keys_list(client: ApiClient, args: argparse.Namespace) -> int:
    body = client.get("/v1/keys")
    rows = [[k["id"], k["name"], k["prefix"] + "...", k["scope"], k["created_at"][:19],
             (k["last_used_at"] or "")[:19] or None, (k["expires_at"] or "")[:19] or None,
             "*" if k["current"] else ""] for k in body["data"]]
    emit(args, body, table(["id", "name", "prefix", "scope", "created", "last used", "expires",
                            "in use"], rows) + f"\n({body['count']} keys)")
    return 0


def keys_revoke(client: ApiClient, args: argparse.Namespace) -> int:
    client.delete(f"/v1/keys/{args.key_id}")
    if not args.json:
        print(f"revoked key {args.key_id}")
    return 0


def keys_rotate(client: ApiClient, args: argparse.Namespace) -> int:
    """Create, deploy, revoke: this makes the replacement; the old key works until revoked."""
    old = next((k for k in client.get("/v1/keys")["data"] if k["id"] == args.key_id), None)
    if old is None:
        raise ClientError(f"No key with id {args.key_id} (see `statecast keys list`)")
    new = client.post("/v1/keys", {"name": old["name"], "scope": old["scope"]})
    if args.revoke:
        client.delete(f"/v1/keys/{args.key_id}")
    emit(args, new, new["key"])
    then = (f"key {args.key_id} is revoked" if args.revoke else
            f"deploy it, then revoke the old one: statecast keys revoke {args.key_id}")
    print(f"(key {new['id']} replaces key {args.key_id}, shown only once; {then})",
          file=sys.stderr)
    return 0


# --- series ---------------------------------------------------------------------------------

def add_calendar_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--holidays", metavar="CODE",
                        help="public holidays of a country[-subdivision]: US, GB-ENG, AU-VIC")
    parser.add_argument("--special-day", action="append", metavar="DATE=LABEL",
                        help="a day off of your own (2024-12-27=plant shutdown); repeatable, "
                             "the list replaces the series' special days")


def pairs(items: list[str], option: str) -> list[tuple[str, str]]:
    """`KEY=VALUE` arguments split once, or a ClientError naming the option."""
    found = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise ClientError(f"{option} takes KEY=VALUE, not {item!r}")
        found.append((key, value))
    return found


def calendar_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The calendar fields the flags set (only those given)."""
    fields: dict[str, Any] = {}
    if args.holidays is not None:
        fields["holidays"] = args.holidays
    if args.special_day:
        fields["special_days"] = [{"date": day, "label": label}
                                  for day, label in pairs(args.special_day, "--special-day")]
    return fields


def covariate_link(client: ApiClient, name: str, ref: str, known_future: bool
                   ) -> dict[str, Any]:
    return {"series_id": find_series(client, ref)["id"], "name": name,
            "known_future": known_future}


def series_create(client: ApiClient, args: argparse.Namespace) -> int:
    links = [covariate_link(client, name, ref, True)
             for name, ref in pairs(args.covariate, "--covariate")]
    links += [covariate_link(client, name, ref, False)
              for name, ref in pairs(args.past_covariate, "--past-covariate")]
    body = client.post("/v1/series", drop_none({
        "name": args.name, "freq": args.freq, "timezone": args.timezone, "unit": args.unit,
        "description": args.description, "covariates": links, **calendar_fields(args)}))
    emit(args, body, f"created series {body['id']} {body['name']!r} ({body['freq']})"
         + series_inputs_text(body))
    return 0


def series_inputs_text(series: dict[str, Any]) -> str:
    """The series' covariates and calendar, one line each (nothing when it has none)."""
    lines = [f"\ncovariate {c['name']!r}: series {c['series_id']}"
             + ("" if c["known_future"] else " (past only)") for c in series.get("covariates", [])]
    if series.get("holidays"):
        lines.append(f"\nholidays {series['holidays']}")
    lines += [f"\nspecial day {d['date']}: {d['label']}" for d in series.get("special_days", [])]
    return "".join(lines)


def patch_series(client: ApiClient, args: argparse.Namespace, series: dict[str, Any],
                 changes: dict[str, Any]) -> int:
    body = client.patch(f"/v1/series/{series['id']}", changes)
    emit(args, body, f"series {body['id']} {body['name']!r}" + series_inputs_text(body))
    return 0


def series_update(client: ApiClient, args: argparse.Namespace) -> int:
    series = find_series(client, args.name)
    changes = {k: v for k, v in (("unit", args.unit), ("description", args.description))
               if v is not None}
    changes.update(calendar_fields(args))
    if args.no_holidays:
        changes["holidays"] = None
    if args.no_special_days:
        changes["special_days"] = []
    if not changes:
        raise ClientError("Nothing to change: give --unit, --description, --holidays, "
                          "--no-holidays, --special-day or --no-special-days")
    return patch_series(client, args, series, changes)


def series_link(client: ApiClient, args: argparse.Namespace) -> int:
    series = find_series(client, args.name)
    links = [c for c in series.get("covariates", []) if c["name"] != args.covariate_name]
    links.append(covariate_link(client, args.covariate_name, args.covariate, not args.past_only))
    return patch_series(client, args, series, {"covariates": links})


def series_unlink(client: ApiClient, args: argparse.Namespace) -> int:
    series = find_series(client, args.name)
    links = [c for c in series.get("covariates", []) if c["name"] != args.covariate_name]
    if len(links) == len(series.get("covariates", [])):
        raise ClientError(f"Series {series['name']!r} has no covariate named "
                          f"{args.covariate_name!r}")
    return patch_series(client, args, series, {"covariates": links})


def series_list(client: ApiClient, args: argparse.Namespace) -> int:
    body = client.get("/v1/series", limit=SERIES_PAGE_LIMIT)
    rows = [[s["id"], s["name"], s["freq"], s.get("unit"), s["created_at"][:19]]
            for s in body["data"]]
    emit(args, body, table(["id", "name", "freq", "unit", "created"], rows)
         + f"\n({body['count']} series)")
    return 0


def series_show(client: ApiClient, args: argparse.Namespace) -> int:
    series = find_series(client, args.name)
    body = client.get(f"/v1/series/{series['id']}")
    emit(args, body, record(body))
    return 0


def series_delete(client: ApiClient, args: argparse.Namespace) -> int:
    series = find_series(client, args.name)
    if not args.yes and sys.stdin.isatty():
        answer = input(f"Delete series {series['name']!r} with all its readings and models? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("not deleted", file=sys.stderr)
            return EXIT_FAILED
    client.delete(f"/v1/series/{series['id']}")
    emit(args, {"deleted": series["id"]}, f"deleted series {series['id']} {series['name']!r}")
    return 0


# --- upload ---------------------------------------------------------------------------------

def upload_file(client: ApiClient, args: argparse.Namespace) -> int:
    file: Path = args.file
    if not file.is_file():
        raise ClientError(f"No file {str(file)!r} to upload")
    created = False
    try:
        series = find_series(client, args.series)
    except ClientError:
        if not args.freq:
            raise
        series = client.post("/v1/series", drop_none(
            {"name": args.series, "freq": args.freq, "timezone": args.timezone}))
        created = True
    size_bytes = file.stat().st_size
    bar = ProgressBar(size_bytes, label=f"upload {file.name}")
    params = {name: getattr(args, name) for name in UPLOAD_OPTIONS}
    try:
        result = client.upload_csv(
            f"/v1/series/{series['id']}/readings", file, params,
            on_progress=lambda sent: bar.update(
                sent, f"{format_bytes(sent)} / {format_bytes(size_bytes)}"))
    except BaseException:
        if created:  # an empty series left behind would only be in the way of the next try
            with contextlib.suppress(ClientError):
                client.delete(f"/v1/series/{series['id']}")
        raise
    finally:
        bar.close()
    if created:
        print(f"created series {series['id']} {series['name']!r} ({series['freq']})",
              file=sys.stderr)
    emit(args, result,
         f"{result['received']} readings into {series['name']!r}: {result['inserted']} new, "
         f"{result['updated']} updated, {result['unchanged']} unchanged "
         f"({result['first_ts']} .. {result['last_ts']})"
         + "".join(f"\n{c['received']} readings into covariate {c['name']!r}: "
                   f"{c['inserted']} new, {c['updated']} updated, {c['unchanged']} unchanged"
                   for c in result.get("covariates", [])))
    return 0


# --- train, models, jobs --------------------------------------------------------------------

def spec_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The spec fields given as flags; the server fills in the rest."""
    return {name: getattr(args, f"spec_{name}") for name, _ in SPEC_FLAGS
            if getattr(args, f"spec_{name}") is not None}


def train_model(client: ApiClient, args: argparse.Namespace) -> int:
    series_ids = [find_series(client, ref)["id"] for ref in args.series]
    accepted = client.post("/v1/models", {"series_ids": series_ids, "spec": spec_from_args(args)})
    model, job = accepted["model"], accepted["job"]
    if not args.wait:
        emit(args, accepted, f"model {model['id']} is training as job {job['id']}; follow it with "
                             f"`statecast job show {job['id']} --wait`")
        return 0
    print(f"model {model['id']}, job {job['id']}", file=sys.stderr)
    return follow_job(client, args, job["id"])


def follow_job(client: ApiClient, args: argparse.Namespace, job_id: int) -> int:
    """Poll a job with a progress bar until it ends; print the model's metrics if it succeeded.

    While the job waits in the queue the bar says so, and once it has waited longer than
    UNCLAIMED_WARNING_S a line says that no worker has claimed it, and how to start one.
    """
    bar = ProgressBar(1, label=f"job {job_id}")
    started_s = time.monotonic()
    warned = False
    try:
        while True:
            job = client.get(f"/v1/jobs/{job_id}")
            waited_s = time.monotonic() - started_s
            progress = job.get("progress") or {}
            epochs = progress.get("epochs") or 1
            epoch = epochs if job["status"] == "succeeded" else progress.get("epoch") or 0
            if job["status"] == "queued" and waited_s >= UNCLAIMED_WARNING_S and not warned:
                bar.update(epoch, job_suffix(job, waited_s=waited_s), total=epochs)
                bar.interrupt(unclaimed_warning(job_id, waited_s))
                warned = True
            bar.update(epoch, job_suffix(job, waited_s=waited_s), total=epochs)
            if job["status"] in FINAL_JOB_STATUSES:
                break
            time.sleep(POLL_INTERVAL_S)
    except KeyboardInterrupt:
        bar.close()
        print(f"stopped following; job {job_id} goes on (`statecast job cancel {job_id}` "
              "stops it)", file=sys.stderr)
        return EXIT_INTERRUPTED
    bar.close()
    if job["status"] != "succeeded":
        raise ClientError(f"job {job_id} {job['status']}" + (f": {job['error']}" if job.get("error")
                                                          else ""))
    model = client.get(f"/v1/models/{job['model_id']}")
    emit(args, model, model_text(model))
    return 0


def unclaimed_warning(job_id: int, waited_s: float) -> str:
    return (f"warning: no worker has claimed job {job_id} in {format_duration(waited_s)}; is one "
            "running? `statecast worker` starts one (`statecast serve` starts one beside the API "
            "unless --workers 0); docker compose: `docker compose ps worker`")


def job_suffix(job: dict[str, Any], *, waited_s: float | None = None) -> str:
    """The job's state in a few words: waiting, starting, or epoch, loss and ETA."""
    progress = job.get("progress") or {}
    if job["status"] == "queued":
        return ("queued, waiting for a worker" if waited_s is None
                else f"queued, waiting for a worker ({format_duration(waited_s)})")
    if job["status"] == "running" and (not progress or progress.get("phase") == "starting"):
        return "starting: loading TensorFlow and the data"
    if not progress or progress.get("epoch") is None:
        return job["status"]
    parts = [f"epoch {progress.get('epoch')}/{progress.get('epochs')}"]
    if progress.get("loss") is not None:
        parts.append(f"loss {cell(progress['loss'])}")
    if progress.get("val_loss") is not None:
        parts.append(f"val {cell(progress['val_loss'])}")
    if job["status"] == "running":
        parts.append(f"ETA {format_duration(progress.get('eta_s'))}")
    else:
        parts.append(f"{job['status']} in {format_duration(progress.get('elapsed_s'))}")
    return " ".join(parts)


def model_text(model: dict[str, Any]) -> str:
    spec = model.get("resolved_spec") or model.get("spec") or {}
    lines = [f"model {model['id']} ({model['status']}"
             + (", default" if model.get("is_default") else "") + "): "
             + ", ".join(f"{k}={spec[k]}" for k in ("cell", "units", "layers", "window",
                                                    "horizon", "epochs") if k in spec)]
    if model.get("metrics"):
        lines.append(metrics_table(model["metrics"]))
    if model.get("worse_than_naive"):
        lines.append("warning: this model is worse than the seasonal naive on validation data")
    if model.get("error"):
        lines.append(f"error: {model['error']}")
    return "\n".join(lines)


def model_list(client: ApiClient, args: argparse.Namespace) -> int:
    series_id = find_series(client, args.series)["id"] if args.series else None
    body = client.get("/v1/models", series_id=series_id)
    rows = []
    for m in body["data"]:
        full = ((m.get("metrics") or {}).get("full_horizon") or {})
        rows.append([m["id"], m["status"], ",".join(map(str, m["series_ids"])),
                     (m.get("spec") or {}).get("cell", "lstm"),
                     (full.get("model") or {}).get("mase"),
                     (full.get("seasonal_naive") or {}).get("mase"), m.get("is_default", False)])
    emit(args, body, table(["id", "status", "series", "cell", "mase", "naive mase", "default"],
                           rows))
    return 0


def model_show(client: ApiClient, args: argparse.Namespace) -> int:
    model = client.get(f"/v1/models/{args.model_id}")
    emit(args, model, model_text(model))
    return 0


def model_promote(client: ApiClient, args: argparse.Namespace) -> int:
    model = client.post(f"/v1/models/{args.model_id}/promote")
    emit(args, model, f"model {model['id']} is now the default of series "
                      f"{', '.join(map(str, model['series_ids']))}")
    return 0


def job_show(client: ApiClient, args: argparse.Namespace) -> int:
    if args.wait:
        return follow_job(client, args, args.job_id)
    job = client.get(f"/v1/jobs/{args.job_id}")
    emit(args, job, f"job {job['id']} (model {job['model_id']}): {job_suffix(job)}"
         + (f"\nerror: {job['error']}" if job.get("error") else ""))
    return 0


def job_cancel(client: ApiClient, args: argparse.Namespace) -> int:
    job = client.post(f"/v1/jobs/{args.job_id}/cancel")
    emit(args, job, f"job {job['id']}: cancel requested ({job['status']})")
    return 0


# --- forecasts and streams ------------------------------------------------------------------

def forecast_series(client: ApiClient, args: argparse.Namespace) -> int:
    if args.plot:
        require_matplotlib()  # before the forecast is asked for, not after it is printed
    series = find_series(client, args.series)
    # No --level: the server's default levels.
    if args.covariates is not None:
        stamps, covariates = read_covariates_csv(args.covariates)
        horizon = args.horizon or len(next(iter(covariates.values())))
        body = client.post(f"/v1/series/{series['id']}/forecast", drop_none({
            "horizon": horizon, "level": args.level, "covariates": covariates,
            "fallback": args.fallback}))
        check_steps(args.covariates, stamps, body["points"])
    else:
        body = client.get(f"/v1/series/{series['id']}/forecast", horizon=args.horizon or 48,
                          level=args.level, fallback=args.fallback)
    points = body["points"]
    columns = list(points[0]) if points else ["ts", "mean"]
    if body.get("warning"):
        print(f"warning: {body['warning']}", file=sys.stderr)
    if args.csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([p.get(c) for c in columns] for p in points)
    else:
        emit(args, body, f"series {series['name']!r}, model {body.get('model_id')}"
             + (f", covariates {', '.join(body['covariates'])}" if body.get("covariates") else "")
             + "\n"
             + table(columns, [[p.get(c) for c in columns] for p in points]))
    if args.plot:
        from app.client.plot import plot_forecast

        history = recent_readings(client, series, args.history)
        levels = levels_in(points[0], "lower_") if points else []
        plot_forecast(args.plot, series["name"], history, points, levels)
        print(f"plot written to {args.plot}", file=sys.stderr)
    return 0


TS_COLUMNS = ("ts", "timestamp")


def read_covariates_csv(path: Path) -> tuple[list[str] | None, dict[str, list[float | None]]]:
    """A covariates file's timestamps (if it has a ts column) and its columns of values, in
    row order; an empty cell is sent as null, which the API refuses naming the step."""
    if not path.is_file():
        raise ClientError(f"No covariates file {str(path)!r}")
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    columns = [c for c in (rows[0] if rows else {}) if c not in TS_COLUMNS]
    if not columns:
        raise ClientError(f"{path} has no covariate column: expected a header such as "
                          "ts,temperature and one row per step ahead")
    values: dict[str, list[float | None]] = {c: [] for c in columns}
    for number, row in enumerate(rows, start=1):
        for column in columns:
            cell = (row[column] or "").strip()
            try:
                values[column].append(float(cell) if cell else None)
            except ValueError:
                raise ClientError(f"{path}, row {number}, column {column!r}: {cell!r} is not a "
                                  "number") from None
    ts_column = next((c for c in TS_COLUMNS if rows and c in rows[0]), None)
    return ([row[ts_column] for row in rows] if ts_column else None), values


def check_steps(path: Path, stamps: list[str] | None, points: list[dict[str, Any]]) -> None:
    """The covariates file's timestamps are the forecast's steps, or a ClientError saying where
    they part (values for other times would have been read as these steps')."""
    if stamps is None:
        return
    import pandas as pd

    for stamp, point in zip(stamps, points, strict=False):
        wanted = pd.Timestamp(point["ts"])
        given = pd.Timestamp(stamp)
        given = given.tz_localize("UTC") if given.tzinfo is None else given
        if given != wanted:
            raise ClientError(f"{path}: row {stamp!r} is not the forecast's step {point['ts']}: "
                              "the rows must be the steps after the series' last reading")


def require_matplotlib() -> None:
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        raise ClientError("--plot draws with matplotlib, which is not installed "
                          "(pip install 'statecast[plot]'; `make run` installs it)")


def recent_readings(client: ApiClient, series: dict[str, Any], count: int) -> list[dict[str, Any]]:
    """The last `count` stored readings of a series (pandas only here, for the step length)."""
    import pandas as pd

    detail = client.get(f"/v1/series/{series['id']}")
    if not detail.get("last_ts"):
        return []
    step = pd.Timedelta(pd.tseries.frequencies.to_offset(series["freq"]))
    start = pd.Timestamp(detail["last_ts"]) - (count - 1) * step
    body = client.get(f"/v1/series/{series['id']}/readings", start=start.isoformat(), limit=count)
    data: list[dict[str, Any]] = body["data"]
    return data


def stream_create(client: ApiClient, args: argparse.Namespace) -> int:
    series = find_series(client, args.series)
    body = client.post("/v1/streams", {"series_id": series["id"], "model_id": args.model,
                                       "stream_id": args.stream_id})
    emit(args, body, f"created stream {body['id']} on series {series['name']!r} "
                     f"(model {body.get('model_id')})\n" + stream_text(body))
    return 0


def stream_path(stream_id: str) -> str:
    from urllib.parse import quote

    return f"/v1/streams/{quote(stream_id, safe='')}"


def stream_show(client: ApiClient, args: argparse.Namespace) -> int:
    body = client.get(stream_path(args.stream_id))
    emit(args, body, stream_text(body))
    return 0


def stream_text(stream: dict[str, Any]) -> str:
    """The stream's last reading, next-step forecast and live accuracy, a few lines."""
    lines = [f"readings applied: {stream.get('readings_applied')}, last reading "
             f"{stream.get('last_ts') or '-'}"]
    next_step = stream.get("next_forecast")
    if next_step:
        lines.append("next: " + point_text(next_step))
    accuracy = stream.get("accuracy") or {}
    if accuracy.get("judged"):
        coverage = ", ".join(f"{level}% -> {100 * accuracy[f'coverage_{level}']:.0f}%"
                             for level in levels_in(accuracy, "coverage_")
                             if accuracy[f"coverage_{level}"] is not None)
        lines.append(f"accuracy over {accuracy['judged']} readings: MAE {cell(accuracy.get('mae'))}, "
                     f"MASE {cell(accuracy.get('mase'))}, MAE / seasonal-naive MAE "
                     f"{cell(accuracy.get('relative_mae'))}" + (f"; coverage {coverage}"
                                                                if coverage else ""))
    return "\n".join(lines)


def levels_in(answer: dict[str, Any], prefix: str) -> list[int]:
    """The interval levels an answer carries (keys `lower_80`, `coverage_95`, ...), ascending:
    whichever the server chose, rather than a copy of its default."""
    return sorted(int(key[len(prefix):]) for key in answer
                  if key.startswith(prefix) and key[len(prefix):].isdigit())


def point_text(point: dict[str, Any]) -> str:
    bounds = " ".join(f"[{cell(point[f'lower_{level}'])}, {cell(point[f'upper_{level}'])}]@{level}%"
                      for level in levels_in(point, "lower_"))
    return f"{point['ts']} {cell(point['mean'])} {bounds}".rstrip()


def stream_push(client: ApiClient, args: argparse.Namespace) -> int:
    if args.file:
        handle = sys.stdin if args.file == "-" else open(args.file, newline="")  # noqa: SIM115
        with handle:
            rows = list(csv.reader(handle))
        readings = [{"ts": ts, "value": float(v) if v.strip() else None}
                    for ts, v, *_ in rows[1:] if ts]
    elif args.ts is not None and args.value is not None:
        readings = [{"ts": args.ts, "value": args.value}]
    else:
        raise ClientError("Give a reading with --ts and --value, or a CSV file with --file")
    body = client.post(f"{stream_path(args.stream_id)}/readings", {"readings": readings})
    lines = [f"applied {len(body['applied'])}, re-sent {len(body['duplicates'])}, "
             f"filled {len(body['filled'])}; {body['readings_applied']} in all, last "
             f"{body.get('last_ts') or '-'}"]
    if body.get("rewarmed"):
        lines.append(f"re-warmed from history: {body['rewarmed']}")
    lines += ["next: " + point_text(p) for p in body.get("forecast") or []]
    emit(args, body, "\n".join(lines))
    return 0


def stream_push_many(client: ApiClient, args: argparse.Namespace) -> int:
    """Post a fleet's readings through the bulk endpoint; a summary line per stream.

    Exit status 1 when any stream was refused (the others are applied all the same).
    """
    source = "stdin" if args.file == "-" else args.file
    if args.file == "-":
        readings = read_fleet_csv(sys.stdin, source)
    else:
        try:
            with open(args.file, newline="") as handle:
                readings = read_fleet_csv(handle, source)
        except OSError as exc:
            raise ClientError(f"Cannot read {source!r}: {exc.strerror}") from None
    requests = plan_requests(readings, MAX_BULK_READINGS)
    outcome = FleetOutcome()
    bar = ProgressBar(len(readings), label="push-many") if len(requests) > 1 else None
    done = 0
    try:
        for number, planned in enumerate(requests, start=1):
            sent = outcome.hold_back(planned)
            if sent:
                try:
                    answer = client.post_stream_readings([r.to_json() for r in sent],
                                                         rewarm=args.rewarm)
                except ApiError as exc:
                    if outcome.requests:
                        print(fleet_text(outcome))
                    before = (f"; the {outcome.requests} request(s) before it were applied as "
                              "summarised above" if outcome.requests else "; nothing was applied")
                    raise ClientError(f"request {number} of {len(requests)} was refused whole: "
                                      f"{rows_named(str(exc), sent, source)}{before}") from None
                outcome.add(answer, sent)
            done += len(planned)
            if bar is not None:
                bar.update(done, f"request {number}/{len(requests)}")
    finally:
        if bar is not None:
            bar.close()
    emit(args, outcome.to_json(), fleet_text(outcome))
    return EXIT_FAILED if outcome.refused_streams else 0


def fleet_text(outcome: FleetOutcome) -> str:
    """A line per stream (applied, duplicates, filled, last reading, why refused), then totals."""
    streams = list(outcome.streams.values())
    rows = [[s.stream_id, s.status, s.applied, s.duplicates, s.filled, s.last_ts, s.reason()]
            for s in streams]
    totals = outcome.to_json()
    refused = len(outcome.refused_streams)
    return (table(["stream", "status", "applied", "duplicates", "filled", "last reading",
                   "reason"], rows)
            + f"\n{totals['applied']} applied, {totals['duplicates']} duplicates, "
              f"{totals['refused']} refused; {len(streams)} streams ({refused} refused) in "
              f"{outcome.requests} request(s)")


def stream_forecast(client: ApiClient, args: argparse.Namespace) -> int:
    body = client.get(f"{stream_path(args.stream_id)}/forecast", horizon=args.horizon)
    points = body.get("points") or []
    columns = list(points[0]) if points else ["ts", "mean"]
    emit(args, body, table(columns, [[p.get(c) for c in columns] for p in points]))
    return 0


def record(body: dict[str, Any]) -> str:
    """`key: value` lines; nested values as compact JSON."""
    width = max((len(k) for k in body), default=0)
    return "\n".join(f"{k.ljust(width)}  {v if not isinstance(v, dict | list) else json.dumps(v)}"
                     for k, v in body.items())
