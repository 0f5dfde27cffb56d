"""One error type for every failed latchkey call, so callers branch on data, not on classes."""
from typing import Any, Dict, Optional


class LatchkeyError(Exception):
    """A latchkey call that failed.

    ``status`` is the HTTP status (0 when no response came: a network failure or a timeout),
    ``problem`` is latchkey's RFC 9457 document (or one of the same shape when there was none) and
    ``retry_after`` the seconds from ``Retry-After`` (None without one).
    """

    def __init__(self, status: int, problem: Dict[str, Any], retry_after: Optional[int] = None) -> None:
        title = str(problem.get("title", "Error"))
        detail = problem.get("detail")
        super().__init__(f"{title}: {detail}" if detail else title)
        self.status = status
        self.problem = problem
        self.retry_after = retry_after

    @property
    def unavailable(self) -> bool:
        """latchkey could not be reached, did not answer in time, or is temporarily unavailable (503)."""
        return self.status in (0, 503)


def synthetic_problem(status: int, title: str, detail: Optional[str] = None) -> Dict[str, Any]:
    """A problem for a failure that produced no problem document."""
    problem: Dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        problem["detail"] = detail
    return problem
