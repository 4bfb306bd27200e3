"""Block network access in every Python process the tests start (notebook kernels included).

Put on ``PYTHONPATH`` by the repository's ``conftest.py``. Connections to loopback addresses and
Unix sockets stay allowed (Jupyter kernels talk to pytest over localhost); anything else raises
``NetworkBlockedError`` naming the address, so code that tries to download fails loudly instead of
hanging or silently using a cache.
"""
import ipaddress
import socket

_connect, _connect_ex = socket.socket.connect, socket.socket.connect_ex


class NetworkBlockedError(OSError):
    pass


def _check(sock, address):
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    host = address[0]
    try:
        if ipaddress.ip_address(host.split("%")[0]).is_loopback:
            return
    except ValueError:
        if host == "localhost":
            return
    raise NetworkBlockedError(f"network access is blocked in the tlcourse tests (tried to connect to {host}:{address[1]})")


def connect(self, address):
    _check(self, address)
    return _connect(self, address)


def connect_ex(self, address):
    _check(self, address)
    return _connect_ex(self, address)


socket.socket.connect = connect
socket.socket.connect_ex = connect_ex
