"""The shipped contract checks (:mod:`deepstrata.testing`) over every registry entry: every
kind (serve and ONNX facets included), every task, every classical head on every task it
serves. A new entry is checked here without a line of its own."""

from __future__ import annotations

import pytest

from deepstrata.classical import HEADS
from deepstrata.kinds import KINDS
from deepstrata.tasks import TASKS, get
from deepstrata.testing import check_head, check_kind, check_task

CLASSICAL_TASKS = [name for name in TASKS if get(name).classical]


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_keeps_the_kind_contract(kind, one_torch_thread):
    check_kind(kind)


@pytest.mark.parametrize("task", sorted(TASKS))
def test_every_task_keeps_the_task_contract(task):
    check_task(task)


@pytest.mark.parametrize("task", CLASSICAL_TASKS)
@pytest.mark.parametrize("head", HEADS)
def test_every_classical_head_serves_every_classical_task(head, task):
    check_head(head, task)


def test_a_kind_that_cannot_be_served_fails_its_check(monkeypatch):
    """The check catches the breakage it exists for: a kind whose HTTP field is missing."""
    import dataclasses

    import deepstrata.kinds as kinds

    broken = dataclasses.replace(KINDS["number"], http_ref="deepstrata.preprocess.number:nothing")
    monkeypatch.setitem(kinds.KINDS, "number", broken)
    with pytest.raises(AttributeError):
        check_kind("number", facets=("serve",))


def test_a_task_whose_decoding_is_wrong_fails_its_check(monkeypatch):
    task = get("multiclass")
    monkeypatch.setattr(type(task), "decode", lambda self, encoder, point: point[::-1])
    with pytest.raises(AssertionError, match="decoding"):
        check_task("multiclass")
