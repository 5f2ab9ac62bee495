"""``geopurify`` CLI entry for torchrun in the tests, with spies at the border (nothing else changes).

Per rank it records, under ``$GEOPURIFY_TEST_DUMP``: every file an atomic write renamed into place
(``writes-rank<R>.txt``), the scenes this rank prepared (``prepared-rank<R>.txt``) and the weights
``api.train`` returned (``weights-rank<R>.pt``). Run as ``torchrun ... _torchrun_cli.py train ...``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def _append(path: Path, line: str) -> None:
    with open(path, "a") as f:
        f.write(line + "\n")


def main() -> int:
    dump = Path(os.environ["GEOPURIFY_TEST_DUMP"])
    rank = os.environ.get("RANK", "0")
    real_replace = os.replace

    def replace(src, dst, *args, **kwargs):  # utils.atomic ends every output with os.replace
        _append(dump / f"writes-rank{rank}.txt", str(Path(dst).resolve()))
        return real_replace(src, dst, *args, **kwargs)

    os.replace = replace

    import torch

    from geopurify import api, cli

    real_prepare, real_train = api.prepare_training_scene, api.train

    def prepare(path, *args, **kwargs):
        _append(dump / f"prepared-rank{rank}.txt", Path(path).name)
        return real_prepare(path, *args, **kwargs)

    def train(*args, **kwargs):
        model = real_train(*args, **kwargs)
        torch.save(model.state_dict(), str(dump / f"weights-rank{rank}.pt"))
        return model

    api.prepare_training_scene, api.train = prepare, train
    return cli.main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
