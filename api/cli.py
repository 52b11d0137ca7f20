"""The ``offerhub`` command line: serve, migrate, schema print."""

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

import msgspec

from api.serve import apply_schema, database, serve
from api.settings import Settings, SettingsError, load_settings
from ledger.schema import SCHEMA_SQL, SchemaMismatch

__all__ = ["main"]


def run_migrate(settings: Settings) -> int:
    """Apply ``schema.sql`` idempotently and say what happened."""
    with database(settings) as dsn:
        applied = asyncio.run(apply_schema(dsn))
    print("schema applied" if applied else "schema is current")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="offerhub", description="OFFER-HUB orchestrator")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve", help="start the service on embedded defaults")
    serve_parser.add_argument("--host")
    serve_parser.add_argument("--port", type=int)
    serve_parser.add_argument("--data-dir", type=Path)
    serve_parser.add_argument("--sandbox-port", type=int)
    commands.add_parser("migrate", help="apply schema.sql idempotently")
    schema_parser = commands.add_parser("schema", help="schema utilities")
    schema_parser.add_argument("action", choices=["print"], help="print schema.sql")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command named on the command line; return the exit status."""
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as error:
        print(f"offerhub: {error}", file=sys.stderr)
        return 2
    if args.command == "schema":
        sys.stdout.write(SCHEMA_SQL)
        return 0
    if args.command == "serve":
        overrides = {
            name: value
            for name, value in (
                ("host", args.host),
                ("port", args.port),
                ("data_dir", args.data_dir),
                ("sandbox_port", args.sandbox_port),
            )
            if value is not None
        }
        settings = msgspec.structs.replace(settings, **overrides)
    try:
        if args.command == "serve":
            return serve(settings)
        return run_migrate(settings)
    except SchemaMismatch as error:
        print(f"offerhub: refusing to start: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
