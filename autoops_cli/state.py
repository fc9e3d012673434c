"""The application state of one invocation, stored in ``ctx.obj`` by the root callback."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autoops_cli.output import Output

if TYPE_CHECKING:
    from config.settings import DataMaskingConfig, LangfuseConfig
    from config.settings_layers import SettingProblem
    from config.settings_sources import LoadedSettings


@dataclass
class AppState:
    """Output mode, the config file named on the command line, and settings loaded once."""

    output: Output
    config_file: Path | None = None
    _loaded: dict[tuple[Any, ...], LoadedSettings] = field(default_factory=dict, repr=False)
    # A replay worker's: its parent's settings, as they were when the run began.
    _adopted: LoadedSettings | None = field(default=None, repr=False)

    def adopt_settings(self, loaded: LoadedSettings) -> None:
        """Use ``loaded`` instead of reading any source (a replay worker: every worker of a
        run applies what its parent read, whatever the files say by the time it starts)."""
        self._adopted = loaded

    def load_settings(
        self,
        *,
        config_file: Path | None = None,
        flags: dict[str, tuple[Any, str]] | None = None,
    ) -> LoadedSettings:
        """Every source read and validated (problems collected, not raised).

        Adds the toolkit's own warnings to the core's: a sampling rule naming an event type,
        severity or agent the simulated system does not know (the core cannot know them).
        """
        from config.settings_sources import load_settings

        if self._adopted is not None:
            return self._adopted
        chosen = config_file or self.config_file
        key = (chosen, tuple(sorted((flags or {}).items(), key=lambda kv: kv[0])))
        if key not in self._loaded:
            loaded = load_settings(config_file=chosen, flags=flags)
            loaded.warnings.extend(unknown_rule_names(loaded))
            if loaded.langfuse is not None and loaded.langfuse.debug and not self.output.verbose:
                # LANGFUSE_DEBUG: the debug logs of --verbose (redacted, on stderr).
                from autoops_cli.logging_setup import configure_logging

                configure_logging(True)
            self._loaded[key] = loaded
        return self._loaded[key]

    def settings(
        self, *, flags: dict[str, tuple[Any, str]] | None = None
    ) -> tuple[LangfuseConfig, DataMaskingConfig]:
        """The validated settings, or ``ConfigurationError`` (exit 3) with every problem."""
        loaded = self.load_settings(flags=flags)
        for warning in loaded.warnings:
            self.output.warning(warning.line())
        return loaded.require()


def unknown_rule_names(loaded: LoadedSettings) -> list[SettingProblem]:
    """A rule naming an event type, severity or agent the toolkit does not know matches nothing."""
    if not loaded.sampling_rules:
        return []
    from autoops_cli.simulation.catalog import sampling_rule_names
    from config.settings_layers import SettingProblem

    known = sampling_rule_names()
    found = []
    for kind, name, _ in loaded.sampling_rules.items():
        if name not in known[kind]:
            setting = f"sampling.{kind}.{name}"
            found.append(
                SettingProblem(
                    setting,
                    loaded.origin_of(setting).describe(),
                    # An orchestrator of your own routes to agents of its own (agents_for):
                    # "matches nothing" was untrue for those, which the rule does sample.
                    f"no built-in agent {name!r}: the rule matches only an agent your own "
                    f"orchestrator routes to (built in: {', '.join(known[kind])})"
                    if kind == "agent"
                    else f"no known {kind.replace('_', ' ')} {name!r}: the rule matches nothing "
                    f"(known: {', '.join(known[kind])})",
                )
            )
    return found
