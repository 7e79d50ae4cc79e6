"""Every external name of the queue: job names and job ids (arq, Redis)."""

PROJECT_JOB = "micdr.project"
RECONCILE_JOB = "micdr.reconcile"
REINDEX_JOB = "micdr.reindex"


def project_job_id(seq: int) -> str:
    """One job per commit: derived from the commit sequence, never from a resource id (a second
    update of the same resource within arq's keep_result window would otherwise be refused)."""
    return f"project:{seq}"


def reindex_job_id(seq: int) -> str:
    """One reindex per commit that registered SearchParameters (its sequence, as above)."""
    return f"reindex:{seq}"


# The rebuild of an index found empty while the store is not: one at a time, however many
# processes start and find it so (a reindex keeps no result, so a later loss queues it again).
LOST_INDEX_JOB_ID = "reindex:lost"


PROCESS_JOB = "micdr.process_submission"
SUBMISSIONS_RECONCILE_JOB = "micdr.reconcile_submissions"


def submission_job_id(submission_id: str, attempt: int) -> str:
    """One job per delivery attempt of a submission: a retry or a re-enqueue after a lost lease
    gets a new id (arq refuses an id whose job still exists), a duplicate enqueue does not."""
    return f"submission:{submission_id}:{attempt}"


EXPORT_JOB = "micdr.export"


def export_job_id(submission_id: str, attempt: int) -> str:
    """One job per delivery attempt of an export, as for submissions."""
    return f"export:{submission_id}:{attempt}"
