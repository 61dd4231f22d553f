"""The ``tollway`` command line (SPEC §1)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable

from tollway.cli import consumers as cli_consumers
from tollway.cli import groups as cli_groups
from tollway.cli import pricing as cli_pricing
from tollway.cli import schema as cli_schema
from tollway.cli import usage as cli_usage
from tollway.cli.config_file import config_path, print_config_problems
from tollway.config.admin_exposure import exposure_problem
from tollway.config.load import ConfigError, LoadedConfig
from tollway.runtime.config_source import ConfigSource, load_file


def _setup_logging() -> None:
    # stdout is for access-log lines only; everything operational goes to stderr.
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="tollway: %(levelname)s %(message)s")
    logging.getLogger("tollway").setLevel(logging.INFO)
    for noisy in ("uvicorn", "uvicorn.error", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def cmd_check(args: argparse.Namespace) -> int:
    from tollway.gateway.snapshot import check_config

    path = config_path(args.config)
    if path is None:
        # (Not the built-in quickstart, as ``serve`` would take: there is nothing to check.)
        print("no config file: give -c FILE, set $TOLLWAY_CONFIG, or run where ./tollway.yaml is")
        return 2
    loaded, problems = check_config(lambda: load_file(path))
    if loaded is not None and "admin" not in loaded.failed:
        # What `serve` would refuse to start with is no valid config either.
        exposed = exposure_problem(loaded.config.admin.host, loaded.config.admin.token)
        if exposed:
            problems.append(exposed)
    if problems:
        for problem in problems:
            print(problem)
        return 2
    assert loaded is not None
    for w in loaded.warnings:
        print(f"warning: {w}", file=sys.stderr)
    print("ok")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    _setup_logging()
    from tollway.config.quickstart import DATA_DIR, demo_key, quickstart_yaml
    from tollway.runtime.root import Runtime
    from tollway.runtime.serve import Listen, serve

    path = config_path(args.config)
    if path is not None:
        source = ConfigSource(path)
    else:
        key, new = demo_key(DATA_DIR)
        print(
            f"tollway: no config file; running the built-in quickstart config "
            f"({'new ' if new else ''}demo key in {DATA_DIR / 'demo-key'})",
            file=sys.stderr,
        )
        print(f"tollway: demo consumer key: {key}", file=sys.stderr)
        source = ConfigSource(None, quickstart_yaml(key, os.environ))
    from tollway.gateway.snapshot import check_config

    loaded, problems = check_config(source.load)
    if problems or loaded is None:
        print_config_problems(ConfigError(problems))
        return 2
    cfg = loaded.config
    listen = Listen(
        host=str(args.host or cfg.server.host),
        port=cfg.server.port if args.port is None else args.port,
        admin_host=cfg.admin.host,
        admin_port=cfg.admin.port if args.admin_port is None else args.admin_port,
        workers=args.workers,
    )
    listen_problem = _listen_problem(loaded, listen)
    if listen_problem:
        print(f"tollway: {listen_problem}", file=sys.stderr)
        return 2
    started = loaded
    server_flags = {"host": args.host, "port": args.port}
    pinned = {
        "server": {k: v for k, v in server_flags.items() if v is not None},
        "admin": {"port": args.admin_port} if args.admin_port is not None else {},
    }

    def make_runtime(on_reload_ok: Callable[[], None] | None, records_reloads: bool) -> Runtime:
        # Every worker starts on the config validated above (a worker started again then
        # catches up with the file as a reload: ``run_worker``'s ``catch_up``).
        return Runtime(source, started, on_reload_ok=on_reload_ok, records_reloads=records_reloads, pinned=pinned)

    from tollway.runtime.serve import StartupFailed

    try:
        return serve(make_runtime, listen)
    except StartupFailed as exc:
        print(f"tollway: {exc}", file=sys.stderr)
        return 1


def _listen_problem(loaded: LoadedConfig, listen: object) -> str | None:
    from tollway.runtime.serve import Listen

    assert isinstance(listen, Listen)
    cfg = loaded.config
    if listen.workers > 1 and cfg.storage.state == "memory":
        return (
            "--workers > 1 needs storage.state: redis://…; with state in memory each worker would "
            "keep its own counters and limits would not hold"
        )
    return exposure_problem(listen.admin_host, cfg.admin.token)


def cmd_mock_llm(args: argparse.Namespace) -> int:
    from tollway.mockllm import serve as serve_mock

    return serve_mock(args.host, args.port)


def _port(text: str) -> int:
    """A TCP port (0: any free one), refused by argparse (exit 2, one line) otherwise."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port (0-65535)")
    return port


def _workers(text: str) -> int:
    try:
        workers = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if workers < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return workers


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tollway", description="An AI gateway.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the gateway")
    p.add_argument("-c", "--config")
    p.add_argument("--host")
    p.add_argument("--port", type=_port)
    p.add_argument("--admin-port", type=_port)
    p.add_argument("--workers", type=_workers, default=1)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("check", help="validate a config file")
    p.add_argument("-c", "--config", help="config file (default: $TOLLWAY_CONFIG, else ./tollway.yaml)")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser(
        "mock-llm",
        help="run the built-in fake model server",
        description="The built-in fake model server: OpenAI's and Anthropic's APIs with deterministic answers.",
        epilog="Per-request headers: x-mock-latency-ms, x-mock-ttft-ms, x-mock-chunk-delay-ms, x-mock-chunks, "
        "x-mock-status, x-mock-drop (before-headers | mid-stream), x-mock-reply. GET /_mock/requests lists "
        "what it got. See the manual: Providers, the mock model.",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=_port, default=9000)
    p.set_defaults(func=cmd_mock_llm)

    cli_consumers.add_parser(sub)
    cli_groups.add_parser(sub)
    cli_usage.add_parser(sub)
    cli_schema.add_parser(sub)
    cli_pricing.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (``tollway usage | head``): what it read is all it
        # wanted, so no traceback, and none either as Python flushes stdout at exit;
        # and 0, not 1, which says the database failed (a script with pipefail read it so).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    return code
