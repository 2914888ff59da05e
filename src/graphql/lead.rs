//! The `Lead` type, `lead`/`leads` queries and lead mutations.

use crate::graphql::time::DateTime;

use async_graphql::{
    ComplexObject, Context, Enum, ID, InputObject, Json, Lookahead, MaybeUndefined, Object, Result,
    SimpleObject,
};
use entity::enums::{Channel, LeadStatus};
use entity::{lead, pipeline, source, stage, user};
use sea_orm::Condition;

use super::columns::{Fields, selected};
use super::guard::Need;
use super::pipeline::{Pipeline, Stage};
use super::source::Source;
use super::user::User;
use super::{app, rc};
use crate::error::AppError;
use crate::ids::Kind;
use crate::service::lead::listing;
use crate::service::lead::{Change, IdRef, LeadFilter, LeadInput, LeadRow, Order, SortField};
use crate::service::page::{Page, PageArgs, encode_cursor};
use crate::service::{self};

/// A lead.
pub struct Lead {
    /// The row (in a page, only the columns its selected fields show).
    pub row: lead::Model,
    /// Tags when already known (mutations), else loaded.
    pub tags: Option<Vec<String>>,
    /// Related rows read with its page (boxed: most leads have none).
    pub joined: Option<Box<Joined>>,
}

/// A lead's related rows read with its page (`None`: the loaders serve them). Partial rows:
/// each shows only through the fields the page selected, so they stay out of the loaders'
/// caches, which other paths of the document share.
pub struct Joined {
    source: listing::Joined<source::Model>,
    pipeline: listing::Joined<pipeline::Model>,
    stage: listing::Joined<stage::Model>,
    assignee: listing::Joined<user::Model>,
}

impl From<LeadRow> for Lead {
    fn from(r: LeadRow) -> Self {
        Lead {
            row: r.lead,
            tags: Some(r.tags),
            joined: None,
        }
    }
}

impl From<lead::Model> for Lead {
    fn from(row: lead::Model) -> Self {
        Lead {
            row,
            tags: None,
            joined: None,
        }
    }
}

fn opt_id(ctx: &Context<'_>, kind: Kind, id: Option<i64>) -> Result<Option<ID>> {
    id.map(|id| super::encode(ctx, kind, id)).transpose()
}

/// The columns each field of `Lead` shows.
pub const COLUMNS: Fields<lead::Column> = {
    use lead::Column as C;
    &[
        ("id", &[]),
        ("tenantId", &[C::TenantId]),
        ("email", &[C::Email]),
        ("firstName", &[C::FirstName]),
        ("lastName", &[C::LastName]),
        ("phone", &[C::Phone]),
        ("channel", &[C::Source]),
        ("sourceId", &[C::SourceId]),
        ("source", &[C::SourceId]),
        ("pipelineId", &[C::PipelineId]),
        ("pipeline", &[C::PipelineId]),
        ("stageId", &[C::StageId]),
        ("stage", &[C::StageId]),
        ("status", &[C::Status]),
        ("score", &[C::Score]),
        ("assignedToId", &[C::AssignedTo]),
        ("assignedTo", &[C::AssignedTo]),
        ("customFields", &[C::CustomFields]),
        ("tags", &[]),
        ("duplicateOfId", &[C::DuplicateOf]),
        ("importId", &[C::ImportId]),
        ("duplicateOf", &[C::DuplicateOf]),
        ("createdAt", &[C::CreatedAt]),
        ("updatedAt", &[C::UpdatedAt]),
    ]
};

#[Object]
impl Lead {
    /// Opaque ID.
    pub async fn id(&self, ctx: &Context<'_>) -> Result<ID> {
        super::encode(ctx, Kind::Lead, self.row.id)
    }
    /// The lead's tenant (opaque ID).
    async fn tenant_id(&self, ctx: &Context<'_>) -> Result<ID> {
        super::encode(ctx, Kind::Tenant, self.row.tenant_id)
    }
    /// Contact email.
    async fn email(&self) -> &str {
        &self.row.email
    }
    /// First name.
    async fn first_name(&self) -> &str {
        &self.row.first_name
    }
    /// Last name.
    async fn last_name(&self) -> &str {
        &self.row.last_name
    }
    /// Phone with country code, as given.
    async fn phone(&self) -> Option<&str> {
        self.row.phone.as_deref()
    }
    /// The channel the lead came through (REST calls it `source`).
    async fn channel(&self) -> Option<Channel> {
        self.row.source
    }
    /// The source's ID.
    async fn source_id(&self, ctx: &Context<'_>) -> Result<Option<ID>> {
        opt_id(ctx, Kind::Source, self.row.source_id)
    }
    /// The lead source.
    async fn source(&self, ctx: &Context<'_>) -> Result<Option<Source>> {
        if let Some(s) = self.joined.as_ref().and_then(|j| j.source.as_ref()) {
            return Ok(s.clone().map(Source));
        }
        let Some(id) = self.row.source_id else {
            return Ok(None);
        };
        Ok(super::loaders(ctx)?.sources.load_one(id).await?.map(Source))
    }
    /// The pipeline's ID.
    async fn pipeline_id(&self, ctx: &Context<'_>) -> Result<Option<ID>> {
        opt_id(ctx, Kind::Pipeline, self.row.pipeline_id)
    }
    /// The pipeline.
    async fn pipeline(&self, ctx: &Context<'_>) -> Result<Option<Pipeline>> {
        if let Some(p) = self.joined.as_ref().and_then(|j| j.pipeline.as_ref()) {
            return Ok(p.clone().map(Pipeline));
        }
        let Some(id) = self.row.pipeline_id else {
            return Ok(None);
        };
        Ok(super::loaders(ctx)?
            .pipelines
            .load_one(id)
            .await?
            .map(Pipeline))
    }
    /// The stage's ID.
    async fn stage_id(&self, ctx: &Context<'_>) -> Result<Option<ID>> {
        opt_id(ctx, Kind::Stage, self.row.stage_id)
    }
    /// The pipeline stage.
    async fn stage(&self, ctx: &Context<'_>) -> Result<Option<Stage>> {
        if let Some(s) = self.joined.as_ref().and_then(|j| j.stage.as_ref()) {
            return Ok(s.clone().map(Stage));
        }
        let Some(id) = self.row.stage_id else {
            return Ok(None);
        };
        Ok(super::loaders(ctx)?.stages.load_one(id).await?.map(Stage))
    }
    /// Qualification status.
    async fn status(&self) -> LeadStatus {
        self.row.status
    }
    /// Score 0–100.
    async fn score(&self) -> i32 {
        self.row.score
    }
    /// The assigned user's ID.
    async fn assigned_to_id(&self, ctx: &Context<'_>) -> Result<Option<ID>> {
        opt_id(ctx, Kind::User, self.row.assigned_to)
    }
    /// The assigned user.
    async fn assigned_to(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        if let Some(u) = self.joined.as_ref().and_then(|j| j.assignee.as_ref()) {
            return Ok(u.clone().map(User));
        }
        let Some(id) = self.row.assigned_to else {
            return Ok(None);
        };
        Ok(super::loaders(ctx)?.users.load_one(id).await?.map(User))
    }
    /// Custom fields: a JSON object of scalars.
    async fn custom_fields(&self) -> Json<serde_json::Value> {
        Json(self.row.custom_fields.clone())
    }
    /// Tags, sorted.
    async fn tags(&self, ctx: &Context<'_>) -> Result<Vec<String>> {
        if let Some(tags) = &self.tags {
            return Ok(tags.clone());
        }
        Ok(super::loaders(ctx)?
            .tags
            .load_one(self.row.id)
            .await?
            .unwrap_or_default())
    }
    /// The ID of the earliest lead with the same email or phone, once detection has run.
    async fn duplicate_of_id(&self, ctx: &Context<'_>) -> Result<Option<ID>> {
        opt_id(ctx, Kind::Lead, self.row.duplicate_of)
    }
    /// The import job that created it, if one did.
    async fn import_id(&self, ctx: &Context<'_>) -> Result<Option<ID>> {
        opt_id(ctx, Kind::ImportJob, self.row.import_id)
    }
    /// The earliest lead with the same email or phone, once detection has run.
    async fn duplicate_of(&self, ctx: &Context<'_>) -> Result<Option<Lead>> {
        let Some(id) = self.row.duplicate_of else {
            return Ok(None);
        };
        Ok(super::loaders(ctx)?
            .leads
            .load_one(id)
            .await?
            .map(Lead::from))
    }
    /// Creation time.
    async fn created_at(&self) -> DateTime {
        self.row.created_at.into()
    }
    /// Last change.
    async fn updated_at(&self) -> DateTime {
        self.row.updated_at.into()
    }
}

/// Relay page information.
#[derive(SimpleObject)]
pub struct PageInfo {
    /// More items follow.
    pub has_next_page: bool,
    /// More items precede.
    pub has_previous_page: bool,
    /// Cursor of the first edge.
    pub start_cursor: Option<String>,
    /// Cursor of the last edge.
    pub end_cursor: Option<String>,
}

impl PageInfo {
    /// Page information from a page's neighbour flags and its first and last edges' cursors.
    pub fn new(
        has_next: bool,
        has_previous: bool,
        start: Option<String>,
        end: Option<String>,
    ) -> Self {
        PageInfo {
            has_next_page: has_next,
            has_previous_page: has_previous,
            start_cursor: start,
            end_cursor: end,
        }
    }
}

/// An edge of a lead list.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct LeadEdge {
    /// The lead.
    pub node: Lead,
    #[graphql(skip)]
    pub order: Order,
}

#[ComplexObject]
impl LeadEdge {
    /// Opaque cursor for `after`/`before`.
    // Encoded when selected: lists usually are read without their edges' cursors.
    async fn cursor(&self, ctx: &Context<'_>) -> Result<String> {
        Ok(cursor_of(&app(ctx)?.ids, self.order, &self.node.row))
    }
}

fn cursor_of(ids: &crate::ids::Ids, order: Order, l: &lead::Model) -> String {
    encode_cursor(
        ids,
        Kind::Lead,
        &order.cursor_name(),
        &order.field.value_of(l),
        l.id,
    )
}

/// A page of leads.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct LeadConnection {
    /// The leads with their cursors.
    pub edges: Vec<LeadEdge>,
    /// Paging.
    pub page_info: PageInfo,
    #[graphql(skip)]
    pub condition: Condition,
}

#[ComplexObject]
impl LeadConnection {
    /// Leads matching the filter (counted only when asked for).
    async fn total_count(&self, ctx: &Context<'_>) -> Result<i64> {
        Ok(service::lead::count(&app(ctx)?.db, self.condition.clone()).await? as i64)
    }
}

fn distinct(ids: impl Iterator<Item = Option<i64>>) -> Vec<i64> {
    let mut v: Vec<i64> = ids.flatten().collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// A page's leads with the rows read with them attached.
fn attach(page: Page<listing::Listed>) -> Page<Lead> {
    let items = page
        .items
        .into_iter()
        .map(|x| Lead {
            row: x.lead,
            tags: x.tags,
            joined: Some(Box::new(Joined {
                source: x.source,
                pipeline: x.pipeline,
                stage: x.stage,
                assignee: x.assignee,
            })),
        })
        .collect();
    Page {
        items,
        has_next: page.has_next,
        has_previous: page.has_previous,
    }
}

/// A relation's rows read with the page, or `None` if the loaders serve it. A page reads a
/// relation for all its leads or for none.
fn read_with<'a, M>(
    page: &'a [Lead],
    of: impl Fn(&'a Joined) -> &'a listing::Joined<M>,
) -> Option<Vec<&'a M>> {
    of(page.first()?.joined.as_deref()?).as_ref()?;
    Some(
        page.iter()
            .filter_map(|l| of(l.joined.as_deref()?).as_ref()?.as_ref())
            .collect(),
    )
}

/// Loads the relations selected under a list of leads (`node`) that were not read with it, one
/// statement per relation, so items resolve from the loaders' caches however long the page is.
pub async fn prime(ctx: &Context<'_>, node: Lookahead<'_>, page: &[Lead]) -> Result<()> {
    let leads: Vec<&lead::Model> = page.iter().map(|l| &l.row).collect();
    let l = &*super::loaders(ctx)?;
    let sources = async {
        let sel = node.field("source");
        if sel.exists() {
            let found = match read_with(page, |j| &j.source) {
                Some(rows) => distinct(rows.iter().map(|s| Some(s.id))),
                None => l
                    .sources
                    .load_many(distinct(leads.iter().map(|x| x.source_id)))
                    .await?
                    .into_keys()
                    .collect(),
            };
            if sel.field("leadCount").exists() {
                l.source_lead_counts.load_many(found).await?;
            }
        }
        Ok::<_, async_graphql::Error>(())
    };
    let stages_of = |pipeline_ids: Vec<i64>, sel: Lookahead<'_>| {
        let want = sel.field("stages").exists();
        async move {
            if want {
                l.pipeline_stages.load_many(pipeline_ids).await?;
            }
            Ok::<_, async_graphql::Error>(())
        }
    };
    let pipelines = async {
        let sel = node.field("pipeline");
        if sel.exists() {
            let found = match read_with(page, |j| &j.pipeline) {
                Some(rows) => distinct(rows.iter().map(|p| Some(p.id))),
                None => l
                    .pipelines
                    .load_many(distinct(leads.iter().map(|x| x.pipeline_id)))
                    .await?
                    .into_keys()
                    .collect(),
            };
            stages_of(found, sel).await?;
        }
        Ok(())
    };
    let stages = async {
        let sel = node.field("stage");
        if sel.exists() {
            let pids = match read_with(page, |j| &j.stage) {
                Some(rows) => distinct(rows.iter().map(|s| Some(s.pipeline_id))),
                None => {
                    let found = l
                        .stages
                        .load_many(distinct(leads.iter().map(|x| x.stage_id)))
                        .await?;
                    distinct(found.values().map(|s| Some(s.pipeline_id)))
                }
            };
            let psel = sel.field("pipeline");
            if psel.exists() {
                let found = l.pipelines.load_many(pids).await?;
                stages_of(found.keys().copied().collect(), psel).await?;
            }
        }
        Ok(())
    };
    let users = async {
        if node.field("assignedTo").exists() && read_with(page, |j| &j.assignee).is_none() {
            l.users
                .load_many(distinct(leads.iter().map(|x| x.assigned_to)))
                .await?;
        }
        Ok(())
    };
    let tags = async {
        if node.field("tags").exists() {
            // Tags read with the page are known already.
            let unknown = page.iter().filter(|x| x.tags.is_none()).map(|x| x.row.id);
            l.tags.load_many(unknown).await?;
        }
        Ok(())
    };
    let duplicates = async {
        if node.field("duplicateOf").exists() {
            l.leads
                .load_many(distinct(leads.iter().map(|x| x.duplicate_of)))
                .await?;
        }
        Ok(())
    };
    futures::try_join!(sources, pipelines, stages, users, tags, duplicates)?;
    Ok(())
}

/// Builds a connection from a page.
pub fn connection(
    ctx: &Context<'_>,
    page: Page<Lead>,
    cond: Condition,
    order: Order,
) -> Result<LeadConnection> {
    let ids = &app(ctx)?.ids;
    let Page {
        items,
        has_next,
        has_previous,
    } = page;
    let start = items.first().map(|l| cursor_of(ids, order, &l.row));
    let end = items.last().map(|l| cursor_of(ids, order, &l.row));
    let edges: Vec<LeadEdge> = items
        .into_iter()
        .map(|node| LeadEdge { node, order })
        .collect();
    Ok(LeadConnection {
        page_info: PageInfo::new(has_next, has_previous, start, end),
        edges,
        condition: cond,
    })
}

/// Lead sort keys.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug, Default)]
pub enum LeadOrderField {
    /// Creation time.
    #[default]
    CreatedAt,
    /// Last change.
    UpdatedAt,
    /// Score.
    Score,
    /// Last name.
    LastName,
}

/// Sort direction.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug, Default)]
pub enum OrderDirection {
    /// Smallest first.
    Asc,
    /// Largest first.
    #[default]
    Desc,
}

/// Lead ordering (ties broken by ID).
#[derive(InputObject)]
pub struct LeadOrder {
    /// Sort key.
    #[graphql(default)]
    pub field: LeadOrderField,
    /// Direction.
    #[graphql(default)]
    pub direction: OrderDirection,
}

fn id_ref(ctx: &Context<'_>, kind: Kind, id: &ID) -> IdRef {
    // Spelled as an ID but naming no row: looked up, and not found.
    app(ctx)
        .ok()
        .and_then(|a| a.ids.lookup(kind, id.as_str()))
        .ok_or(())
}

impl LeadOrder {
    /// The service ordering.
    pub fn into_service(self) -> Order {
        Order {
            field: match self.field {
                LeadOrderField::CreatedAt => SortField::CreatedAt,
                LeadOrderField::UpdatedAt => SortField::UpdatedAt,
                LeadOrderField::Score => SortField::Score,
                LeadOrderField::LastName => SortField::LastName,
            },
            asc: self.direction == OrderDirection::Asc,
        }
    }
}

/// Input of `createLead` (Leadron's create-lead body).
#[derive(InputObject)]
pub struct CreateLeadInput {
    /// Contact email (required, valid).
    pub email: String,
    /// First name (1 to 100 characters).
    pub first_name: String,
    /// Last name (1 to 100 characters).
    pub last_name: String,
    /// Phone with country code (E.164 once spaces, dashes, dots and parentheses are removed).
    pub phone: Option<String>,
    /// Channel; defaults to the source's channel.
    pub source: Option<Channel>,
    /// Lead source.
    pub source_id: Option<ID>,
    /// Pipeline; the lead starts in its first stage unless `stageId` is given.
    pub pipeline_id: Option<ID>,
    /// Stage (must belong to the pipeline).
    pub stage_id: Option<ID>,
    /// Initial status (`NEW` by default).
    pub status: Option<LeadStatus>,
    /// Initial score 0–100 (0 by default).
    pub score: Option<i64>,
    /// Assigned user.
    pub assigned_to: Option<ID>,
    /// Up to 50 custom fields with scalar values.
    pub custom_fields: Option<Json<serde_json::Value>>,
    /// Up to 20 tags of up to 50 characters.
    pub tags: Option<Vec<String>>,
}

/// Input of `upsertLead`: as `CreateLeadInput`, matched on `email`; the names are required
/// only when the lead is created, and fields left out keep their values on an update.
#[derive(InputObject)]
pub struct UpsertLeadInput {
    /// Contact email: the lead with this email (case-insensitive) is updated, or created.
    pub email: String,
    /// First name (1 to 100 characters); required to create.
    pub first_name: Option<String>,
    /// Last name (1 to 100 characters); required to create.
    pub last_name: Option<String>,
    /// Phone with country code (E.164 once spaces, dashes, dots and parentheses are removed).
    pub phone: Option<String>,
    /// Channel; defaults to the source's channel.
    pub source: Option<Channel>,
    /// Lead source.
    pub source_id: Option<ID>,
    /// Pipeline; the lead starts in its first stage unless `stageId` is given.
    pub pipeline_id: Option<ID>,
    /// Stage (must belong to the pipeline).
    pub stage_id: Option<ID>,
    /// Status (`NEW` for a created lead by default).
    pub status: Option<LeadStatus>,
    /// Score 0–100 (0 for a created lead by default).
    pub score: Option<i64>,
    /// Assigned user.
    pub assigned_to: Option<ID>,
    /// Up to 50 custom fields with scalar values.
    pub custom_fields: Option<Json<serde_json::Value>>,
    /// Up to 20 tags of up to 50 characters.
    pub tags: Option<Vec<String>>,
}

impl From<CreateLeadInput> for UpsertLeadInput {
    fn from(c: CreateLeadInput) -> Self {
        UpsertLeadInput {
            email: c.email,
            first_name: Some(c.first_name),
            last_name: Some(c.last_name),
            phone: c.phone,
            source: c.source,
            source_id: c.source_id,
            pipeline_id: c.pipeline_id,
            stage_id: c.stage_id,
            status: c.status,
            score: c.score,
            assigned_to: c.assigned_to,
            custom_fields: c.custom_fields,
            tags: c.tags,
        }
    }
}

/// What `upsertLead` did.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum UpsertOutcome {
    /// No lead had the email; this one was created.
    Created,
    /// The one lead with the email was updated.
    Updated,
}

/// The result of `upsertLead`.
#[derive(async_graphql::SimpleObject)]
pub struct UpsertLeadPayload {
    /// The lead as it now is.
    pub lead: Lead,
    /// Whether it was created or updated.
    pub outcome: UpsertOutcome,
}

/// The result of `mergeLeads`.
#[derive(async_graphql::SimpleObject)]
pub struct MergeLeadsPayload {
    /// The primary lead as merged (as it would be, for a dry run).
    pub lead: Lead,
    /// The duplicates merged into it (deleted, unless a dry run).
    pub merged: Vec<ID>,
    /// Whether nothing was written.
    pub dry_run: bool,
}

/// Input of `updateLead`: omitted fields are left unchanged; null clears optional fields.
#[derive(InputObject, Default)]
pub struct UpdateLeadInput {
    /// Contact email.
    pub email: MaybeUndefined<String>,
    /// First name.
    pub first_name: MaybeUndefined<String>,
    /// Last name.
    pub last_name: MaybeUndefined<String>,
    /// Phone with country code; null clears it.
    pub phone: MaybeUndefined<String>,
    /// Channel; null clears it.
    pub source: MaybeUndefined<Channel>,
    /// Lead source; null clears it.
    pub source_id: MaybeUndefined<ID>,
    /// Pipeline (the lead moves to its first stage unless `stageId` is given); null clears it.
    pub pipeline_id: MaybeUndefined<ID>,
    /// Stage of the lead's pipeline; null clears it.
    pub stage_id: MaybeUndefined<ID>,
    /// Status.
    pub status: MaybeUndefined<LeadStatus>,
    /// Score 0–100.
    pub score: MaybeUndefined<i64>,
    /// Assigned user; null unassigns.
    pub assigned_to: MaybeUndefined<ID>,
    /// Custom fields (replaces them all).
    pub custom_fields: MaybeUndefined<Json<serde_json::Value>>,
    /// Tags (replaces them all).
    pub tags: MaybeUndefined<Vec<String>>,
}

fn change<T>(v: MaybeUndefined<T>) -> Change<T> {
    match v {
        MaybeUndefined::Undefined => Change::Keep,
        MaybeUndefined::Null => Change::Clear,
        MaybeUndefined::Value(v) => Change::Set(v),
    }
}

fn change_id(ctx: &Context<'_>, kind: Kind, v: MaybeUndefined<ID>) -> Change<IdRef> {
    match change(v) {
        Change::Set(id) => Change::Set(id_ref(ctx, kind, &id)),
        Change::Clear => Change::Clear,
        Change::Keep => Change::Keep,
    }
}

/// A required field of an update: null is refused rather than taken as "unchanged".
fn required<T>(field: &str, v: MaybeUndefined<T>, nulls: &mut Vec<String>) -> Option<T> {
    match v {
        MaybeUndefined::Value(v) => Some(v),
        MaybeUndefined::Null => {
            nulls.push(field.to_owned());
            None
        }
        MaybeUndefined::Undefined => None,
    }
}

impl CreateLeadInput {
    fn into_service(self, ctx: &Context<'_>) -> LeadInput {
        UpsertLeadInput::from(self).into_service(ctx)
    }
}

impl UpsertLeadInput {
    fn into_service(self, ctx: &Context<'_>) -> LeadInput {
        let set_id =
            |kind, v: Option<ID>| v.map_or(Change::Keep, |id| Change::Set(id_ref(ctx, kind, &id)));
        LeadInput {
            email: Some(self.email),
            first_name: self.first_name,
            last_name: self.last_name,
            phone: self.phone.map_or(Change::Keep, Change::Set),
            source: self.source.map_or(Change::Keep, Change::Set),
            source_id: set_id(Kind::Source, self.source_id),
            pipeline_id: set_id(Kind::Pipeline, self.pipeline_id),
            stage_id: set_id(Kind::Stage, self.stage_id),
            status: self.status,
            score: self.score,
            assigned_to: set_id(Kind::User, self.assigned_to),
            custom_fields: self.custom_fields.map(|j| j.0),
            tags: self.tags,
        }
    }
}

impl UpdateLeadInput {
    fn into_service(self, ctx: &Context<'_>) -> Result<LeadInput, AppError> {
        let mut nulls = Vec::new();
        let input = LeadInput {
            email: required("email", self.email, &mut nulls),
            first_name: required("firstName", self.first_name, &mut nulls),
            last_name: required("lastName", self.last_name, &mut nulls),
            phone: change(self.phone),
            source: change(self.source),
            source_id: change_id(ctx, Kind::Source, self.source_id),
            pipeline_id: change_id(ctx, Kind::Pipeline, self.pipeline_id),
            stage_id: change_id(ctx, Kind::Stage, self.stage_id),
            status: required("status", self.status, &mut nulls),
            score: required("score", self.score, &mut nulls),
            assigned_to: change_id(ctx, Kind::User, self.assigned_to),
            custom_fields: required("customFields", self.custom_fields, &mut nulls).map(|j| j.0),
            tags: required("tags", self.tags, &mut nulls),
        };
        if nulls.is_empty() {
            Ok(input)
        } else {
            Err(AppError::Validation(
                nulls
                    .into_iter()
                    .map(|f| crate::error::FieldError::new(f, "cannot be null"))
                    .collect(),
            ))
        }
    }
}

/// Lead queries.
#[derive(Default)]
pub struct LeadQuery;

#[Object]
impl LeadQuery {
    /// A lead of the caller's tenant and environment; `NOT_FOUND` otherwise.
    #[graphql(guard = "Need::Auth")]
    async fn lead(&self, ctx: &Context<'_>, id: ID) -> Result<Lead> {
        let id = super::decode_arg(ctx, Kind::Lead, &id)?;
        Ok(service::lead::get(app(ctx)?, rc(ctx)?, id).await?.into())
    }

    /// Leads, filtered and ordered, a page at a time (at most 100).
    #[graphql(guard = "Need::Auth")]
    #[expect(
        clippy::too_many_arguments,
        reason = "the Relay arguments plus filter and order"
    )]
    async fn leads(
        &self,
        ctx: &Context<'_>,
        first: Option<i64>,
        after: Option<String>,
        last: Option<i64>,
        before: Option<String>,
        filter: Option<LeadFilter>,
        order_by: Option<LeadOrder>,
    ) -> Result<LeadConnection> {
        let filter = filter.unwrap_or_default();
        let order = order_by.map(LeadOrder::into_service).unwrap_or_default();
        let args = PageArgs {
            first,
            after,
            last,
            before,
        };
        let node = ctx.look_ahead().field("edges").field("node");
        let related = |field: &str| Some(node.field(field)).filter(Lookahead::exists);
        let with = listing::With {
            lead: Some(selected(&node, COLUMNS)),
            source: related("source").map(|s| selected(&s, super::source::COLUMNS)),
            pipeline: related("pipeline").map(|p| selected(&p, super::pipeline::PIPELINE_COLUMNS)),
            stage: related("stage").map(|s| selected(&s, super::pipeline::STAGE_COLUMNS)),
            assignee: related("assignedTo").map(|u| selected(&u, super::user::COLUMNS)),
            tags: node.field("tags").exists(),
        };
        let (page, cond) =
            service::lead::list(app(ctx)?, rc(ctx)?, &filter, order, &args, with).await?;
        let page = attach(page);
        prime(ctx, node, &page.items).await?;
        connection(ctx, page, cond, order)
    }
}

/// Lead mutations.
#[derive(Default)]
pub struct LeadMutation;

#[Object]
impl LeadMutation {
    /// Creates a lead. Duplicate detection runs afterwards and sets `duplicateOf`.
    #[graphql(guard = "Need::Write")]
    async fn create_lead(&self, ctx: &Context<'_>, input: CreateLeadInput) -> Result<Lead> {
        let input = input.into_service(ctx);
        Ok(service::lead::create(app(ctx)?, rc(ctx)?, input)
            .await?
            .into())
    }

    /// Creates up to 100 leads at once, all or none; errors name the item
    /// (`extensions.fields[].field` = `inputs[3].email`).
    #[graphql(guard = "Need::Write")]
    async fn create_leads(
        &self,
        ctx: &Context<'_>,
        inputs: Vec<CreateLeadInput>,
    ) -> Result<Vec<Lead>> {
        let inputs = inputs.into_iter().map(|i| i.into_service(ctx)).collect();
        let rows = service::lead::bulk::create_many(app(ctx)?, rc(ctx)?, "inputs", inputs).await?;
        Ok(rows.into_iter().map(Lead::from).collect())
    }

    /// Updates the lead with this email (case-insensitive, in the caller's tenant and
    /// environment) or creates it; more than one match is `AMBIGUOUS_MATCH` with their IDs in
    /// `extensions.candidates`.
    #[graphql(guard = "Need::Write")]
    async fn upsert_lead(
        &self,
        ctx: &Context<'_>,
        input: UpsertLeadInput,
    ) -> Result<UpsertLeadPayload> {
        let input = input.into_service(ctx);
        let (row, outcome) = service::lead::bulk::upsert(app(ctx)?, rc(ctx)?, input).await?;
        Ok(UpsertLeadPayload {
            lead: row.into(),
            outcome: match outcome {
                service::lead::bulk::Outcome::Created => UpsertOutcome::Created,
                service::lead::bulk::Outcome::Updated => UpsertOutcome::Updated,
            },
        })
    }

    /// Merges duplicates into the primary lead: its non-null fields win, its nulls are filled
    /// from the duplicates (oldest first), tags are united and custom fields merged key by key
    /// (the primary's win); the duplicates are deleted and their copies point to the primary.
    /// A dry run returns the merged lead and writes nothing.
    #[graphql(guard = "Need::Write")]
    async fn merge_leads(
        &self,
        ctx: &Context<'_>,
        primary_id: ID,
        duplicate_ids: Vec<ID>,
        #[graphql(default_with = "Some(false)")] dry_run: Option<bool>,
    ) -> Result<MergeLeadsPayload> {
        let dry_run = dry_run.unwrap_or(false);
        let primary = super::decode_arg(ctx, Kind::Lead, &primary_id)?;
        let dups = duplicate_ids
            .iter()
            .map(|id| id_ref(ctx, Kind::Lead, id))
            .collect();
        let a = app(ctx)?;
        let m = service::lead::bulk::merge(a, rc(ctx)?, primary, dups, dry_run).await?;
        Ok(MergeLeadsPayload {
            lead: m.lead.into(),
            merged: m
                .merged
                .into_iter()
                .map(|id| ID(a.ids.encode(Kind::Lead, id)))
                .collect(),
            dry_run: m.dry_run,
        })
    }

    /// Changes the given fields of a lead.
    #[graphql(guard = "Need::Write")]
    async fn update_lead(&self, ctx: &Context<'_>, id: ID, input: UpdateLeadInput) -> Result<Lead> {
        let id = super::decode_arg(ctx, Kind::Lead, &id)?;
        let input = input.into_service(ctx)?;
        Ok(service::lead::update(app(ctx)?, rc(ctx)?, id, input)
            .await?
            .into())
    }

    /// Deletes a lead; returns its ID.
    #[graphql(guard = "Need::Write")]
    async fn delete_lead(&self, ctx: &Context<'_>, id: ID) -> Result<ID> {
        let lead_id = super::decode_arg(ctx, Kind::Lead, &id)?;
        service::lead::delete(app(ctx)?, rc(ctx)?, lead_id).await?;
        Ok(id)
    }

    /// Assigns a lead to a user of the tenant; null unassigns.
    #[graphql(guard = "Need::Write")]
    async fn assign_lead(&self, ctx: &Context<'_>, id: ID, user_id: Option<ID>) -> Result<Lead> {
        let id = super::decode_arg(ctx, Kind::Lead, &id)?;
        let user = user_id.map(|u| id_ref(ctx, Kind::User, &u));
        Ok(service::lead::assign(app(ctx)?, rc(ctx)?, id, user)
            .await?
            .into())
    }

    /// Adds tags to a lead (at most 20 in all).
    #[graphql(guard = "Need::Write")]
    async fn add_lead_tags(&self, ctx: &Context<'_>, id: ID, tags: Vec<String>) -> Result<Lead> {
        let id = super::decode_arg(ctx, Kind::Lead, &id)?;
        Ok(service::lead::add_tags(app(ctx)?, rc(ctx)?, id, tags)
            .await?
            .into())
    }

    /// Removes tags from a lead.
    #[graphql(guard = "Need::Write")]
    async fn remove_lead_tags(&self, ctx: &Context<'_>, id: ID, tags: Vec<String>) -> Result<Lead> {
        let id = super::decode_arg(ctx, Kind::Lead, &id)?;
        Ok(service::lead::remove_tags(app(ctx)?, rc(ctx)?, id, tags)
            .await?
            .into())
    }

    /// Moves a lead to another stage of its pipeline.
    #[graphql(guard = "Need::Write")]
    async fn move_lead_to_stage(&self, ctx: &Context<'_>, id: ID, stage_id: ID) -> Result<Lead> {
        let id = super::decode_arg(ctx, Kind::Lead, &id)?;
        let stage = id_ref(ctx, Kind::Stage, &stage_id);
        Ok(service::lead::move_to_stage(app(ctx)?, rc(ctx)?, id, stage)
            .await?
            .into())
    }
}
