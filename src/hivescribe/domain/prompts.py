"""Caption prompts: templates over an item's fields, in one or more stages (validation).

A caption job's parameters hold either one ``prompt`` or a list of ``stages``::

    {"prompt": "Describe {filename} in one sentence."}
    {"stages": [{"name": "short", "prompt": "A short caption:"},
                {"name": "detailed", "prompt": "Expand on: {short}", "max_new_tokens": 128}]}

A template may name ``{item_key}``, ``{dataset}``, ``{shard}``, ``{filename}``, any job parameter
with a plain value, the output of any earlier stage by its name, and ``{caption}``: the previous
stage's output. ``{{`` and ``}}`` are literal braces. Placeholders are substituted here, before
the model sees the prompt (CaptionFlow sent its ``{caption}`` to the model as it was written).
A prompt of ``None`` means the model's own default: unconditional captioning for BLIP-style
models, :data:`DEFAULT_PROMPT` for chat models and servers.

:func:`check_stages` validates all of this without touching a model, so a job can be refused
when it is created; it imports nothing but ``hivescribe.domain``.
``hivescribe.backends.prompts.run_stages`` runs them.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hivescribe.domain.errors import ValidationError

DEFAULT_PROMPT = "A short caption of this image:"
DEFAULT_MAX_NEW_TOKENS = 128
MAX_NEW_TOKENS = 8192
MAX_STAGES = 8
MAX_PROMPT_CHARS = 20_000
ITEM_FIELDS = ("item_key", "dataset", "shard", "filename")
RESERVED = (*ITEM_FIELDS, "caption")
CAPTION_PARAMS = ("prompt", "stages", "max_new_tokens", "strip_prompt")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}\Z")
_STAGE_KEYS = {"name", "prompt", "max_new_tokens"}


@dataclass(frozen=True)
class Stage:
    name: str
    prompt: str | None  # None: the model's own default
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS


def placeholders(template: str) -> list[str]:
    """The names a template uses, in order; ValidationError for malformed templates."""
    names: list[str] = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValidationError(
            f"malformed prompt template ({exc}); write {{{{ and }}}} for literal braces"
        ) from None
    for _, field, spec, conversion in parsed:
        if field is None:
            continue
        if not _NAME.match(field) or spec or conversion:
            shown = (
                "{"
                + field
                + (f"!{conversion}" if conversion else "")
                + (f":{spec}" if spec else "")
                + "}"
            )
            raise ValidationError(
                f"prompt placeholder {shown} is not a plain name; use {{name}}, or {{{{ and }}}} "
                "for literal braces"
            )
        names.append(field)
    return names


def render(template: str, values: Mapping[str, str]) -> str:
    """Substitute ``values`` into a template already checked by :func:`check_stages`."""
    out: list[str] = []
    for literal, field, _, _ in string.Formatter().parse(template):
        out.append(literal)
        if field is not None:
            if field not in values:
                raise ValidationError(f"prompt placeholder {{{field}}} has no value")
            out.append(values[field])
    return "".join(out)


def param_values(params: Mapping[str, Any]) -> dict[str, str]:
    """Job parameters usable in templates: plain values only, not the prompts themselves."""
    return {
        k: _text(v)
        for k, v in params.items()
        if k not in CAPTION_PARAMS and _NAME.match(k) and isinstance(v, str | int | float | bool)
    }


def check_stages(params: Mapping[str, Any]) -> list[Stage]:
    """A caption job's stages, or a ValidationError that says what is wrong with them."""
    if "prompt" in params and "stages" in params:
        raise ValidationError("give either prompt or stages, not both")
    default_tokens = _tokens(params.get("max_new_tokens", DEFAULT_MAX_NEW_TOKENS), "max_new_tokens")
    if not isinstance(params.get("strip_prompt", True), bool):
        raise ValidationError("strip_prompt must be true or false")
    raw = params.get("stages")
    if raw is None:
        stages = [Stage("caption", _prompt(params.get("prompt"), "prompt"), default_tokens)]
    else:
        stages = _parse_stages(raw, default_tokens)
    fields = set(ITEM_FIELDS) | set(param_values(params))
    names = [s.name for s in stages]
    clash = sorted(fields.intersection(names))
    if clash:
        raise ValidationError(
            f"stage names {clash} are also job parameters: rename the stages or the parameters"
        )
    for index, stage in enumerate(stages):
        if stage.prompt is None:
            continue
        used = placeholders(stage.prompt)
        earlier = set(names[:index])
        label = f"stage {stage.name!r}" if raw is not None else "the prompt"
        if "caption" in used and index == 0:
            raise ValidationError(
                f"{label} uses {{caption}}, the previous stage's output, but no stage runs "
                "before it"
            )
        later = sorted({n for n in used if n in names[index:]})
        if later:
            raise ValidationError(
                f"{label} uses {', '.join('{' + n + '}' for n in later)}: a stage that has not "
                "run yet; a prompt can use only earlier stages"
            )
        known = fields | earlier | ({"caption"} if index else set())
        unknown = sorted(set(used) - known)
        if unknown:
            raise ValidationError(
                f"{label} uses unknown placeholders {', '.join('{' + n + '}' for n in unknown)}; "
                f"known here: {', '.join('{' + n + '}' for n in sorted(known))}; write {{{{ and "
                "}} for literal braces"
            )
    return stages


def _parse_stages(raw: Any, default_tokens: int) -> list[Stage]:
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_STAGES:
        raise ValidationError(f"stages must be a list of 1 to {MAX_STAGES} stages")
    stages: list[Stage] = []
    for number, spec in enumerate(raw, 1):
        if not isinstance(spec, dict):
            raise ValidationError(f"stage {number} must be an object with a name and a prompt")
        extra = sorted(set(spec) - _STAGE_KEYS)
        if extra:
            raise ValidationError(
                f"stage {number} has unknown keys {extra}; allowed: name, prompt, max_new_tokens"
            )
        name = spec.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValidationError(
                f"stage {number} needs a name made of letters, digits and _ (got {name!r})"
            )
        if name in RESERVED:
            raise ValidationError(
                f"stage name {name!r} is reserved; reserved: {', '.join(RESERVED)}"
            )
        if any(s.name == name for s in stages):
            raise ValidationError(f"two stages are named {name!r}")
        tokens = _tokens(
            spec.get("max_new_tokens", default_tokens), f"stage {name!r} max_new_tokens"
        )
        stages.append(Stage(name, _prompt(spec.get("prompt"), f"stage {name!r} prompt"), tokens))
    return stages


def _prompt(value: Any, label: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > MAX_PROMPT_CHARS:
        raise ValidationError(f"{label} must be text of at most {MAX_PROMPT_CHARS} characters")
    return value


def _tokens(value: Any, label: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_NEW_TOKENS:
        raise ValidationError(f"{label} must be a whole number from 1 to {MAX_NEW_TOKENS}")
    return value


def _text(value: str | int | float | bool) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)
