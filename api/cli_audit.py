"""``offerhub audit verify``: recompute every marketplace's audit hash chain (design.md 9).

Prints one line per marketplace and exits 0 when every chain is valid, 1 when one is not (its
line names the first invalid entry). The chains are read in one REPEATABLE READ snapshot, so
entries committed meanwhile cannot make a valid chain look broken.
"""

import argparse
import asyncio

import asyncpg

from api.serve import apply_schema, database
from api.settings import Settings
from flows.audit import ChainVerification, verify_all_chains, verify_chain

__all__ = ["add_audit_parser", "describe", "run_audit", "verify_chains"]


async def verify_chains(
    dsn: str, marketplace_id: str | None = None
) -> dict[str, ChainVerification]:
    """Verify one marketplace's chain, or every chain; results by marketplace id."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            if marketplace_id is not None:
                return {marketplace_id: await verify_chain(conn, marketplace_id)}
            return await verify_all_chains(conn)
    finally:
        await conn.close()


def describe(marketplace_id: str, result: ChainVerification) -> str:
    """One line of the report."""
    if result.valid:
        return (
            f"{marketplace_id}  valid    {result.entries_checked} entries  "
            f"head {result.head_hash or '-'}"
        )
    return (
        f"{marketplace_id}  INVALID  first invalid entry {result.first_invalid_id} "
        f"({result.entries_checked} entries checked)"
    )


def run_audit(settings: Settings, args: argparse.Namespace) -> int:
    """``audit verify [--marketplace ID]``: 0 when every chain is valid, 1 otherwise."""
    with database(settings) as dsn:
        asyncio.run(apply_schema(dsn))
        results = asyncio.run(verify_chains(dsn, args.marketplace))
    for marketplace_id, result in results.items():
        print(describe(marketplace_id, result))
    if not results:
        print("no audit entries")
    return 0 if all(result.valid for result in results.values()) else 1


def add_audit_parser(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add ``audit verify [--marketplace ID]`` to the command line."""
    audit_parser = commands.add_parser("audit", help="audit log utilities")
    audit = audit_parser.add_subparsers(dest="audit_command", required=True)
    verify = audit.add_parser("verify", help="check the audit hash chains; exit 1 if one is broken")
    verify.add_argument("--marketplace", help="only this marketplace id")
