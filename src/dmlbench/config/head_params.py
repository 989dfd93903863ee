"""The heads' parameters: defaults and ranges, declared once and without torch.

The head classes (dmlbench.heads) resolve and check their parameters with these declarations,
and the config check (dmlbench.config) refuses a `methods.<name>.<parameter>` out of range with
them, before any job: the workflow parses its config with dmlbench.config, which must not import
torch (dmlbench.heads does), so the declarations live here, outside that package.

A range is a closed or open bound on each side, e.g. ArcFace's margin m in [0, pi): m = pi
would put every target angle past pi, where cos(theta + m) no longer decreases. docs/config.md
says where every other range of the config comes from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from dmlbench.config.yaml_loader import string_number_note
from dmlbench.errors import ConfigError

__all__ = [
    "Param",
    "Choice",
    "HEAD_PARAMS",
    "defaults",
    "number",
    "choice",
    "resolve",
    "check_value",
    "check_combination",
]


@dataclass(frozen=True)
class Param:
    """One numeric parameter: its default and its range.

    ``low``/``high`` are the bounds (None = unbounded), ``low_open``/``high_open`` make them
    strict; ``integer`` takes integral values only; ``high_name`` names a bound that is a
    constant (``"pi"``) in messages."""

    default: float | int
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    integer: bool = False
    high_name: str | None = None

    def interval(self) -> str:
        """The range in interval notation, e.g. ``[0, pi)``, ``(0, inf)``, ``integer in [1, inf)``."""
        low = "-inf" if self.low is None else _fmt(self.low)
        high = "inf" if self.high is None else (self.high_name or _fmt(self.high))
        left = "(" if self.low is None or self.low_open else "["
        right = ")" if self.high is None or self.high_open else "]"
        return f"{'integer in ' if self.integer else ''}{left}{low}, {high}{right}"

    def contains(self, value: float) -> bool:
        """Is the (finite) number ``value`` inside the range?"""
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return not (self.high is not None and (value > self.high or (self.high_open and value == self.high)))


@dataclass(frozen=True)
class Choice:
    """One named option: its default and the allowed names (a string parameter)."""

    default: str
    choices: tuple[str, ...]

    def interval(self) -> str:
        """The allowed names as a set, e.g. ``{run, reference}``."""
        return "{" + ", ".join(self.choices) + "}"

    def contains(self, value: str) -> bool:
        return value in self.choices


def _fmt(x: float) -> str:
    return f"{x:g}"


#: SphereFace's default anneal_fraction: the share of its run at which the reference code's
#: schedule reaches lambda_min (iteration 1659 of 28,000 with base 1000, gamma 0.12, power 1,
#: lambda_min 5), so a run of any length anneals as the reference run did.
ANNEAL_FRACTION = 0.06

#: head name -> parameter name -> declaration. The defaults are the papers' (docs/methods.md).
HEAD_PARAMS: dict[str, dict[str, Param | Choice]] = {
    "conventional": {},
    "l2softmax": {
        "alpha": Param(16.0, low=0, low_open=True),  # the radius of the hypersphere
    },
    "arcface": {
        "scale": Param(30.0, low=0, low_open=True),
        # m = pi (and beyond) leaves no angle where cos(theta + m) decreases in theta
        "margin": Param(0.5, low=0, high=math.pi, high_open=True, high_name="pi"),
    },
    "cosface": {
        "scale": Param(30.0, low=0, low_open=True),
        "margin": Param(0.4, low=0),
    },
    "sphereface": {
        "margin": Param(4, low=1, integer=True),  # cos(m theta) as a Chebyshev polynomial of degree m
        "base": Param(1000.0, low=0),
        "gamma": Param(0.12, low=0),
        "power": Param(1.0, low=0),
        "lambda_min": Param(5.0, low=0),
        # run: lambda reaches lambda_min at anneal_fraction of the run's training steps, whatever
        # its length; reference: the reference code's per-iteration schedule (base, gamma, power),
        # written for its ~28k iterations (docs/methods.md)
        "lambda_schedule": Choice("run", ("run", "reference")),
        "anneal_fraction": Param(ANNEAL_FRACTION, low=0, low_open=True, high=1),
    },
    "centerloss": {
        "weight": Param(0.003, low=0),
        # alpha = 0 would keep the centres at their zero start: the centre term would only pull
        # every embedding to the origin
        "alpha": Param(0.5, low=0, low_open=True, high=1),
    },
}


def defaults(head: str) -> dict[str, Any]:
    """Parameter name -> default of the head ``head`` (what ``Head.PARAMS`` holds)."""
    return {name: p.default for name, p in HEAD_PARAMS[head].items()}


def number(where: str, value: Any, param: Param) -> float | int:
    """``value`` checked against ``param``: a finite number in its range, returned as int
    (``param.integer``) or float. ConfigError ``"<where> must be ..., got <value>"`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where} must be a number, got {value!r}{string_number_note(value)}")
    if not math.isfinite(value):
        raise ConfigError(f"{where} must be finite, got {value!r}")
    if param.integer:
        if float(value) != int(value):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        value = int(value)
    else:
        value = float(value)
    if not param.contains(value):
        if param.low is not None and (value < param.low or (param.low_open and value == param.low)):
            bound = f"{'>' if param.low_open else '>='} {_fmt(param.low)}"
        else:
            name = f" ({param.high_name})" if param.high_name else ""
            bound = f"{'<' if param.high_open else '<='} {param.high:.6g}{name}"
        raise ConfigError(f"{where} must be {bound}, got {value!r}")
    return value


def choice(where: str, value: Any, param: Choice) -> str:
    """``value`` checked against ``param``: one of its names. ConfigError ``"<where> must be one
    of ..., got <value>"`` otherwise."""
    if not isinstance(value, str) or value not in param.choices:
        raise ConfigError(f"{where} must be one of {', '.join(param.choices)}, got {value!r}")
    return value


def _declared(head: str) -> dict[str, Param | Choice]:
    try:
        return HEAD_PARAMS[head]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown head method {head!r}; known methods: {', '.join(sorted(HEAD_PARAMS))}") from None


def check_value(head: str, key: str, value: Any, where: str | None = None) -> float | int | str:
    """One parameter of ``head`` checked against its declaration; ``where`` names it in the
    message (default: ``head 'arcface' parameter 'margin'``, the head's own wording)."""
    declared = _declared(head)
    if key not in declared:
        allowed = ", ".join(sorted(declared)) or "(none)"
        raise ConfigError(f"unknown parameter {key!r} for head {head!r}; allowed parameters: {allowed}")
    where = where or f"head {head!r} parameter {key!r}"
    if isinstance(declared[key], Choice):
        return choice(where, value, declared[key])
    return number(where, value, declared[key])


def resolve(head: str, params: dict[str, Any]) -> dict[str, Any]:
    """The defaults of ``head`` updated with ``params``, every value checked (ConfigError naming
    the head and the parameter for an unknown key or a bad value)."""
    declared = _declared(head)
    unknown = sorted(set(params) - set(declared))
    if unknown:
        allowed = ", ".join(sorted(declared)) or "(none)"
        raise ConfigError(f"unknown parameter {unknown[0]!r} for head {head!r}; allowed parameters: {allowed}")
    merged = {**defaults(head), **params}
    return {key: check_value(head, key, merged[key]) for key in declared}


def _sphereface_combination(p: dict[str, Any]) -> tuple[str, str] | None:
    # The run schedule must reach lambda_min in finite time: a hyperbola from base never reaches 0.
    if p["lambda_schedule"] == "run" and p["lambda_min"] == 0 and p["base"] > 0 and p["power"] > 0:
        return "lambda_min", (
            "must be > 0 with lambda_schedule 'run' (lambda reaches lambda_min at anneal_fraction "
            "of the run, and base*(1 + c*t)^-power never reaches 0), got 0; set lambda_min > 0, "
            "or lambda_schedule: reference"
        )
    return None


#: head name -> check of a head's parameters together: None, or (the parameter at fault, what is wrong).
COMBINATIONS = {"sphereface": _sphereface_combination}


def check_combination(head: str, params: dict[str, Any], where: str | None = None) -> None:
    """ConfigError when ``params`` (every declared parameter of ``head``, each already checked)
    cannot go together, naming the parameter at fault as ``head 'sphereface' parameter
    'lambda_min'`` or, with ``where`` (``methods.sphereface``), as ``methods.sphereface.lambda_min``."""
    rule = COMBINATIONS.get(head)
    found = rule(params) if rule else None
    if found:
        key, problem = found
        name = f"{where}.{key}" if where else f"head {head!r} parameter {key!r}"
        raise ConfigError(f"{name} {problem}")
