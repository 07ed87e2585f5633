"""Where a request body becomes normalised pipelines: the pipeline's part of
``crmdeals.batch``. The types say every rule; this adds the normal form."""

from operator import attrgetter

from crmdeals import batch
from crmdeals.batch import Problems, last_wins
from crmdeals.errors import InvalidPipelinesData
from crmdeals.fields import IdInput, id_text
from crmdeals.pipelines.schemas import Pipeline, PipelineInput, Stage, StageInput


def _stage(stage: StageInput) -> Stage:
    return Stage(id=id_text(stage.id), name=stage.name)


def _normalise(pipeline: PipelineInput) -> Pipeline:
    stages = pipeline.stages
    return Pipeline(
        id=id_text(pipeline.id),
        name=pipeline.name,
        stages=None if stages is None else last_wins(map(_stage, stages), attrgetter("id")),
    )


PIPELINES = batch.Entity(
    name="pipeline",
    plural="pipelines",
    item_type=PipelineInput,
    id_type=IdInput,
    normalise=_normalise,
    key=attrgetter("id"),
    invalid=InvalidPipelinesData,
)


def parse_pipeline_batch(body: bytes) -> list[Pipeline]:
    """The pipelines of a ``POST /v3/pipelines`` body, normalised, one per id and each
    stage once per id: the last content wins, at the first one's place.

    Raises ``InvalidJson``, ``InvalidRequest``, ``TooManyEntities`` or
    ``InvalidPipelinesData`` (which lists every invalid item, nested fields by path:
    ``stages[1].name``).
    """
    return batch.parse_batch(body, PIPELINES)


def check_pipeline(item: object) -> Pipeline | Problems:
    """One pipeline as a client would send it, checked by the same rules as an upload: the
    normalised pipeline, or its problems by field path."""
    return batch.check_item(item, PIPELINES)
