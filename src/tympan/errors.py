"""tympan's exceptions: one tree, so callers can catch everything tympan raises.

    TympanError
    ├── StoreError                 the store cannot be used as asked
    │   ├── StoreURLError          TYMPAN_STORE / --store names no store we can open
    │   ├── StoreNotFoundError     no store exists at that location (and none was to be created)
    │   ├── StoreUnavailableError  the store exists but cannot be read or written right now
    │   ├── StoreCorruptError      the file or database is not a readable tympan store
    │   └── SchemaVersionError     the store's schema is older or newer than this tympan
    ├── NotFoundError              an id names nothing
    │   ├── RunNotFoundError       (also: an ambiguous run-id prefix)
    │   ├── StudyNotFoundError     no study of that name or id in the store
    │   └── ModelNotFoundError     no model, version or alias of that name in the registry
    ├── StudyError                 a study cannot be run or analysed as asked
    │   ├── StudyChangedError      the study file changed since its trials ran (see --force)
    │   └── StudyBusyError         another live runner is running the same study
    ├── ProtectedAliasError        a protected alias moved without an admin or a passed gate
    ├── LoopError                  a continuous-training step failed (e.g. a training)
    ├── RunStateError (RuntimeError)   e.g. logging after finish(), no active run
    ├── SettingsError (ValueError)     a TYMPAN_* environment variable has a bad value
    ├── MissingDependencyError (ImportError)  an optional extra is not installed
    └── InvalidInputError (ValueError) what the user logged is malformed
        ├── ConfigError (ValueError)       a config file or key=value override does not fit
        │   └── StudyFileError             a study file's mistakes, each with file:line
        ├── MetricKeyError (ValueError)
        ├── MetricValueError (TypeError)   non-numeric metric values
        ├── AudioError (ValueError)        wrong dtype/shape, non-finite samples, bad rate
        ├── ImageError (ValueError)        not an image, wrong shape, non-finite pixels
        └── TableError (ValueError)        ragged rows, unnamed columns, cells JSON cannot hold

Messages say what was wrong and what to do; the CLI prints them as one line.
"""

from __future__ import annotations


class TympanError(Exception):
    """Base class of every error tympan raises on purpose."""


class StoreError(TympanError):
    """The store cannot be used as asked."""


class StoreURLError(StoreError):
    """The store location is malformed or of an unsupported kind."""


class StoreNotFoundError(StoreError):
    """No store exists at the location, and the caller did not ask to create one."""


class StoreUnavailableError(StoreError):
    """The store exists but cannot be reached, read or written at the moment."""


class StoreCorruptError(StoreError):
    """The location holds something that is not a readable tympan store."""


class SchemaVersionError(StoreError):
    """The store's schema revision does not match this version of tympan."""


class NotFoundError(TympanError):
    """An identifier names nothing in the store."""


class RunNotFoundError(NotFoundError):
    """A run id (or id prefix) matches no run, or more than one."""


class StudyNotFoundError(NotFoundError):
    """No study of that name or id is in the store."""


class ModelNotFoundError(NotFoundError):
    """No registered model, version or alias matches the reference."""


class ProtectedAliasError(TympanError):
    """A protected alias (e.g. ``champion``) may be changed only by an admin or by a gate
    that passed; the message says which of the two to use."""


class StudyError(TympanError):
    """A study cannot be run or analysed as asked."""


class StudyChangedError(StudyError):
    """The study file differs from the one its stored trials ran under."""


class StudyBusyError(StudyError):
    """Another live runner process is running this study."""


class RunStateError(TympanError, RuntimeError):
    """The operation is not valid in the run's current state."""


class SettingsError(TympanError, ValueError):
    """A TYMPAN_* setting has a value tympan cannot use."""


class MissingDependencyError(TympanError, ImportError):
    """A feature needs an optional dependency that is not installed; says which extra."""


class InvalidInputError(TympanError, ValueError):
    """Something the user passed to tympan is malformed."""


class ConfigError(InvalidInputError):
    """A config file or ``key=value`` override that does not fit the config's dataclass."""


class StudyFileError(ConfigError):
    """A study file does not fit the schema; the message lists every mistake with its line."""


class MetricKeyError(InvalidInputError):
    """A metric, sample or artifact key is empty, too long or has odd characters."""


class MetricValueError(TympanError, TypeError):
    """A metric value is not a number."""


class AudioError(InvalidInputError):
    """Audio with the wrong dtype or shape, non-finite samples or a bad sample rate."""


class ImageError(InvalidInputError):
    """An image of an unknown type, the wrong shape or dtype, or with non-finite pixels."""


class TableError(InvalidInputError):
    """A table with ragged rows, missing or repeated column names, or cells JSON cannot hold."""


class LoopError(TympanError):
    """A continuous-training step could not run: a training failed, the champion is unset."""
