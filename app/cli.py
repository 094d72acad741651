"""The `statecast` command: the server (serve, worker, migrate, keys) and the client of a
running API (login, series, upload, train, models, job, forecast, stream)."""

import argparse
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from app.client.commands import add_global_options
from app.client.commands import register as register_client
from app.client.commands import register_keys as register_client_keys
from app.client.credentials import write_user_config
from app.config import Settings, get_settings
from app.logs import configure_logging

if TYPE_CHECKING:
    from app.worker.supervisor import Supervisor

logger = logging.getLogger("statecast.cli")
DEFAULT_TENANT = "default"


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1, with an error that says what it got."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


def cmd_migrate(settings: Settings, _: argparse.Namespace) -> int:
    from app.db.migrations import upgrade

    upgrade(settings.database_url)
    print("database schema is at head")
    return 0


def cmd_keys_create(settings: Settings, args: argparse.Namespace) -> int:
    from app.db.engine import create_db_engine, create_session_factory, transaction
    from app.db.tenants import KeyScope, create_key

    engine = create_db_engine(settings.database_url)
    with transaction(create_session_factory(engine), write=True) as session:
        tenant, key = create_key(session=session, tenant_name=args.tenant, name=args.name,
                                 scope=KeyScope(args.scope))
    engine.dispose()
    print(key)
    print(f"(a new key for tenant {tenant.name!r}; it is shown only once)", file=sys.stderr)
    return 0


def client_url(settings: Settings) -> str:
    """The address a client on this host uses to reach `statecast serve`."""
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    return f"http://{host}:{settings.port}"


def bootstrap_key(settings: Settings) -> None:
    """First start of the embedded default: make a key so the README's curl lines just work."""
    from app.db.engine import create_db_engine, create_session_factory, is_sqlite, transaction
    from app.db.tenants import any_key_exists, create_key

    if not is_sqlite(settings.database_url):
        return
    engine = create_db_engine(settings.database_url)
    with transaction(create_session_factory(engine), write=True) as session:
        if any_key_exists(session=session):
            key = None
        else:
            _, key = create_key(session=session, tenant_name=DEFAULT_TENANT)
    engine.dispose()
    path = settings.key_file
    if key is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(key + "\n")
        os.chmod(path, 0o600)
        # The command line finds the key there from any directory (app/client/credentials.py).
        config = write_user_config(url=client_url(settings), key=key)
        print(f"Created tenant {DEFAULT_TENANT!r} with API key {key}\n"
              f"The key is saved in {path.resolve()} and, for the `statecast` command, in "
              f"{config} (both mode 0600).", flush=True)
    elif path.exists():
        print(f"API key of tenant {DEFAULT_TENANT!r}: see {path.resolve()}", flush=True)


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    from app.worker.runner import run_worker

    run_worker(settings, args.concurrency, args.parent_pid)
    return 0


def start_embedded_workers(settings: Settings, count: int) -> "Supervisor":
    """Worker processes beside the API (the embedded default), restarted if they die."""
    from app.serving import settings_env
    from app.worker.supervisor import Supervisor

    env = {**os.environ, **settings_env(settings)}
    supervisor = Supervisor([sys.executable, "-m", "app.cli", "worker",
                             "--parent-pid", str(os.getpid())], count, env=env)
    supervisor.start()
    return supervisor


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from app.db.migrations import upgrade
    from app.serving import multiprocess_metrics, run_api

    if args.host:
        settings.host = args.host
    if args.port:
        settings.port = args.port
    if args.workers is not None:
        settings.embedded_workers = args.workers
    if args.processes is not None:
        settings.api_processes = args.processes
    if settings.auto_migrate:
        upgrade(settings.database_url)
    bootstrap_key(settings)
    # uvicorn re-raises SIGTERM after its shutdown, which would end this process before the
    # `finally` below stops the workers; unwinding instead lets it run. (With several API
    # processes uvicorn's supervisor takes SIGTERM itself and returns.)
    signal.signal(signal.SIGTERM, lambda signum, _: sys.exit(128 + signum))
    with multiprocess_metrics(settings.api_processes):
        workers = start_embedded_workers(settings, settings.embedded_workers)
        logger.info(f"statecast serving on http://{settings.host}:{settings.port} in "
                    f"{settings.api_processes} API process(es) with "
                    f"{settings.embedded_workers} worker process(es)",
                    extra={"action": "serve", "workers": settings.embedded_workers,
                           "processes": settings.api_processes})
        try:
            run_api(settings)
        finally:
            workers.stop()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="statecast", description=__doc__)
    add_global_options(parser)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the API (and the embedded default's worker)")
    serve.add_argument("--host", help="address to listen on (STATECAST_HOST)")
    serve.add_argument("--port", type=int, help="port to listen on (STATECAST_PORT)")
    serve.add_argument("--workers", type=int, metavar="N",
                       help="worker processes to start beside the API; 0 for none "
                            "(STATECAST_EMBEDDED_WORKERS, default 1)")
    serve.add_argument("--processes", type=positive_int, metavar="N",
                       help="API processes serving the one port (STATECAST_API_PROCESSES, "
                            "default 1)")
    serve.set_defaults(handler=cmd_serve)

    worker = commands.add_parser("worker", help="run training jobs from the queue")
    worker.add_argument("--concurrency", type=int, default=1, metavar="N",
                        help="jobs at a time, each in its own process (default 1)")
    worker.add_argument("--parent-pid", type=int, metavar="PID",
                        help="stop when process PID is gone (`statecast serve` passes its own)")
    worker.set_defaults(handler=cmd_worker)

    migrate = commands.add_parser("migrate", help="upgrade the database schema to head")
    migrate.set_defaults(handler=cmd_migrate)

    keys = commands.add_parser("keys", help="manage API keys")
    key_commands = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    create = key_commands.add_parser(
        "create", help="create a key of any tenant (and the tenant if new), in the database")
    create.add_argument("--tenant", required=True, help="tenant name")
    create.add_argument("--name", default="default", help="what the key is for")
    create.add_argument("--scope", choices=["read", "write"], default="write",
                        help="read: GET requests only (default write)")
    create.set_defaults(handler=cmd_keys_create)
    register_client_keys(key_commands)
    register_client(commands)
    return parser


# What a shell reports for a process ended by SIGPIPE (a reader such as `head` that stopped).
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    handler: Callable[[Settings, argparse.Namespace], int] = args.handler
    try:
        status = handler(settings, args)
        sys.stdout.flush()  # here, where a closed pipe is caught, not at exit
    except BrokenPipeError:
        # `statecast forecast ... | head`: the reader has what it wanted; no traceback. Python
        # flushes stdout again at exit, so it now writes to /dev/null.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    return status


if __name__ == "__main__":
    sys.exit(main())
