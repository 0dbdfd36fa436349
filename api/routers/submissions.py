"""``/v1/submissions``: hand an activity file to the pipeline, with a receipt; idempotent by content and key."""

from fastapi import APIRouter, Response, status

from api.deps import ActorDep, IdempotencyKeyDep, LibraryDep, SessionDep, SettingsDep, UploadDep
from api.schemas import Problem, Receipt, activity_lines_openapi
from api.services import submissions as service

router = APIRouter(prefix="/v1/submissions", tags=["submissions"])


@router.post("", response_model=Receipt, status_code=status.HTTP_201_CREATED, openapi_extra=activity_lines_openapi(),
             responses={200: {"model": Receipt, "description": "a replay: the first receipt, nothing stored"},
                        401: {"model": Problem}, 403: {"model": Problem},
                        409: {"model": Problem}, 413: {"model": Problem}, 415: {"model": Problem},
                        422: {"model": Problem}})
def submit(upload: UploadDep, session: SessionDep, settings: SettingsDep, library: LibraryDep, response: Response,
           actor: ActorDep, idempotency_key: IdempotencyKeyDep = None) -> Receipt:
    """Validate the whole file and who sends it; store it (201), or replay the first receipt (200)."""
    outcome = service.submit(session, settings=settings, actor=actor, filename=upload.filename, content=upload.content,
                             media_type=upload.media_type, idempotency_key=idempotency_key, library=library)
    receipt = Receipt.model_validate(outcome.receipt)
    response.headers["Location"] = f"{router.prefix}/{receipt.submission_id}"
    if not outcome.created:
        response.status_code = status.HTTP_200_OK
        response.headers["Idempotent-Replayed"] = "true"
    return receipt


@router.get("/{submission_id}", response_model=Receipt, responses={404: {"model": Problem}})
def get_submission(submission_id: str, session: SessionDep, actor: ActorDep) -> Receipt:
    """The receipt of an accepted submission (for an enterprise user: one of its own)."""
    return Receipt.model_validate(service.get_receipt(session, submission_id=submission_id, actor=actor))
