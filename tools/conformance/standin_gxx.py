"""Stand-in for the SFPI RISC-V compiler (`riscv-tt-elf-g++`), which ships only from outside
the package index. tools/conformance/check.py installs it at
<venv>/lib/python3.12/site-packages/ttnn/runtime/sfpi/compiler/bin/riscv-tt-elf-g++ as a
two-line shell wrapper around this file.

It compiles nothing. It answers `--version`, appends every command line (argv and working
directory, one JSON object per line) to $TT_SPECDEC_JIT_LOG, and writes outputs that let
tt-metal's JIT go on exactly as after a real build:
  - `-c -o X.o`: an empty object; with -MMD a dependency file naming the source, as gcc
    writes it; a precompiled header (`-x c++-header`) is not written, so the JIT falls back
    to including pch.h as text;
  - `-o X.elf` (a link): a minimal RISC-V ELF32 executable: one PT_LOAD text segment at the
    address the linker script gives .text (0 when it is a symbol), a symbol table, and an
    empty .rela.text (tt-metal's execute-in-place pass requires relocation sections).
The check then compiles every recorded kernel command line for real with clang-19
(-fsyntax-only): the stand-in only records what tt-metal would have compiled.

With TT_SPECDEC_STANDIN_FAIL=<substring> it fails (exit 1, message on stderr) any command
whose argv contains the substring: a controlled build failure for the check's own tests.
"""
from __future__ import annotations

import json
import os
import re
import struct
import sys

VERSION = "riscv-tt-elf-g++ (tt_specdec stand-in: records the JIT command lines, compiles nothing) 12.4.0"


def minimal_elf(path: str, addr: int) -> None:
    text = struct.pack("<I", 0x00000013) * 4  # four RISC-V nops
    names = [b"", b".text", b".symtab", b".strtab", b".shstrtab", b".rela.text"]
    shstr, offs = b"", []
    for n in names:
        offs.append(len(shstr))
        shstr += n + b"\0"
    strtab = b"\0_start\0"
    symtab = b"\0" * 16 + struct.pack("<IIIBBH", 1, addr, 0, (1 << 4) | 2, 0, 1)  # global FUNC _start in .text
    ehsize, phsize, shsize = 52, 32, 40
    o_text = ehsize + phsize
    o_sym = o_text + len(text)
    o_str = o_sym + len(symtab)
    o_shstr = o_str + len(strtab)
    o_sh = (o_shstr + len(shstr) + 3) & ~3
    ident = b"\x7fELF" + bytes([1, 1, 1, 0]) + b"\0" * 8  # ELF32, little endian, version 1, SYSV
    eh = ident + struct.pack("<HHIIIIIHHHHHH", 2, 243, 1, addr, ehsize, o_sh, 0, ehsize, phsize, 1, shsize,
                             len(names), 4)  # ET_EXEC, EM_RISCV
    ph = struct.pack("<IIIIIIII", 1, o_text, addr, addr, len(text), len(text), 5, 4)  # PT_LOAD R+X
    sh = b"\0" * shsize
    sh += struct.pack("<IIIIIIIIII", offs[1], 1, 6, addr, o_text, len(text), 0, 0, 4, 0)
    sh += struct.pack("<IIIIIIIIII", offs[2], 2, 0, 0, o_sym, len(symtab), 3, 1, 4, 16)
    sh += struct.pack("<IIIIIIIIII", offs[3], 3, 0, 0, o_str, len(strtab), 0, 0, 1, 0)
    sh += struct.pack("<IIIIIIIIII", offs[4], 3, 0, 0, o_shstr, len(shstr), 0, 0, 1, 0)
    sh += struct.pack("<IIIIIIIIII", offs[5], 4, 0x40, 0, o_sh, 0, 2, 1, 4, 12)  # empty SHT_RELA for .text
    data = eh + ph + text + symtab + strtab + shstr
    with open(path, "wb") as f:
        f.write(data + b"\0" * (o_sh - len(data)) + sh)


def text_address(argv: list[str]) -> int:
    for a in argv:
        if a.startswith("-T") and os.path.isfile(a[2:]):
            m = re.search(r"^\s*\.text\s+(.*?)\s*:\s*$", open(a[2:]).read(), re.M)
            if m and re.fullmatch(r"[0-9xXa-fA-F+\-*/&|~()\s]+", m.group(1)):
                return eval(m.group(1), {"__builtins__": {}}) & 0xFFFFFFFF  # arithmetic only
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["--version"] or argv[:1] == ["-dumpversion"]:
        print(VERSION)
        return 0
    log = os.environ.get("TT_SPECDEC_JIT_LOG")
    if log:
        with open(log, "a") as f:
            f.write(json.dumps({"cwd": os.getcwd(), "argv": argv}) + "\n")
    fail = os.environ.get("TT_SPECDEC_STANDIN_FAIL")
    if fail and any(fail in a for a in argv):
        print(f"riscv-tt-elf-g++ (stand-in): failing on purpose (TT_SPECDEC_STANDIN_FAIL={fail})", file=sys.stderr)
        return 1
    out = argv[argv.index("-o") + 1] if "-o" in argv[:-1] else None
    if out is None:
        return 0
    if out.endswith(".elf"):
        minimal_elf(out, text_address(argv))
        return 0
    if "c++-header" in argv:
        return 0  # no precompiled header: the JIT then includes pch.h as text, which clang can read too
    open(out, "wb").close()
    if "-MMD" in argv:
        dep = argv[argv.index("-MF") + 1] if "-MF" in argv[:-1] else os.path.splitext(out)[0] + ".d"
        sources = [a for a in argv if a.endswith((".cc", ".cpp", ".c", ".S"))]
        with open(dep, "w") as f:
            f.write(f"{out}: {' '.join(sources)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
