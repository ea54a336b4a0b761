"""The physical side that is not the runtime: board and electrode maps, the OpenBCI board
emulator, Raspberry Pi provisioning and deployment."""
