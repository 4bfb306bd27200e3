"""The tests cannot reach the network: in the pytest process (pytest-socket) and in subprocesses
such as notebook kernels (tests/netguard/sitecustomize.py, put on PYTHONPATH by conftest.py)."""
import os
import socket
import subprocess
import sys

import pytest

# 192.0.2.0/24 is TEST-NET-1 (RFC 5737): never routed, so even an unguarded run would not leak.
UNROUTABLE = ("192.0.2.1", 80)


def test_pytest_process_is_guarded():
    with pytest.raises(Exception) as info:
        socket.create_connection(UNROUTABLE, timeout=1)
    assert "192.0.2.1" in str(info.value) or "blocked" in str(info.value).lower()


def test_subprocesses_are_guarded_but_loopback_is_allowed():
    code = (
        "import socket\n"
        "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(1)\n"
        "socket.create_connection(s.getsockname(), timeout=1).close()\n"  # loopback: fine
        f"socket.create_connection({UNROUTABLE!r}, timeout=1)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ.copy(), timeout=60)
    assert done.returncode != 0
    assert "network access is blocked in the tlcourse tests (tried to connect to 192.0.2.1:80)" in done.stderr
