"""hotspot-edge device code: what runs on the Raspberry Pi.

Imports only numpy, brainflow, pyserial, a TFLite runtime and the small device-side
libraries (cryptography, cobs, bless). Host code in ``train/`` and ``convert/`` imports
this package so that host and device compute the same thing from one implementation.
"""

__version__ = "0.1.0"
