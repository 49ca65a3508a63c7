"""rnnbench's Hydra launchers: hydra-submitit-launcher's and hydra-ray-launcher's, whose failed jobs fail for the
scheduler while the sweep still ends with every job accounted for (rnnbench.training.scheduled).

Hydra only instantiates plugins from the `hydra_plugins` namespace package, so they live here; each module defines
its classes and config schemas only where its plugin (an optional extra of rnnbench) is installed, and imports the
scheduler itself (submitit, ray) only when a sweep is launched, so plugin discovery stays quick.
"""

from typing import Any

from hydra.core.config_search_path import ConfigSearchPath
from hydra.core.config_store import ConfigStore
from hydra.plugins.search_path_plugin import SearchPathPlugin

TAKEN_OVER: dict[tuple[str, str], tuple[str, Any]] = {}  # (group, plugin's option) -> (our schema's name, schema)


def take_over(group: str, name: str, schema: Any, base: str) -> None:
    """Have conf/<group>/<name>.yaml (rnnbench's defaults on `schema`, stored as `group/base`) replace the plugin's
    own structured config `group/name`: Hydra would otherwise merge the two (automatic schema matching, deprecated
    since Hydra 1.1), and the plugin's schema refuses rnnbench's keys. Done by `TakeOver`, after plugin discovery."""
    TAKEN_OVER[(group, name)] = (base, schema)


class TakeOver(SearchPathPlugin):
    """Applies `take_over`. Hydra's discovery executes every plugin module, the plugins' config modules included,
    in search-path order, so a store made on import may be overwritten afterwards; search-path plugins run once
    discovery is done and before any config is composed (and the stores travel to submitit's and Ray's workers
    with Hydra's singletons)."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        """Store our schemas and drop the plugin options they replace; the search path itself is left as it is."""
        store = ConfigStore.instance()
        for (group, name), (base, schema) in TAKEN_OVER.items():
            store.store(group=group, name=base, node=schema, provider="rnnbench")
            node = store.repo
            for part in group.split("/"):
                node = node.get(part, {})
            node.pop(f"{name}.yaml", None)
