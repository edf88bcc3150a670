"""The learning-rate schedule: linear warm-up, cosine decay, and a re-warm after a compact resume.

A compact state carries no optimiser moments: Adam starts them from zero on the new machine,
and its first steps then move every weight by about the full learning rate whatever its
gradient's history. Ramping the rate up again over `rewarm_steps` lets the moments settle
before the steps are full size.
"""

from __future__ import annotations

import math

from torch.optim.lr_scheduler import LambdaLR

from .config import TrainConfig


def lr_factor(config: TrainConfig, step: int, rewarm_from: int | None = None) -> float:
    """The multiple of the base learning rate at `step`.

    Args:
        config: the run's warm-up, total steps and floor (`min_lr_ratio`), and `rewarm_steps`.
        step: the optimiser step (0-based).
        rewarm_from: the step a compact resume started at; None for a run that never lost its
            optimiser state.
    """
    if step < config.warmup_steps:
        factor = (step + 1) / config.warmup_steps
    else:
        progress = min(1.0, (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps))
        factor = config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    if rewarm_from is not None and config.rewarm_steps > 0 and step >= rewarm_from:
        factor *= min(1.0, (step - rewarm_from + 1) / config.rewarm_steps)
    return factor


def place_scheduler(scheduler: LambdaLR, step: int) -> None:
    """Move a fresh scheduler (and its optimiser's rates) to `step`, as if it had stepped there."""
    scheduler.last_epoch = step
    rates = [base * rule(step) for base, rule in zip(scheduler.base_lrs, scheduler.lr_lambdas)]
    for group, rate in zip(scheduler.optimizer.param_groups, rates):
        group["lr"] = rate
    scheduler._last_lr = rates  # what get_last_lr() reports (the metrics log's lr column)
