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


def _cmd_sql(args: argparse.Namespace) -> int:
    from ami_portal.sql_shell import run_shell

    return run_shell(settings_module.load(), args.command)


def _cmd_users(args: argparse.Namespace) -> int:
    settings = settings_module.load()
    os.environ.setdefault("AMI_DATA_DIR", str(settings.data_dir))
    from readmodel import ReadModel
    from webapp import accounts

    store = accounts.AccountStore(settings.data_dir / "accounts.sqlite")
    store.initialize()
    if args.users_command == "create-demo":
        rows = store.ensure_demo_accounts(ReadModel(settings.readmodel_dir), settings.demo_accounts_csv)
        print(f"{len(rows)} demo accounts in {settings.demo_accounts_csv}")
        return 0
    if args.users_command == "add":
        password = args.password or getpass.getpass("Password: ")
        store.create_user(args.email, password, args.customer_id)
        print(f"Created {args.email} for customer {args.customer_id}")
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

    commands.add_parser("publish", help="publish a new read-model snapshot from the warehouse").set_defaults(
        func=_cmd_publish
    )

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
    users.set_defaults(func=_cmd_users)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
