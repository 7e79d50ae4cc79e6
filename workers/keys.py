"""Every external name of the queue: job names and job ids (arq, Redis)."""

PROJECT_JOB = "micdr.project"
RECONCILE_JOB = "micdr.reconcile"


def project_job_id(seq: int) -> str:
    """One job per commit: derived from the commit sequence, never from a resource id (a second
    update of the same resource within arq's keep_result window would otherwise be refused)."""
    return f"project:{seq}"
