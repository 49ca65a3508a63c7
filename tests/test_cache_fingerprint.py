"""The dataset cache is keyed by all the code that makes the data: the task's module and every rnnbench module its
code reaches, so editing a helper (not only `generate`) builds the data afresh; comments and docstrings do not."""

from __future__ import annotations

import importlib
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from rnnbench.tasks import base, temporal_order
from rnnbench.tasks.base import code_fingerprint, code_modules
from rnnbench.tasks.temporal_order import TemporalOrderTask
from rnnbench.tasks.translate import TranslateTask


@pytest.fixture(autouse=True)
def fresh_fingerprints() -> Iterator[None]:
    code_fingerprint.cache_clear()
    yield
    code_fingerprint.cache_clear()


def test_the_fingerprint_covers_the_modules_a_task_reaches() -> None:
    names = [m.__name__ for m in code_modules(TranslateTask)]
    assert names == [
        "rnnbench.tasks.base",
        "rnnbench.tasks.char_lm",  # check_fraction
        "rnnbench.tasks.seq2seq",  # the base class and its helpers (_addition lives there)
        "rnnbench.tasks.solve",  # the solve criterion
        "rnnbench.tasks.sword",  # the Bible reader
        "rnnbench.tasks.translate",
    ]
    assert [m.__name__ for m in code_modules(TemporalOrderTask)] == [
        "rnnbench.tasks.base",
        "rnnbench.tasks.solve",
        "rnnbench.tasks.temporal_order",
    ]


def test_editing_a_helper_changes_the_fingerprint_and_comments_do_not(monkeypatch: pytest.MonkeyPatch) -> None:
    real = base._module_source
    original = code_fingerprint(TemporalOrderTask)
    source = real(temporal_order)
    assert "def relevant_windows(" in source

    def edited(change: str):
        def read(module):  # the module as it would be after the edit
            return change if module is temporal_order else real(module)

        return read

    helper = source.replace(
        "def relevant_windows(seq_len: int, n_relevant: int)", "def relevant_windows(seq_len: int, n_relevant: int = 2)"
    )
    assert helper != source
    for text, same in (
        (helper, False),
        (source + "\n# a comment\n", True),
        (source.replace('"""', '"""Edited. ', 1), True),
    ):
        monkeypatch.setattr(base, "_module_source", edited(text))
        code_fingerprint.cache_clear()
        assert (code_fingerprint(TemporalOrderTask) == original) is same


HELPER = """
    import numpy as np

    OFFSET = {offset}

    def shift(x):
        return x + OFFSET
"""
TASK = """
    import numpy as np
    from fakepkg.helpers import shift
    from rnnbench.tasks.base import SequenceTask

    class FakeTask(SequenceTask):
        name = "fake"

        @staticmethod
        def generate(n, rng, seq_len):
            return {"x": shift(rng.random((n, seq_len, 1)).astype(np.float32)), "y": np.zeros(n, dtype=np.float32)}
"""


def test_a_users_task_gets_fresh_data_after_its_helper_is_edited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "src" / "fakepkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "helpers.py").write_text(textwrap.dedent(HELPER.format(offset=0)))
    (package / "task.py").write_text(textwrap.dedent(TASK))
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    monkeypatch.delitem(sys.modules, "fakepkg", raising=False)
    import fakepkg.task

    def build() -> tuple[np.ndarray, str]:
        task = fakepkg.task.FakeTask(seq_len=3, n_train=4, n_val=2, n_test=2, cache_dir=str(tmp_path / "cache"))
        data = task.build_split("val")
        return np.asarray(data.with_format("numpy")["x"]), data.cache_files[0]["filename"]

    before, before_file = build()
    assert build()[1] == before_file  # unchanged code: read back from the cache
    (package / "helpers.py").write_text(textwrap.dedent(HELPER.format(offset=10)))
    importlib.reload(sys.modules["fakepkg.helpers"])
    importlib.reload(fakepkg.task)
    after, after_file = build()
    assert after_file != before_file
    np.testing.assert_allclose(after, before + 10)  # the edited helper's data, not the stale cache
    for name in ("fakepkg.task", "fakepkg.helpers", "fakepkg"):
        monkeypatch.delitem(sys.modules, name, raising=False)
