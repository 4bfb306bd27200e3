"""The tests cannot reach the network: in the pytest process and in subprocesses such as notebook
kernels (tests/netguard/sitecustomize.py, put on PYTHONPATH and loaded by conftest.py): no TCP
connection, UDP datagram or name lookup leaves the machine, and the error is not an OSError (which
the Hugging Face libraries would take for "offline" and fall back on a cache)."""
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


def test_dns_and_udp_are_blocked_and_the_error_is_loud():
    code = (
        "import socket\n"
        "from sitecustomize import NetworkBlockedError\n"
        "assert not issubclass(NetworkBlockedError, OSError)\n"
        "socket.getaddrinfo('localhost', 80)\n"  # local names still resolve
        "u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(('127.0.0.1', 0))\n"
        "u.sendto(b'x', u.getsockname())\n"  # a datagram to loopback is fine
        "u.sendmsg([b'x'], [], 0, u.getsockname())\n"  # sendmsg to loopback too
        "for attempt in (lambda: socket.getaddrinfo('huggingface.co', 443),\n"
        "                lambda: socket.gethostbyname('pypi.org'),\n"
        "                lambda: u.sendto(b'x', ('192.0.2.1', 53)),\n"
        "                lambda: u.sendmsg([b'x'], [], 0, ('192.0.2.1', 123))):\n"
        "    try:\n"
        "        attempt()\n"
        "    except NetworkBlockedError as exc:\n"
        "        print('blocked:', exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ.copy(), timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("blocked:") == 4 and "resolve 'huggingface.co'" in done.stdout
    assert "send a datagram to 192.0.2.1:53" in done.stdout and "send a datagram to 192.0.2.1:123" in done.stdout


def test_a_notebook_kernel_is_guarded(tmp_path):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import os, socket\n"
        "try:\n"
        "    socket.getaddrinfo('huggingface.co', 443)\n"
        "    outcome = 'resolved'\n"
        "except Exception as exc:\n"
        "    outcome = type(exc).__name__\n"
        "print(outcome, os.environ['HF_HUB_OFFLINE'])")])
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert nb.cells[0].outputs[0]["text"].strip() == "NetworkBlockedError 1"


def test_the_pytest_process_cannot_resolve_names():
    with pytest.raises(Exception, match="blocked") as info:
        socket.getaddrinfo("huggingface.co", 443)
    assert not isinstance(info.value, OSError)


def test_the_offline_switches_are_forced_even_when_the_user_turned_them_off():
    """conftest.py assigns HF_HUB_OFFLINE / HF_DATASETS_OFFLINE (a setdefault would keep a user's 0,
    and the Hugging Face libraries would then try to download)."""
    from pathlib import Path

    conftest = Path(__file__).resolve().parents[1] / "conftest.py"
    code = (
        "import importlib.util, os\n"
        f"spec = importlib.util.spec_from_file_location('repo_conftest', {str(conftest)!r})\n"
        "spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
        "print(os.environ['HF_HUB_OFFLINE'], os.environ['HF_DATASETS_OFFLINE'])\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "0", "HF_DATASETS_OFFLINE": "0"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "1"]
