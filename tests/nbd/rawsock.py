# SPDX-License-Identifier: LGPL-2.1-or-later
"""Raw NBD socket helpers shared by the tests that speak the protocol by hand."""
import socket
import struct


def recv_exact(s, n):
    """N bytes from socket s, or EOFError naming how many came."""
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise EOFError("closed after %d of %d bytes" % (len(b), n))
        b += c
    return b


# The handshake: the server's greeting, option requests and their replies.
NBDMAGIC = 0x4e42444d41474943
IHAVEOPT = 0x49484156454F5054
REPLY_MAGIC = 0x3e889045565a9


def greet(s, cflags=3):
    """Read the server's newstyle greeting and answer with client flags."""
    magic, opt, _ = struct.unpack(">QQH", recv_exact(s, 18))
    assert magic == NBDMAGIC and opt == IHAVEOPT, "bad greeting"
    s.sendall(struct.pack(">I", cflags))


def option(opt, data=b"", length=None):
    """An option request (LENGTH: a length field that lies about DATA)."""
    return struct.pack(">QII", IHAVEOPT, opt, len(data) if length is None
                       else length) + data


def read_reply(s):
    """(option, reply type, data) of the next option reply."""
    magic, opt, rtype, length = struct.unpack(">QIII", recv_exact(s, 20))
    assert magic == REPLY_MAGIC, "bad reply magic"
    return opt, rtype, recv_exact(s, length)


def closed(s):
    """True when the server hangs up (EOF or reset) within the timeout."""
    try:
        while True:
            if not s.recv(65536):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False
