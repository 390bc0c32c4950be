"""A project's configuration: ``indexer.yaml`` loaded into checked, frozen dataclasses.

INTERNAL: this package is the framework's own; its names may change in any
release.  Users load a project with :func:`indexer.load_config`, which
returns an :class:`indexer.ProjectConfig`.

Modules: ``_project`` (the dataclasses and ``load_config``), ``_validate``
(turning YAML and ABI JSON values into checked ones, with messages that
name the file and the key path).
"""

from ._project import ChainConfig as ChainConfig
from ._project import ContractConfig as ContractConfig
from ._project import FactoryConfig as FactoryConfig
from ._project import ProjectConfig as ProjectConfig
from ._project import SourceConfig as SourceConfig
from ._project import load_config as load_config

__all__ = [
    "ChainConfig",
    "ContractConfig",
    "FactoryConfig",
    "ProjectConfig",
    "SourceConfig",
    "load_config",
]
