"""Config values checked against the type annotations of the constructor they are passed to.

A config group's keys are the keyword arguments of its `_target_` (a model, a task, `pytorch_lightning.Trainer`, a
torch optimiser, a logger function), and those signatures already say what each argument takes: `max_epochs:
int | None`, `bidirectional: bool`, `precision: Literal['32-true', ...]`. `check_node` compares the composed values
with them before anything is built, so `trainer.max_epochs=abc` or `model.bidirectional=maybe` fail in one line
naming the key and the allowed types instead of deep inside Lightning (or, for a truthy string, not at all).

What counts: int (not bool), float (int or float, not bool), bool, str, None, Literal values, lists/tuples/sequences
(elementwise), mappings. Anything the checker cannot judge (no annotation, Any, a class a config cannot hold such
as an `Accelerator`, a nested `_target_` node) is let through: the constructor still has the last word.
"""

from __future__ import annotations

import collections.abc
import inspect
import os
import types
import typing
from typing import Any

UNION_TYPES = (typing.Union, types.UnionType)
SEQUENCES = (list, tuple, collections.abc.Sequence, collections.abc.Iterable, collections.abc.Collection)
MAPPINGS = (dict, collections.abc.Mapping, collections.abc.MutableMapping)
UNKNOWN = object()  # an annotation the checker cannot judge: every value passes


def annotations(target: Any) -> dict[str, Any]:
    """Parameter annotations of a callable, a class's `__init__` including its bases' (for `**kwargs` passed up)."""
    functions = (
        [c.__dict__["__init__"] for c in target.__mro__ if "__init__" in c.__dict__]
        if isinstance(target, type)
        else [target]
    )
    found: dict[str, Any] = {}
    for function in functions:
        if function is object.__init__:
            continue
        try:
            params = inspect.signature(function, eval_str=True).parameters
        except (NameError, TypeError, ValueError, SyntaxError):  # unresolvable annotations: judge nothing
            params = inspect.signature(function).parameters
            for name in params:
                found.setdefault(name, UNKNOWN)
            continue
        for name, param in params.items():
            if param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL) or name == "self":
                continue
            found.setdefault(name, UNKNOWN if param.annotation is param.empty else param.annotation)
    return found


def _members(annotation: Any) -> list[Any]:
    """The alternatives of a union (flattened), else the annotation itself."""
    if typing.get_origin(annotation) in UNION_TYPES:
        return [m for arg in typing.get_args(annotation) for m in _members(arg)]
    return [annotation]


def admits(annotation: Any, value: Any) -> bool:
    """Whether `value` (a plain config value: None, bool, int, float, str, list, dict) fits `annotation`."""
    if annotation is UNKNOWN or annotation is Any or isinstance(annotation, typing.TypeVar | str):
        return True
    if isinstance(value, dict) and "_target_" in value:
        return True  # a nested object, instantiated by Hydra
    origin = typing.get_origin(annotation)
    if origin in UNION_TYPES:
        return any(admits(member, value) for member in _members(annotation))
    if origin is typing.Literal:
        return any(value == v and type(value) is type(v) for v in typing.get_args(annotation))
    if annotation is None or annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    container = origin or annotation
    if container in SEQUENCES:
        if not isinstance(value, list | tuple):
            return False
        args = typing.get_args(annotation)
        if container is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(admits(a, v) for a, v in zip(args, value, strict=True))
        return not args or all(admits(args[0], v) for v in value)
    if container in MAPPINGS:
        return isinstance(value, dict)
    if isinstance(container, type):
        if issubclass(container, os.PathLike):
            return isinstance(value, str)
        return isinstance(value, container)  # a class config values never are (Tensor, Accelerator): no match
    return True


def describe(annotation: Any) -> str:
    """What an annotation allows, in words: 'an int or null', 'one of 32-true, 16-mixed', 'a list of ints'."""
    literals: list[Any] = []
    words: list[str] = []
    for member in _members(annotation):
        if typing.get_origin(member) is typing.Literal:
            literals += [v for v in typing.get_args(member) if str(v) not in map(str, literals)]
            continue
        word = _word(member)
        if word and word not in words:
            words.append(word)
    if literals:
        words.insert(0, f"one of {', '.join(map(str, literals))}")
    if "a number" in words and "an int" in words:
        words.remove("an int")
    if "null" in words:  # last, as in "an int or null"
        words.append(words.pop(words.index("null")))
    return " or ".join(words)


def _word(annotation: Any) -> str:
    simple = {bool: "true or false", int: "an int", float: "a number", str: "a string", type(None): "null"}
    if annotation in simple:
        return simple[annotation]
    origin = typing.get_origin(annotation) or annotation
    if origin in SEQUENCES:
        args = typing.get_args(annotation)
        inner = describe(args[0]) if args else ""
        plural = {"an int": "ints", "a number": "numbers", "a string": "strings", "true or false": "booleans"}
        return f"a list of {plural.get(inner, inner)}" if inner else "a list"
    if origin in MAPPINGS:
        return "a mapping"
    return ""  # a class a config cannot hold: not worth naming


def check_node(key: str, target: Any, values: dict[str, Any]) -> str | None:
    """The first `key.name must be ..., got ...` line for a value its annotation refuses, or None."""
    hints = annotations(target)
    for name, value in values.items():
        annotation = hints.get(name, UNKNOWN)
        if name.startswith("_") or admits(annotation, value):
            continue
        allowed = describe(annotation)
        if allowed:
            return f"{key}.{name} must be {allowed}, got {value!r}"
    return None
