"""`ami-portal users`: demo accounts, adding a user under the password policy, unblocking, ending sessions, audit."""

import json
import os
import subprocess
import sys

from security_testkit import snapshot_factory
from webapp.accounts import AccountStore


def users(data_dir, *args):
    env = dict(os.environ, AMI_DATA_DIR=str(data_dir))
    env.pop("DATABASE_URL", None)
    return subprocess.run([sys.executable, "-m", "ami_portal.cli", "users", *args], env=env, capture_output=True,
                          text=True, timeout=120)


def test_users_commands(tmp_path):
    snapshot_factory.write_demo_snapshot(tmp_path / "readmodel")
    result = users(tmp_path, "create-demo")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "demo-accounts.csv").exists()
    weak = users(tmp_path, "add", "nuevo@example.cl", "C000001", "--password", "qwerty123456")
    assert weak.returncode == 1 and "común" in weak.stderr
    assert users(tmp_path, "add", "nuevo@example.cl", "C000001", "--password", "una frase bastante larga"
                 ).returncode == 0
    store = AccountStore(tmp_path / "accounts.sqlite")
    user = store.find_by_email("nuevo@example.cl")
    store.start_session(user.id)
    for _ in range(5):
        store.record_failure("account:" + __import__("hashlib").sha256(b"nuevo@example.cl").hexdigest()[:40],
                             5, 900, 30, 900)
    store.audit("login.failure", user.id)
    assert store.blocked_until(["account:" + __import__("hashlib").sha256(b"nuevo@example.cl").hexdigest()[:40]])
    assert users(tmp_path, "unblock", "nuevo@example.cl").returncode == 0
    assert not store.blocked_until(["account:" + __import__("hashlib").sha256(b"nuevo@example.cl").hexdigest()[:40]])
    assert "Ended 1 sessions" in users(tmp_path, "end-sessions", "nuevo@example.cl").stdout
    lines = users(tmp_path, "audit").stdout.splitlines()
    assert json.loads(lines[-1])["event"] == "login.failure"
