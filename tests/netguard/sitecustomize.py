"""Block network access in every Python process the tests start (notebook kernels included).

Put on ``PYTHONPATH`` by the repository's ``conftest.py`` (which also loads it into the pytest
process). Loopback addresses, this machine's own name and Unix sockets stay allowed (Jupyter kernels
talk to pytest over localhost; tests serve files on 127.0.0.1). Anything else fails loudly:

* TCP ``connect``/``connect_ex`` and UDP ``sendto``/``sendmsg`` to another address;
* name resolution of any other host (``getaddrinfo``, ``gethostbyname``, ...), so a DNS query
  never leaves the machine either.

The error, :class:`NetworkBlockedError`, is deliberately *not* an ``OSError``: libraries such as
huggingface_hub and requests treat ``OSError``/``ConnectionError`` as "offline" and quietly fall
back to a local cache, which would hide a download attempt instead of failing the test.
"""
import ipaddress
import socket

_connect, _connect_ex = socket.socket.connect, socket.socket.connect_ex
_sendto, _sendmsg = socket.socket.sendto, socket.socket.sendmsg
_getaddrinfo, _gethostbyname = socket.getaddrinfo, socket.gethostbyname
_gethostbyname_ex, _gethostbyaddr = socket.gethostbyname_ex, socket.gethostbyaddr
_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", socket.gethostname()}


class NetworkBlockedError(RuntimeError):
    """A test tried to reach the network (not an OSError, so no library mistakes it for offline)."""


def _blocked(what):
    raise NetworkBlockedError(f"network access is blocked in the tlcourse tests ({what})")


def _local(host) -> bool:
    if host is None or host == "" or (isinstance(host, str) and host.lower() in _LOCAL_NAMES):
        return True
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    try:
        address = ipaddress.ip_address(str(host).split("%")[0])
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def _resolvable(host) -> bool:
    """Local names, and IP literals (resolving those sends no query)."""
    if _local(host):
        return True
    try:
        ipaddress.ip_address(str(host.decode() if isinstance(host, bytes) else host).split("%")[0])
    except ValueError:
        return False
    return True


def _check(sock, address, verb):
    if sock.family in (socket.AF_INET, socket.AF_INET6) and not _local(address[0]):
        _blocked(f"tried to {verb} {address[0]}:{address[1]}")


def connect(self, address):
    _check(self, address, "connect to")
    return _connect(self, address)


def connect_ex(self, address):
    _check(self, address, "connect to")
    return _connect_ex(self, address)


def sendto(self, data, *args):
    address = args[-1]  # sendto(data, address) or sendto(data, flags, address)
    _check(self, address, "send a datagram to")
    return _sendto(self, data, *args)


def sendmsg(self, buffers, ancdata=(), flags=0, address=None):
    if address is not None:
        _check(self, address, "send a datagram to")
        return _sendmsg(self, buffers, ancdata, flags, address)
    return _sendmsg(self, buffers, ancdata, flags)


def getaddrinfo(host, *args, **kwargs):
    if not _resolvable(host):
        _blocked(f"tried to resolve {host!r}")
    return _getaddrinfo(host, *args, **kwargs)


def gethostbyname(host):
    if not _resolvable(host):
        _blocked(f"tried to resolve {host!r}")
    return _gethostbyname(host)


def gethostbyname_ex(host):
    if not _resolvable(host):
        _blocked(f"tried to resolve {host!r}")
    return _gethostbyname_ex(host)


def gethostbyaddr(host):
    if not _local(host):
        _blocked(f"tried to look up {host!r}")
    return _gethostbyaddr(host)


socket.socket.connect = connect
socket.socket.connect_ex = connect_ex
socket.socket.sendto = sendto
socket.socket.sendmsg = sendmsg
socket.getaddrinfo = getaddrinfo
socket.gethostbyname = gethostbyname
socket.gethostbyname_ex = gethostbyname_ex
socket.gethostbyaddr = gethostbyaddr
