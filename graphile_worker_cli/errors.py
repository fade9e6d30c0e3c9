"""gw's exceptions: one root class, each subclass with the exit code the CLI uses for it.

Driver errors are translated into these at the boundary (see ``db``), so callers never
have to know asyncpg's exception tree to tell a user what went wrong.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_SCHEMA_TOO_NEW = 57


class GraphileWorkerError(Exception):
    """Something went wrong in gw."""

    exit_code: int = EXIT_FAILURE

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or type(self).__name__).strip())

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class BadInputError(GraphileWorkerError):
    """The input given to gw is not valid."""

    exit_code = EXIT_USAGE


class ConfigError(BadInputError):
    """The configuration is not valid."""


class DatabaseConnectError(GraphileWorkerError):
    """Could not connect to the database."""


class DatabaseError(GraphileWorkerError):
    """The database reported an error."""


class MigrationError(GraphileWorkerError):
    """The database schema could not be migrated."""


class SchemaTooNewError(MigrationError):
    """The database schema was migrated by a newer release than this one knows."""

    exit_code = EXIT_SCHEMA_TOO_NEW


class UnsupportedServerError(MigrationError):
    """The PostgreSQL server is too old (12 or newer is required)."""


class EmbeddedDatabaseError(GraphileWorkerError):
    """The embedded PostgreSQL server could not be started."""


class EmbeddedExtraMissingError(EmbeddedDatabaseError):
    """No database is configured and the embedded server's extra is not installed: a
    configuration problem that a restart cannot fix."""

    exit_code = EXIT_USAGE


class TaskLoadError(BadInputError):
    """A task could not be loaded."""


class CrontabError(BadInputError):
    """A crontab is not valid."""


class JobNotFoundError(GraphileWorkerError):
    """No such job."""


class JobKeyRaceError(DatabaseError):
    """add_job with a job key returned no row: another transaction changed that key at the
    same moment. Retrying the call is safe."""


class PluginLoadError(BadInputError):
    """A hook plugin named in the configuration could not be loaded."""


class JobScheduleFailedError(GraphileWorkerError):
    """A BeforeJobSchedule hook refused to add the job."""


class JobScheduleSkippedError(GraphileWorkerError):
    """A BeforeJobSchedule hook skipped the job: nothing was added."""


class JobLockLostError(GraphileWorkerError):
    """``ctx.transaction()`` could not complete the job: this worker no longer holds it
    (its lock was taken away: swept, unlocked or settled meanwhile), or the run is no
    longer the job's to complete (it timed out, or was handed back at shutdown, while a
    sync task's thread ran on). The transaction was rolled back, so none of its writes
    happened."""
