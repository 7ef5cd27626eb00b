"""KnowMix core: datasets, model backends, the SliCK probe, the project store and the CLI.

Importing this package is cheap and side-effect free except for one thing: it switches the
Hugging Face libraries to offline mode before anything can import them. It never imports Qt,
torch or llama_cpp; backends import those when they are first used.
"""

from .offline import enforce_offline

enforce_offline()

__version__ = "0.1.0"

from .errors import Cancelled, DatasetError, KnowMixError, ModelError, ProjectError, SettingsError  # noqa: E402

__all__ = [
    "__version__",
    "Cancelled",
    "DatasetError",
    "KnowMixError",
    "ModelError",
    "ProjectError",
    "SettingsError",
]
