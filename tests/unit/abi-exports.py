# SPDX-License-Identifier: LGPL-2.1-or-later
"""libudm exports exactly the functions its public headers declare.

usage: abi-exports.py LIBUDM.so INCLUDE_DIR MAP CC [CC-ARGS...]

The headers <udm/udm.h>, <udm/target.h> and <udm/driver.h> are run through
the C preprocessor (so only what a C compiler sees counts); every function
declared at file scope that is not static is the API.  The shared library's
dynamic symbol table (nm -D --defined-only) must hold those names and no
other, each under a version node of lib/libudm.map, and the map must list
exactly them too.  An internal helper that leaks, a public function left out
of the map, or one declared but never defined fails here.
"""
import re
import subprocess
import sys

HEADERS = ('udm/udm.h', 'udm/target.h', 'udm/driver.h')


def declared(include_dir, cc):
    src = ''.join('#include <%s>\n' % h for h in HEADERS)
    text = subprocess.run(cc + ['-E', '-P', '-I', include_dir, '-x', 'c', '-'],
                          input=src, capture_output=True, text=True, check=True).stdout
    names = set()
    depth = 0
    stmt = []
    body = False
    for ch in text:
        if ch == '{':
            if depth == 0:  # a function body (static inline) or a struct's
                body = ''.join(stmt).rstrip().endswith(')')
            depth += 1
            continue
        if ch == '}':
            depth -= 1
            if depth == 0 and body:  # a definition ends without ';'
                stmt = []
            continue
        if depth:
            continue
        if ch == ';':
            s = ''.join(stmt).strip()
            stmt = []
            if s.startswith(('typedef', 'static')):
                continue
            m = re.search(r'\b([A-Za-z_]\w*)\s*\(', s)
            if m and m.group(1).startswith('udm_'):
                names.add(m.group(1))
            elif not m and s.startswith('extern'):
                names.add(re.findall(r'\w+', s)[-1])
            continue
        stmt.append(ch)
    return names


def exported(lib):
    out = subprocess.run(['nm', '-D', '--defined-only', lib],
                         capture_output=True, text=True, check=True).stdout
    names, versions = set(), {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        kind, sym = parts[1], parts[2]
        name, _, ver = sym.partition('@')
        if kind == 'A':  # the version node itself
            continue
        names.add(name)
        versions[name] = ver.lstrip('@')
    return names, versions


def mapped(path):
    text = re.sub(r'/\*.*?\*/', '', open(path).read(), flags=re.S)
    names = set()
    for body in re.findall(r'global:(.*?)(?:local:|\})', text, re.S):
        names.update(n.strip() for n in body.split(';') if n.strip())
    return names


def main():
    lib, include_dir, map_path = sys.argv[1:4]
    cc = sys.argv[4:]
    api = declared(include_dir, cc)
    exp, versions = exported(lib)
    in_map = mapped(map_path)
    bad = 0
    if len(api) < 50:
        print('found only %d declarations in the headers: the parser is broken' % len(api))
        bad = 1
    for n in sorted(exp - api):
        print('exported but not declared in a public header: %s' % n)
        bad = 1
    for n in sorted(api - exp):
        print('declared in a public header but not exported: %s' % n)
        bad = 1
    for n in sorted(api ^ in_map):
        where = 'lib/libudm.map but not in a header' if n in in_map else 'a header but not in lib/libudm.map'
        print('%s is in %s' % (n, where))
        bad = 1
    for n in sorted(exp & api):
        if not versions[n].startswith('UDM_'):
            print('%s has no UDM_ version node (%r)' % (n, versions[n]))
            bad = 1
    print('%d functions declared, %d exported' % (len(api), len(exp)))
    return bad


if __name__ == '__main__':
    sys.exit(main())
