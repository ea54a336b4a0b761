"""The Raspberry Pi (aarch64) on an x86 host: BrainFlow cross-built from source, and an emulated Pi.

``hardware.pi.brainflow`` cross-compiles BrainFlow's C++ core for aarch64 and wraps it in a wheel;
``hardware.pi.root`` makes a Debian bookworm arm64 root (the Python of Raspberry Pi OS bookworm)
whose interpreter runs under qemu user-mode emulation. Both are cached under
``~/.cache/hotspot-edge/`` (see :mod:`hardware.pi.cache`), keyed by what they are built from.
"""
