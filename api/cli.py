"""The ``offerhub`` command line: serve, migrate, keys, schema print (design.md 9)."""

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

import msgspec

from api.api_keys import ALL_SCOPES
from api.bootstrap import create_key, list_keys, revoke_key_anywhere
from api.cli_audit import add_audit_parser, run_audit
from api.cli_doctor import run_doctor
from api.cli_export import add_export_parser, run_export
from api.cli_reconcile import run_reconcile
from api.schemas.common import format_time
from api.serve import apply_schema, database, serve
from api.settings import Settings, SettingsError, load_settings
from ledger.schema import SCHEMA_SQL, SchemaMismatch

__all__ = ["main", "parse_scopes"]


class UsageError(ValueError):
    """A command-line argument is invalid; the message says which."""


def run_migrate(settings: Settings) -> int:
    """Apply ``schema.sql`` idempotently and say what happened."""
    with database(settings) as dsn:
        applied = asyncio.run(apply_schema(dsn))
    print("schema applied" if applied else "schema is current")
    return 0


def parse_scopes(text: str) -> list[str]:
    """``read,write`` into a scope list; ``*`` stands for all four."""
    scopes = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [scope for scope in scopes if scope not in (*ALL_SCOPES, "*")]
    if not scopes or unknown:
        raise UsageError(f"--scopes takes a comma list of {', '.join(ALL_SCOPES)} or *")
    return scopes


def run_keys(settings: Settings, args: argparse.Namespace) -> int:
    """``keys create|list|revoke`` on the configured database (schema applied first)."""
    scopes = parse_scopes(args.scopes) if args.keys_command == "create" else []
    with database(settings) as dsn:
        asyncio.run(apply_schema(dsn))
        if args.keys_command == "create":
            marketplace, issued = asyncio.run(
                create_key(
                    dsn,
                    marketplace=args.marketplace,
                    scopes=scopes,
                    env=settings.key_env,
                    name=args.name,
                )
            )
            print(f"Marketplace: {marketplace.name} ({marketplace.id})")
            print(f"Key id: {issued.row.id}  scopes: {','.join(issued.row.scopes)}")
            print(f"API key: {issued.key}")
            print("Store it now: it is not shown again.", file=sys.stderr)
            return 0
        if args.keys_command == "list":
            for row in asyncio.run(list_keys(dsn)):
                used = format_time(row.last_used_at) if row.last_used_at else "-"
                print(
                    f"{row.id}  {row.marketplace_id}  {row.status:<7}  "
                    f"{','.join(row.scopes):<26}  created {format_time(row.created_at)}  "
                    f"used {used}  {row.name}"
                )
            return 0
        revoked = asyncio.run(revoke_key_anywhere(dsn, args.key_id))
        if revoked is None:
            print(f"offerhub: no API key {args.key_id}", file=sys.stderr)
            return 1
        print(f"revoked {revoked.id}")
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
    keys_parser = commands.add_parser("keys", help="manage API keys offline")
    keys = keys_parser.add_subparsers(dest="keys_command", required=True)
    create = keys.add_parser("create", help="issue a key (creates the marketplace if missing)")
    create.add_argument("--marketplace", required=True, help="marketplace name")
    create.add_argument("--scopes", required=True, help="comma list: read,write,support,admin")
    create.add_argument("--name", default="cli", help="a label for the key")
    keys.add_parser("list", help="list every key (no secrets)")
    revoke = keys.add_parser("revoke", help="revoke a key at once")
    revoke.add_argument("key_id")
    add_audit_parser(commands)
    add_export_parser(commands)
    reconcile_parser = commands.add_parser("reconcile", help="one run; prints the breaks")
    reconcile_parser.add_argument("--marketplace", help="marketplace id (default: every one)")
    commands.add_parser("doctor", help="check settings, database and providers")
    schema_parser = commands.add_parser("schema", help="schema utilities")
    schema_parser.add_argument("action", choices=["print"], help="print schema.sql")
    return parser


def _serve_settings(settings: Settings, args: argparse.Namespace) -> Settings:
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
    return msgspec.structs.replace(settings, **overrides)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command named on the command line; return the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "doctor":  # before loading settings: it reports what is wrong with them
        return run_doctor()
    try:
        settings = load_settings()
    except SettingsError as error:
        print(f"offerhub: {error}", file=sys.stderr)
        return 2
    if args.command == "schema":
        sys.stdout.write(SCHEMA_SQL)
        return 0
    try:
        if args.command == "serve":
            return serve(_serve_settings(settings, args))
        if args.command == "keys":
            return run_keys(settings, args)
        if args.command == "audit":
            return run_audit(settings, args)
        if args.command == "export":
            return run_export(settings, args)
        if args.command == "reconcile":
            return run_reconcile(settings, args.marketplace)
        return run_migrate(settings)
    except UsageError as error:
        print(f"offerhub: {error}", file=sys.stderr)
        return 2
    except SchemaMismatch as error:
        print(f"offerhub: refusing to start: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
