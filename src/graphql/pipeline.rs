//! `Pipeline` and `Stage` types, their queries and mutations.

use crate::graphql::time::DateTime;
use async_graphql::{Context, ID, InputObject, Object, Result};
use entity::{pipeline, stage};

use super::columns::Fields;
use super::guard::Need;
use super::{app, rc};
use crate::ids::Kind;
use crate::service::{self};

/// A sales pipeline.
pub struct Pipeline(pub pipeline::Model);

/// The columns each field of `Pipeline` shows.
pub const PIPELINE_COLUMNS: Fields<pipeline::Column> = {
    use pipeline::Column as C;
    &[
        ("id", &[]),
        ("name", &[C::Name]),
        ("stages", &[]),
        ("createdAt", &[C::CreatedAt]),
        ("updatedAt", &[C::UpdatedAt]),
    ]
};

#[Object]
impl Pipeline {
    /// Opaque ID.
    pub async fn id(&self, ctx: &Context<'_>) -> Result<ID> {
        super::encode(ctx, Kind::Pipeline, self.0.id)
    }
    /// Name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Stages in order.
    async fn stages(&self, ctx: &Context<'_>) -> Result<Vec<Stage>> {
        let stages = super::loaders(ctx)?
            .pipeline_stages
            .load_one(self.0.id)
            .await?
            .unwrap_or_default();
        Ok(stages.into_iter().map(Stage).collect())
    }
    /// Creation time.
    async fn created_at(&self) -> DateTime {
        self.0.created_at.into()
    }
    /// Last change.
    async fn updated_at(&self) -> DateTime {
        self.0.updated_at.into()
    }
}

/// A stage of a pipeline.
pub struct Stage(pub stage::Model);

/// The columns each field of `Stage` shows.
pub const STAGE_COLUMNS: Fields<stage::Column> = {
    use stage::Column as C;
    &[
        ("id", &[]),
        ("name", &[C::Name]),
        ("position", &[C::Position]),
        ("pipelineId", &[C::PipelineId]),
        ("pipeline", &[C::PipelineId]),
    ]
};

#[Object]
impl Stage {
    /// Opaque ID.
    pub async fn id(&self, ctx: &Context<'_>) -> Result<ID> {
        super::encode(ctx, Kind::Stage, self.0.id)
    }
    /// Name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// 0-based position within the pipeline.
    async fn position(&self) -> i32 {
        self.0.position
    }
    /// The pipeline's ID.
    async fn pipeline_id(&self, ctx: &Context<'_>) -> Result<ID> {
        super::encode(ctx, Kind::Pipeline, self.0.pipeline_id)
    }
    /// The pipeline.
    async fn pipeline(&self, ctx: &Context<'_>) -> Result<Option<Pipeline>> {
        Ok(super::loaders(ctx)?
            .pipelines
            .load_one(self.0.pipeline_id)
            .await?
            .map(Pipeline))
    }
}

/// Input of `createPipeline`.
#[derive(InputObject)]
pub struct CreatePipelineInput {
    /// Name (1 to 100 characters).
    pub name: String,
    /// Stage names in order (up to 50).
    #[graphql(default)]
    pub stages: Vec<String>,
}

/// Input of `updatePipeline`.
#[derive(InputObject, Default)]
pub struct UpdatePipelineInput {
    /// New name.
    pub name: Option<String>,
}

/// Input of `createStage`.
#[derive(InputObject)]
pub struct CreateStageInput {
    /// The pipeline.
    pub pipeline_id: ID,
    /// Name (1 to 100 characters).
    pub name: String,
    /// 0-based position; appended when omitted.
    pub position: Option<i64>,
}

/// Input of `updateStage`.
#[derive(InputObject, Default)]
pub struct UpdateStageInput {
    /// New name.
    pub name: Option<String>,
    /// New 0-based position; the other stages shift.
    pub position: Option<i64>,
}

/// Pipeline queries.
#[derive(Default)]
pub struct PipelineQuery;

#[Object]
impl PipelineQuery {
    /// A pipeline of the caller's tenant and environment; `NOT_FOUND` otherwise.
    #[graphql(guard = "Need::Auth")]
    async fn pipeline(&self, ctx: &Context<'_>, id: ID) -> Result<Pipeline> {
        let id = super::decode_arg(ctx, Kind::Pipeline, &id)?;
        Ok(Pipeline(
            service::pipeline::get(app(ctx)?, rc(ctx)?, id).await?,
        ))
    }

    /// The caller's pipelines, oldest first.
    #[graphql(guard = "Need::Auth")]
    async fn pipelines(&self, ctx: &Context<'_>) -> Result<Vec<Pipeline>> {
        let list = service::pipeline::list(app(ctx)?, rc(ctx)?).await?;
        if ctx.look_ahead().field("stages").exists() {
            super::loaders(ctx)?
                .pipeline_stages
                .load_many(list.iter().map(|p| p.id))
                .await?;
        }
        Ok(list.into_iter().map(Pipeline).collect())
    }
}

/// Pipeline and stage mutations.
#[derive(Default)]
pub struct PipelineMutation;

#[Object]
impl PipelineMutation {
    /// Creates a pipeline with its stages.
    #[graphql(guard = "Need::Write")]
    async fn create_pipeline(
        &self,
        ctx: &Context<'_>,
        input: CreatePipelineInput,
    ) -> Result<Pipeline> {
        let (p, _) =
            service::pipeline::create(app(ctx)?, rc(ctx)?, input.name, input.stages).await?;
        Ok(Pipeline(p))
    }

    /// Renames a pipeline.
    #[graphql(guard = "Need::Write")]
    async fn update_pipeline(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdatePipelineInput,
    ) -> Result<Pipeline> {
        let id = super::decode_arg(ctx, Kind::Pipeline, &id)?;
        Ok(Pipeline(
            service::pipeline::update(app(ctx)?, rc(ctx)?, id, input.name).await?,
        ))
    }

    /// Deletes a pipeline and its stages; refused (`CONFLICT`) while leads are in it.
    #[graphql(guard = "Need::Write")]
    async fn delete_pipeline(&self, ctx: &Context<'_>, id: ID) -> Result<ID> {
        let pid = super::decode_arg(ctx, Kind::Pipeline, &id)?;
        service::pipeline::delete(app(ctx)?, rc(ctx)?, pid).await?;
        Ok(id)
    }

    /// Adds a stage to a pipeline.
    #[graphql(guard = "Need::Write")]
    async fn create_stage(&self, ctx: &Context<'_>, input: CreateStageInput) -> Result<Stage> {
        let pipeline = app(ctx)?
            .ids
            .decode(Kind::Pipeline, input.pipeline_id.as_str())
            .ok_or(());
        Ok(Stage(
            service::pipeline::create_stage(
                app(ctx)?,
                rc(ctx)?,
                pipeline,
                input.name,
                input.position,
            )
            .await?,
        ))
    }

    /// Renames and/or moves a stage.
    #[graphql(guard = "Need::Write")]
    async fn update_stage(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateStageInput,
    ) -> Result<Stage> {
        let id = super::decode_arg(ctx, Kind::Stage, &id)?;
        Ok(Stage(
            service::pipeline::update_stage(app(ctx)?, rc(ctx)?, id, input.name, input.position)
                .await?,
        ))
    }

    /// Deletes a stage; refused (`CONFLICT`) while leads are in it.
    #[graphql(guard = "Need::Write")]
    async fn delete_stage(&self, ctx: &Context<'_>, id: ID) -> Result<ID> {
        let sid = super::decode_arg(ctx, Kind::Stage, &id)?;
        service::pipeline::delete_stage(app(ctx)?, rc(ctx)?, sid).await?;
        Ok(id)
    }

    /// Sets the order of a pipeline's stages: list each stage once.
    #[graphql(guard = "Need::Write")]
    async fn reorder_stages(
        &self,
        ctx: &Context<'_>,
        pipeline_id: ID,
        stage_ids: Vec<ID>,
    ) -> Result<Pipeline> {
        let pid = super::decode_arg(ctx, Kind::Pipeline, &pipeline_id)?;
        let ids = &app(ctx)?.ids;
        let order = stage_ids
            .iter()
            .map(|s| ids.decode(Kind::Stage, s.as_str()).ok_or(()))
            .collect();
        service::pipeline::reorder_stages(app(ctx)?, rc(ctx)?, pid, order).await?;
        Ok(Pipeline(
            service::pipeline::get(app(ctx)?, rc(ctx)?, pid).await?,
        ))
    }
}
