"""Every external name of the queue: job names, job ids and the queue itself (arq, Redis).

A deployment's names live under its own namespace (`QueueNames`): deployments that share a
Redis database (two test sessions, a benchmark beside a server, a misconfigured second site)
then never run each other's jobs against the wrong store, nor refuse each other's job ids."""

from __future__ import annotations

from dataclasses import dataclass

PROJECT_JOB = "micdr.project"
RECONCILE_JOB = "micdr.reconcile"
REINDEX_JOB = "micdr.reindex"
PROCESS_JOB = "micdr.process_submission"
SUBMISSIONS_RECONCILE_JOB = "micdr.reconcile_submissions"
BULK_JOB = "micdr.bulk"
DELIVER_JOB = "micdr.deliver"
DELIVERY_TICK_JOB = "micdr.delivery_tick"


@dataclass(frozen=True)
class QueueNames:
    """The names of one deployment, identified by its store (`micdr:<database>`): every API and
    worker process of a deployment derives the same ones from the same settings."""

    namespace: str

    @classmethod
    def for_store(cls, database: str) -> QueueNames:
        return cls(f"micdr:{database}")

    @property
    def queue(self) -> str:
        """The arq queue (a Redis sorted set) this deployment's processes enqueue to and poll."""
        return f"{self.namespace}:queue"

    def cron(self, job: str) -> str:
        """A periodic job's name: arq derives the cron run's job id from it, so it must be the
        deployment's own or one deployment's reconciler would stand in for every other's."""
        return f"{self.namespace}:{job}"

    def running(self, job: str) -> str:
        """The lock a periodic job holds while it runs (`run_alone`)."""
        return f"{self.namespace}:running:{job}"

    def project_job_id(self, seq: int) -> str:
        """One job per commit: derived from the commit sequence, never from a resource id (a
        second update of the same resource within arq's keep_result window would otherwise be
        refused)."""
        return f"{self.namespace}:project:{seq}"

    def reindex_job_id(self, seq: int) -> str:
        """One reindex per commit that registered SearchParameters (its sequence, as above)."""
        return f"{self.namespace}:reindex:{seq}"

    @property
    def lost_index_job_id(self) -> str:
        """The rebuild of an index found empty while the store is not: one at a time, however
        many processes start and find it so (a reindex keeps no result, so a later loss queues
        it again)."""
        return f"{self.namespace}:reindex:lost"

    def submission_job_id(self, submission_id: str, attempt: int) -> str:
        """One job per delivery attempt of a submission: a retry or a re-enqueue after a lost
        lease gets a new id (arq refuses an id whose job still exists), a duplicate enqueue
        does not."""
        return f"{self.namespace}:submission:{submission_id}:{attempt}"

    def bulk_job_id(self, submission_id: str, attempt: int) -> str:
        """One job per delivery attempt of a bulk job (export, import), as for submissions."""
        return f"{self.namespace}:bulk:{submission_id}:{attempt}"
