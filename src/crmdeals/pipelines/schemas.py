"""The one definition of a pipeline and of its stages.

A ``POST /v3/pipelines`` replaces the account's whole set, so there is no id batch: the
platform has no route to delete one pipeline.
"""

from typing import Annotated

import msgspec
from msgspec import Meta

from crmdeals.fields import IdInput, batch_of
from crmdeals.limits import MAX_PIPELINE_NAME_LENGTH, MAX_STAGES

PipelineName = Annotated[str, Meta(min_length=1, max_length=MAX_PIPELINE_NAME_LENGTH)]
"""The name of a pipeline or of a stage."""


class StageInput(msgspec.Struct):
    """One stage of a pipeline, as sent. Fields not listed here are ignored."""

    id: IdInput
    name: PipelineName


Stages = Annotated[list[StageInput], Meta(min_length=1, max_length=MAX_STAGES)]
"""``[]`` is refused (the platform's rule): a pipeline without stages sends ``null``."""


class PipelineInput(msgspec.Struct):
    """One pipeline of an upload, as sent. Fields not listed here are ignored."""

    id: IdInput
    name: PipelineName
    stages: Stages | None = None


PipelineBatch = batch_of(PipelineInput)
"""The body of ``POST /v3/pipelines``: the account's whole set."""


class Stage(msgspec.Struct):
    """A stage of a stored pipeline."""

    id: str
    name: str


class Pipeline(msgspec.Struct):
    """A stored pipeline, as ``GET /v3/pipelines`` lists it. ``stages`` is ``null``, not
    ``[]``, when there are none, so what ``GET`` returns posts back unchanged."""

    id: str
    name: str
    stages: list[Stage] | None
