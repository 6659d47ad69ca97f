"""The models' health for the UI: loading them ahead of the first run, and one status line."""

from __future__ import annotations

import logging
from pathlib import Path

from rr_core.presets import cuda_available
from rr_core.prompts import describe_active_templates
from rr_core.rubric import Task
from studio.context import ModelsLike

logger = logging.getLogger(__name__)


class Health:
    """Warms the models up and says how they are: ready, loading, or failed (with the error)."""

    def __init__(self, models: ModelsLike) -> None:
        self.models = models
        self.state = "ready"

    def health(self) -> str:
        """A line for the UI: preset, models, and the tiny banner or a loading/failure note."""
        described = self.models.preset.describe()
        models = ", ".join(f"{task}: {model}" for task, model in described["generators"].items())
        critics = ", ".join(sorted(set(map(str, described["critic"].values()))))
        text = f"Preset **{described['preset']}** · critic: {critics} · generators: {models}"
        profile = getattr(self.models.preset, "profile", None)
        if profile is not None:
            text = f"{text}\n\nProfile **{profile.name}** ({profile.reason})"
        if self.state != "ready":
            text = f"{self.state}\n\n{text}"
        if described.get("banner"):
            text = f"{text}\n\n⚠️ {described['banner']}"
        return text

    def details(self) -> str:
        """The "Models and setup" text: `health` and the prompt template each task and mode uses, by
        the same template_version stored with every critique, so a reader can match the two."""
        return f"{self.health()}\n\n{templates_text()}"

    @property
    def settled(self) -> bool:
        """Whether the state is final (ready or failed), so the UI can stop asking."""
        return self.state == "ready" or self.state.startswith("❌")

    def headline(self) -> str:
        """One short line for the page header: the preset, the models by name (not their paths on the
        server), and whether they are ready; the full line stays in `health` (and the API)."""
        described = self.models.preset.describe()
        critics = sorted({_short(str(m)) for m in described["critic"].values()})
        generators = sorted({_short(str(m)) for m in described["generators"].values()})
        state = "✅ ready" if self.state == "ready" else self.state
        line = (f"{state} · preset **{described['preset']}** · critic {', '.join(critics)} · "
                f"generator {', '.join(generators)}")
        if described.get("banner"):
            line += f" · ⚠️ {described['banner'].split(':')[0]}"
        return line

    def warm_up(self) -> None:
        """Load the models now (in a background thread at start, or before serving on ZeroGPU) so the
        first run is not slow; under a per-task profile only the first task's models."""
        self.state = "⏳ Models are loading…"
        try:
            load = getattr(self.models, "load", None)
            if callable(load):  # what the hardware profile keeps resident
                load()
            else:
                for task in Task:
                    self.models.generator(task)
            router = self.models.critic()
            on_zero_gpu = getattr(getattr(self.models.preset, "profile", None), "zero_gpu", False)
            if cuda_available() and not on_zero_gpu and hasattr(router, "critics"):
                # Compile and capture the critic's decode step now rather than on a user's first run.
                self.state = "⏳ Compiling the critic's fast decode path (first start only)…"
                for critic in {id(c): c for c in router.critics.values()}.values():
                    if hasattr(critic, "warmup"):
                        critic.warmup()
            self.state = "ready"
        except Exception as exc:  # shown in the UI; runs retry the load
            logger.exception("model warm-up failed")
            self.state = f"❌ Models failed to load: {type(exc).__name__}: {exc}"


def templates_text() -> str:
    """The active prompt templates as a Markdown list: task and mode, recorded version, file name
    (not its folder on the server)."""
    lines = ["**Prompt templates**"]
    for row in describe_active_templates():
        lines.append(f"- {row['task']} {row['mode']}: `{row['template_version']}` ({row['origin']}, "
                     f"{Path(row['path']).name})")
    return "\n".join(lines)


def _short(model: str) -> str:
    """A model's name as a person reads it: the last part of a hub id or a local path."""
    return model.rstrip("/").replace("\\", "/").split("/")[-1] or model
