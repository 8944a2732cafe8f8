# SPDX-License-Identifier: LGPL-2.1-or-later
"""Raw NBD socket helpers shared by the tests that speak the protocol by hand."""


def recv_exact(s, n):
    """N bytes from socket s, or EOFError naming how many came."""
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise EOFError("closed after %d of %d bytes" % (len(b), n))
        b += c
    return b
