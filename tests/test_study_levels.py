"""A one-at-a-time study over several factors compares each level with the baseline.

`make demo`'s study (encoder x front end x schedule, one at a time) printed "no comparisons
yet" with every trial finished: the analysis took any study of more than one factor for a
factorial one (meant for learning curves with steps) and found no full factorial.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from tympan.store import open_store
from tympan.study.analysis import analyse
from tympan.study.records import load_stored_study
from tympan.study.runner import run_study
from tympan.study.spec import load_study

TRAIN = """\
import sys
import tympan
args = dict(a.split("=", 1) for a in sys.argv[1:])
seed = int(args["seed"])
wer = 0.30 + 0.10 * (args["enc"] == "b") - 0.05 * (args["feat"] == "y") + 0.003 * seed
with tympan.init(project="levels", config=args) as run:
    run.log({"test/wer": wer})
"""

STUDY = """\
name: levels
command: [python, train.py]
design: one-at-a-time
factors:
  enc: {levels: [a, b], baseline: a}
  feat: {levels: [x, y], baseline: x}
seeds: 3
metrics:
  - {name: wer, split: test, direction: lower}
analysis: {n_boot: 1000, test: t-test}
"""


def test_each_factors_level_is_compared_with_the_baseline(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text(TRAIN)
    (tmp_path / "levels.yaml").write_text(textwrap.dedent(STUDY))
    run_study(load_study(tmp_path / "levels.yaml"), store=str(tmp_path / "store"), workers=2)
    with open_store(str(tmp_path / "store")) as store:
        analysis = analyse(load_stored_study(store, "levels"))
    found = {(c.kind, c.factor, c.level, c.baseline): c for c in analysis.comparisons}
    assert set(found) == {("level", "enc", "b", "a"), ("level", "feat", "y", "x")}, \
        analysis.notes
    assert found["level", "enc", "b", "a"].effect.estimate > 0.09  # b adds 0.10 to WER
    assert found["level", "feat", "y", "x"].effect.estimate < -0.04
    assert not any("factorial" in note for note in analysis.notes)
