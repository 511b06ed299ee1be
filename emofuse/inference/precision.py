"""Which precision a model runs in: ``auto`` (the default) picks bfloat16 where the hardware
computes it natively and the model's answers were measured to agree with float32, float32
elsewhere; ``fp32`` and ``bf16`` are taken as asked.

The measurement travels in the model file: ``extra["bf16_agreement"]``, the share of clips of
each corpus given the same label in bfloat16 as in float32 (written by ``python
bench/precision.py --save-into-models``).
A model without it stays in float32.

>>> choose_precision("auto", "cpu", {"emodb": 0.97}, native="AVX512-BF16").used
'fp32'
>>> choose_precision("auto", "cpu", {"emodb": 0.99}, native="AVX512-BF16").used
'bf16'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from emofuse.device import native_bf16

__all__ = ["BF16_MIN_AGREEMENT", "PRECISIONS", "PrecisionChoice", "choose_precision"]

PRECISIONS = ("auto", "fp32", "bf16")
BF16_MIN_AGREEMENT = 0.985  # least share of equal labels on every measured corpus


class PrecisionChoice(NamedTuple):
    """The precision asked for, the one used (``fp32`` or ``bf16``) and why."""

    requested: str
    used: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return self._asdict()


def choose_precision(
    requested: str,
    device_type: str,
    agreement: Mapping[str, float] | None,
    *,
    native: str | None | bool = False,
) -> PrecisionChoice:
    """The precision to run in on ``device_type`` (``cpu`` or ``cuda``). ``agreement``: the
    model's measured ``bf16_agreement`` (corpus -> share of equal labels), or None. ``native``:
    what computes bfloat16 natively, None for nothing (default: ask
    :func:`emofuse.device.native_bf16`; tests pass it)."""
    if requested not in PRECISIONS:
        raise ValueError(f"unknown precision {requested!r}; expected auto, fp32 or bf16")
    if requested != "auto":
        return PrecisionChoice(requested, requested, "as asked")
    unit = native_bf16(device_type) if native is False else native
    if not unit:
        return PrecisionChoice("auto", "fp32", f"this {device_type.upper()} has no native "
                               "bfloat16 (neither AMX nor AVX512-BF16)")  # fmt: skip
    if not agreement:
        return PrecisionChoice("auto", "fp32", "the model file carries no measured bfloat16 "
                               "agreement (bench/precision.py --save-into-models)")  # fmt: skip
    corpus, worst = min(agreement.items(), key=lambda item: item[1])
    if worst < BF16_MIN_AGREEMENT:
        return PrecisionChoice("auto", "fp32", f"in bfloat16 its labels agree with float32 on "
                               f"only {worst:.1%} of {corpus}")  # fmt: skip
    return PrecisionChoice("auto", "bf16", f"{unit} computes bfloat16 natively and the model's "
                           f"labels agree with float32 on at least {worst:.1%} of every measured "
                           "corpus")  # fmt: skip
