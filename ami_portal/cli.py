"""The `ami-portal` command line (see `ami-portal --help`)."""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import os
import sys

from ami_portal import settings as settings_module


def _cmd_run(args: argparse.Namespace) -> int:
    from ami_portal.run import run

    return run(settings_module.load())


def _cmd_simulator(args: argparse.Namespace) -> int:
    from simulator.model import SimulationConfig
    from simulator.server import serve

    now = dt.datetime.fromisoformat(args.now) if args.now else None
    config = SimulationConfig(seed=args.seed, supplies=args.supplies, months=args.months, now=now)
    serve(host=args.host, port=args.port, config=config)
    return 0


def _dagster_env(settings: settings_module.Settings) -> None:
    os.environ.update({key: value for key, value in settings.child_env().items() if key not in os.environ or key in (
        "AMI_DATA_DIR", "DAGSTER_HOME")})


def _cmd_load(args: argparse.Namespace) -> int:
    settings = settings_module.load()
    _dagster_env(settings)
    from ami_portal.run import prepare_data_dir

    prepare_data_dir(settings)
    import dagster as dg

    from pipelines.demo_load import run_initial_load

    with dg.DagsterInstance.get() as instance:
        run_initial_load(
            instance,
            dt.date.fromisoformat(args.first_day),
            dt.date.fromisoformat(args.last_day),
        )
    return 0


def _cmd_backfill(args: argparse.Namespace) -> int:
    settings = settings_module.load()
    _dagster_env(settings)
    from ami_portal.run import prepare_data_dir

    prepare_data_dir(settings)
    import dagster as dg

    from pipelines.backfill import run_backfill
    from pipelines.resources import default_resources

    with dg.DagsterInstance.get() as instance:
        try:
            succeeded = run_backfill(
                instance, dt.date.fromisoformat(args.first_day), dt.date.fromisoformat(args.last_day),
                default_resources(), chunk_days=args.chunk_days, publish=not args.no_publish,
                report=lambda line: print(line, flush=True),
            )
        except ValueError as error:
            print(f"backfill: {error}", file=sys.stderr)
            return 2
    return 0 if succeeded else 1


def _cmd_publish(args: argparse.Namespace) -> int:
    from warehouse.db import connect
    from warehouse.publish import publish_read_model

    settings = settings_module.load()
    con = connect(settings.data_dir / "warehouse.duckdb")
    try:
        result = publish_read_model(con, settings.readmodel_dir)
    finally:
        con.close()
    print(f"Published {result.path} in {result.seconds:.2f} s")
    return 0


def _cmd_ingest(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pipelines.file_ingest import ingest_files
    from warehouse.db import connect
    from warehouse.publish import publish_read_model

    settings = settings_module.load()
    paths = [Path(name) for name in args.files]
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        print(f"Not a file: {', '.join(missing)}", file=sys.stderr)
        return 2
    outcomes = ingest_files(paths, settings.data_dir)
    for outcome in outcomes:
        if outcome.status == "processed":
            print(f"processed {outcome.path.name}: {outcome.readings} readings applied, "
                  f"{len(outcome.changed_local_dates)} local days changed")
        else:
            print(f"QUARANTINED {outcome.path}: {outcome.reason}", file=sys.stderr)
    if any(outcome.status == "processed" for outcome in outcomes):
        con = connect(settings.data_dir / "warehouse.duckdb")
        try:
            result = publish_read_model(con, settings.readmodel_dir)
        finally:
            con.close()
        print(f"Published {result.path} in {result.seconds:.2f} s")
    return 1 if any(outcome.status != "processed" for outcome in outcomes) else 0


def _cmd_sql(args: argparse.Namespace) -> int:
    from ami_portal.sql_shell import run_shell

    return run_shell(settings_module.load(), args.command)


def _cmd_users(args: argparse.Namespace) -> int:
    settings = settings_module.load()
    os.environ.setdefault("AMI_DATA_DIR", str(settings.data_dir))
    from readmodel import ReadModel
    from webapp import accounts

    store = accounts.open_store(settings.data_dir, os.environ.get("DATABASE_URL"))
    store.initialize()
    if args.users_command == "create-demo":
        rows = store.ensure_demo_accounts(ReadModel(settings.readmodel_dir), settings.demo_accounts_csv)
        print(f"{len(rows)} demo accounts in {settings.demo_accounts_csv}")
        return 0
    if args.users_command == "add":
        password = args.password or getpass.getpass("Password: ")
        try:
            store.create_user(args.email, password, args.customer_id)
        except (accounts.WeakPassword, accounts.DuplicateEmail, ValueError) as error:
            print(f"Not created: {error}", file=sys.stderr)
            return 1
        print(f"Created {args.email} for customer {args.customer_id}")
        return 0
    if args.users_command == "unblock":
        from webapp.security import account_key

        store.clear_failures(account_key(args.email))
        print(f"Cleared failed-login delays for {args.email}")
        return 0
    if args.users_command == "end-sessions":
        user = store.find_by_email(args.email)
        ended = store.end_all_sessions(user.id) if user else 0
        print(f"Ended {ended} sessions of {args.email}")
        return 0
    if args.users_command == "audit":
        import json

        for event in reversed(store.audit_events(limit=args.limit)):
            print(json.dumps(event, ensure_ascii=False))
        return 0
    return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ami-portal", description="AMI customer portal: backends, pipelines, portal.")
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("run", help="start everything for the demo (what `make run` calls)").set_defaults(func=_cmd_run)

    simulator = commands.add_parser("simulator", help="serve the simulated utility backends over HTTP")
    simulator.add_argument("--host", default="127.0.0.1")
    simulator.add_argument("--port", type=int, default=int(os.environ.get("SIMULATOR_PORT", 8600)))
    simulator.add_argument("--seed", type=int, default=42)
    simulator.add_argument("--supplies", type=int, default=50)
    simulator.add_argument("--months", type=int, default=13)
    simulator.add_argument("--now", help="freeze the simulated clock (ISO 8601 instant with offset)")
    simulator.set_defaults(func=_cmd_simulator)

    load = commands.add_parser("load", help="initial load of every asset through Dagster runs")
    load.add_argument("--first-day", required=True, help="first local day (YYYY-MM-DD)")
    load.add_argument("--last-day", required=True, help="last local day (YYYY-MM-DD), inclusive")
    load.set_defaults(func=_cmd_load)

    backfill = commands.add_parser("backfill", help="re-pull meter data for a range of local days, then publish")
    backfill.add_argument("--from", dest="first_day", required=True, help="first local day (YYYY-MM-DD)")
    backfill.add_argument("--to", dest="last_day", required=True, help="last local day (YYYY-MM-DD), inclusive")
    backfill.add_argument("--chunk-days", type=int, default=7, help="days per Dagster run (default 7)")
    backfill.add_argument("--no-publish", action="store_true", help="skip the final rollup and publish")
    backfill.set_defaults(func=_cmd_backfill)

    commands.add_parser("publish", help="publish a new read-model snapshot from the warehouse").set_defaults(
        func=_cmd_publish
    )

    ingest = commands.add_parser(
        "ingest", help="load CIM or Green Button files (auto-detected) into the warehouse, then publish"
    )
    ingest.add_argument("files", nargs="+", help="files to ingest; each is moved to processed/ or quarantine/")
    ingest.set_defaults(func=_cmd_ingest)

    sql = commands.add_parser("sql", help="read-only SQL on the published snapshot")
    sql.add_argument("-c", dest="command", help="run one statement and print CSV")
    sql.set_defaults(func=_cmd_sql)

    users = commands.add_parser("users", help="portal accounts")
    users_commands = users.add_subparsers(dest="users_command", required=True)
    users_commands.add_parser("create-demo", help="one account per customer, written to demo-accounts.csv")
    add = users_commands.add_parser("add", help="create an account for a customer")
    add.add_argument("email")
    add.add_argument("customer_id")
    add.add_argument("--password", help="(prompted when omitted)")
    users_commands.add_parser("unblock", help="clear an account's failed-login delays").add_argument("email")
    users_commands.add_parser("end-sessions", help="log an account out everywhere").add_argument("email")
    audit = users_commands.add_parser("audit", help="print the security audit log (JSON lines, oldest first)")
    audit.add_argument("--limit", type=int, default=100)
    users.set_defaults(func=_cmd_users)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
