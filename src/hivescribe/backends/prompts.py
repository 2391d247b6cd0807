"""Caption prompts at run time: render each stage for a batch, call the model, and shape each
item's result. The templates and their validation live in hivescribe.domain.prompts."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from hivescribe.backends.base import Failure, Outcome, Success, WorkItem
from hivescribe.domain.errors import ValidationError
from hivescribe.domain.prompts import (
    Stage,
    check_stages,
    param_values,
    render,
)

# -- running stages -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CaptionRequest:
    """One model call: an item's image with one stage's rendered prompt."""

    item: WorkItem
    stage: Stage
    prompt: str | None  # rendered; None: the model's default


GenerateFn = Callable[[list[CaptionRequest]], list["str | Failure"]]


def item_values(item: WorkItem, outputs: Mapping[str, str], last: str | None) -> dict[str, str]:
    values = param_values(item.params)
    values.update(outputs)
    if last is not None:
        values["caption"] = last
    values.update(
        item_key=item.item_key, dataset=item.dataset, shard=item.shard, filename=item.filename or ""
    )
    return values


def run_stages(items: list[WorkItem], generate: GenerateFn, model: str | None) -> list[Outcome]:
    """Run every item's stages in order, one ``generate`` call per stage step for the whole
    batch. A failed item stops there; the others go on. Output of each caption item:
    ``{"caption": last stage, "stages": {name: text}, "prompts": {name: rendered prompt}}``."""
    outcomes: list[Outcome | None] = [None] * len(items)
    plans: list[list[Stage]] = []
    for index, item in enumerate(items):
        try:
            plans.append(check_stages(item.params))
        except ValidationError as exc:
            plans.append([])
            outcomes[index] = Failure(f"bad caption parameters: {exc.detail}", permanent=True)
    outputs: list[dict[str, str]] = [{} for _ in items]
    prompts: list[dict[str, str | None]] = [{} for _ in items]
    step = 0
    while active := [i for i, plan in enumerate(plans) if outcomes[i] is None and step < len(plan)]:
        requests = []
        for i in active:
            stage = plans[i][step]
            last = outputs[i][plans[i][step - 1].name] if step else None
            prompt = (
                None
                if stage.prompt is None
                else render(stage.prompt, item_values(items[i], outputs[i], last))
            )
            prompts[i][stage.name] = prompt
            requests.append(CaptionRequest(items[i], stage, prompt))
        results = generate(requests)
        if len(results) != len(requests):
            raise RuntimeError(
                f"generate returned {len(results)} results for {len(requests)} requests"
            )
        for i, result in zip(active, results, strict=True):
            if isinstance(result, Failure):
                multi = len(plans[i]) > 1
                where = f"stage {plans[i][step].name!r}: " if multi else ""
                outcomes[i] = Failure(where + result.error, result.permanent)
            elif not result.strip():
                where = f"stage {plans[i][step].name!r}: " if len(plans[i]) > 1 else ""
                outcomes[i] = Failure(where + "the model returned an empty caption")
            else:
                outputs[i][plans[i][step].name] = result.strip()
        step += 1
    done: list[Outcome] = []
    for i, outcome in enumerate(outcomes):
        if outcome is None:
            caption = outputs[i][plans[i][-1].name]
            output = {"caption": caption, "stages": outputs[i], "prompts": prompts[i]}
            outcome = Success(output, text=caption, model=model)
        done.append(outcome)
    return done
