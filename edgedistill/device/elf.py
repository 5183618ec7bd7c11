"""Which Android ABI a runner binary was built for, from its ELF header (``e_machine``).

A binary built for the wrong ABI fails on the device with an opaque "not executable" or "exec
format error"; checking before the push names the mismatch. Scripts (``#!``) run anywhere their
interpreter exists and are not checked.
"""

from __future__ import annotations

from pathlib import Path

from edgedistill.errors import UserError

# e_machine -> ABI name (64-bit, 32-bit) as Android's ro.product.cpu.abilist spells it
_MACHINES = {3: ("x86", "x86"), 40: ("armeabi-v7a", "armeabi-v7a"), 62: ("x86_64", "x86_64"),
             183: ("arm64-v8a", "arm64-v8a"), 243: ("riscv64", "riscv64")}


def binary_abi(path: Path) -> str | None:
    """The ABI of an ELF executable, or None for a script; a UserError for anything else."""
    head = Path(path).read_bytes()[:20]
    if head.startswith(b"#!"):
        return None
    if len(head) < 20 or head[:4] != b"\x7fELF":
        raise UserError(f"runner {path} is neither an ELF executable nor a #! script")
    order = "little" if head[5] == 1 else "big"
    machine = int.from_bytes(head[18:20], order)
    if machine not in _MACHINES:
        raise UserError(f"runner {path} is built for ELF machine {machine}, which edgedistill does not know")
    return _MACHINES[machine][0 if head[4] == 2 else 1]


def check_abi(path: Path, abilist: list[str]) -> str | None:
    """Fail before pushing a binary the device cannot execute; returns the binary's ABI."""
    abi = binary_abi(path)
    if abi is not None and abilist and abi not in abilist:
        raise UserError(f"runner {path} is built for {abi} but the device runs {', '.join(abilist)}: "
                        f"build it for {abilist[0]}")
    return abi
