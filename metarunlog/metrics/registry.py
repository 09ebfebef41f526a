"""The readers mrl knows, in the order their values are merged (a later summary wins per key).

A new reader is one module defining a `Reader` subclass and calling `register` on it, plus
its import in `metarunlog/metrics/__init__.py` (or any import before the table is read:
a test registers a fake one from its own module).
"""

from __future__ import annotations

from metarunlog import plugins
from metarunlog.metrics.base import Reader, Settings

_READERS: dict[str, type[Reader]] = {}


def register(cls: type[Reader]) -> type[Reader]:
    """Add a reader class (usable as a class decorator); a new one with a known name replaces it."""
    if not (isinstance(cls, type) and issubclass(cls, Reader)):
        raise TypeError(f"register takes a metarunlog.metrics.Reader subclass, not {type(cls).__name__}")
    if not cls.name:
        raise ValueError(f"{cls.__name__}.name must be set to register it")
    globs = cls.globs
    if isinstance(globs, str) or (isinstance(globs, (tuple, list)) and not all(isinstance(g, str) for g in globs)):
        # a str would be taken as its letters: a reader matching no file, and nothing saying why
        raise ValueError(f'{cls.__name__}.globs must be a tuple of glob strings (("metrics.xyz",)), not {globs!r}')
    _READERS[cls.name] = cls
    return cls


def unregister(name: str) -> None:
    _READERS.pop(name, None)


def names() -> list[str]:
    return list(_READERS)


def readers(settings: Settings) -> list[Reader]:
    """An instance of every registered reader not turned off and active with `settings`
    (a reader from outside mrl that raises here is one error naming it: plugins.blamed)."""
    plugins.load_deferred()
    out = []
    for name, cls in _READERS.items():
        if name not in settings.off:
            with plugins.blamed(f"metrics reader {name!r}", cls):
                reader = cls(settings)
                if reader.active():
                    reader.looks_for()  # what the Finder asks next: fail here, named
                    out.append(reader)
    return out
