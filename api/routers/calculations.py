"""``POST /v1/calculations``: the ``carbon calculate`` of the API; computes, stores nothing."""

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from accounting.activity import SourceFile
from api.deps import LibraryDep, OptionsDep, SettingsDep, UploadDep
from api.schemas import Problem, activity_lines_openapi
from pipelines.warehouse import calculate_sources

router = APIRouter(prefix="/v1/calculations", tags=["calculations"])


@router.post("", openapi_extra=activity_lines_openapi(),
             responses={200: {"description": "the results document of `carbon calculate`"},
                        413: {"model": Problem}, 415: {"model": Problem}, 422: {"model": Problem}})
def calculate(upload: UploadDep, options: OptionsDep, library: LibraryDep, settings: SettingsDep) -> JSONResponse:
    """Validate and calculate one activity file exactly as ``carbon calculate`` does, and return its document."""
    document: dict[str, Any] = calculate_sources([SourceFile(upload.filename, upload.content)],
                                                 library=library, options=options,
                                                 max_rows=settings.max_rows_per_file)
    return JSONResponse(document)
