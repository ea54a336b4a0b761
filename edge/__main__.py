"""``python -m edge --config device.toml`` / ``hotspot-edge``: run the device runtime.

``--self-test`` loads the configuration and the bundle (signature, hashes, golden vectors
through the TFLite runtime) and exits 0, or prints one error line and exits 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from edge.config import load_config
from edge.errors import ArgumentParser, run_cli


def _main(argv: Sequence[str] | None) -> int:
    parser = ArgumentParser(prog="hotspot-edge", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="the device TOML (see hardware/example-device.toml)")
    parser.add_argument("--self-test", action="store_true", help="verify config and bundle, then exit")
    parser.add_argument("--once", action="store_true", help="exit after the first session's result")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    from edge.runtime import Runtime, check_bundle

    if args.self_test:
        bundle, channels = check_bundle(config)
        print(f"self-test ok: bundle {bundle.bundle_id} ({bundle.runtime}), channels {' '.join(channels)}, "
              f"{config.session.hotspot_hemisphere} hemisphere")
        return 0
    return Runtime(config, once=args.once).run()


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point; user errors become one line on stderr and exit code 2, warnings are shown."""
    return run_cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
