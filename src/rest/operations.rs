//! The GraphQL operations behind the REST routes, parsed once at start. Aliases give the
//! REST field names (`source` for a lead's channel, `assignedTo` for the user's ID).

use std::collections::HashMap;

use async_graphql::parser::types::ExecutableDocument;

const LEAD: &str = "id tenantId email firstName lastName phone source: channel sourceId pipelineId stageId status \
                    score assignedTo: assignedToId customFields tags duplicateOf: duplicateOfId createdAt updatedAt";
const SOURCE: &str = "id name channel description hasWebhook leadCount createdAt updatedAt";
const PIPELINE: &str = "id name stages { id name position } createdAt updatedAt";
const KEY: &str = "id label name prefix scope environment status active createdAt expiresAt lastUsedAt usageCount";
const SESSION: &str = "token refreshToken expiresAt user { id name email role }";

/// Every operation, by name. `{LEAD}`-style markers are replaced by the field lists above.
const OPERATIONS: &[(&str, &str)] = &[
    (
        "login",
        "mutation($email: String!, $password: String!) { r: login(email: $email, password: $password) { SESSION } }",
    ),
    (
        "refresh",
        "mutation($refreshToken: String!) { r: refreshSession(refreshToken: $refreshToken) { SESSION } }",
    ),
    (
        "logout",
        "mutation($refreshToken: String!) { r: logout(refreshToken: $refreshToken) }",
    ),
    (
        "me",
        "query { r: me { id role environment scope authMethod user { email name } tenant { id name slug plan } } }",
    ),
    (
        "listLeads",
        "query($first: Int, $after: String, $filter: LeadFilter, $order: LeadOrder) { \
         r: leads(first: $first, after: $after, filter: $filter, orderBy: $order) { \
         edges { node { LEAD } } pageInfo { hasNextPage endCursor } } }",
    ),
    (
        "createLead",
        "mutation($input: CreateLeadInput!) { r: createLead(input: $input) { LEAD } }",
    ),
    ("getLead", "query($id: ID!) { r: lead(id: $id) { LEAD } }"),
    (
        "updateLead",
        "mutation($id: ID!, $input: UpdateLeadInput!) { r: updateLead(id: $id, input: $input) { LEAD } }",
    ),
    (
        "deleteLead",
        "mutation($id: ID!) { r: deleteLead(id: $id) }",
    ),
    (
        "addTags",
        "mutation($id: ID!, $tags: [String!]!) { r: addLeadTags(id: $id, tags: $tags) { LEAD } }",
    ),
    (
        "removeTags",
        "mutation($id: ID!, $tags: [String!]!) { r: removeLeadTags(id: $id, tags: $tags) { LEAD } }",
    ),
    ("listSources", "query { r: sources { SOURCE } }"),
    (
        "createSource",
        "mutation($input: CreateSourceInput!) { r: createSource(input: $input) { SOURCE } }",
    ),
    (
        "getSource",
        "query($id: ID!) { r: source(id: $id) { SOURCE } }",
    ),
    (
        "updateSource",
        "mutation($id: ID!, $input: UpdateSourceInput!) { r: updateSource(id: $id, input: $input) { SOURCE } }",
    ),
    (
        "deleteSource",
        "mutation($id: ID!) { r: deleteSource(id: $id) }",
    ),
    ("listPipelines", "query { r: pipelines { PIPELINE } }"),
    (
        "createPipeline",
        "mutation($input: CreatePipelineInput!) { r: createPipeline(input: $input) { PIPELINE } }",
    ),
    (
        "getPipeline",
        "query($id: ID!) { r: pipeline(id: $id) { PIPELINE } }",
    ),
    (
        "updatePipeline",
        "mutation($id: ID!, $input: UpdatePipelineInput!) { r: updatePipeline(id: $id, input: $input) { PIPELINE } }",
    ),
    (
        "deletePipeline",
        "mutation($id: ID!) { r: deletePipeline(id: $id) }",
    ),
    (
        "stats",
        "query($filter: StatsFilter) { r: stats(filter: $filter) { total byStatus { status count } \
         byChannel { channel count } bySource { sourceId source { name } count } \
         byStage { stageId stage { name pipelineId } count } createdPerDay { date count } } }",
    ),
    ("listKeys", "query { r: apiKeys { KEY } }"),
    (
        "createKey",
        "mutation($input: CreateApiKeyInput!) { r: createApiKey(input: $input) { key apiKey { KEY } } }",
    ),
    (
        "updateKey",
        "mutation($id: ID!, $input: UpdateApiKeyInput!) { r: updateApiKey(id: $id, input: $input) { KEY } }",
    ),
    (
        "deleteKey",
        "mutation($id: ID!) { r: deleteApiKey(id: $id) }",
    ),
];

/// The parsed operations.
#[derive(Debug, Clone)]
pub struct Operations(HashMap<&'static str, ExecutableDocument>);

impl Operations {
    /// Parses every operation.
    pub fn parse() -> Result<Self, String> {
        let mut map = HashMap::new();
        for (name, text) in OPERATIONS {
            let text = text
                .replace("LEAD", LEAD)
                .replace("SOURCE", SOURCE)
                .replace("PIPELINE", PIPELINE)
                .replace("KEY", KEY)
                .replace("SESSION", SESSION);
            let doc = async_graphql::parser::parse_query(&text)
                .map_err(|e| format!("REST operation {name}: {e}"))?;
            map.insert(*name, doc);
        }
        Ok(Operations(map))
    }

    /// A request for operation `name` (a copy of the parsed document, no parsing).
    pub fn request(&self, name: &str) -> Option<async_graphql::Request> {
        let doc = self.0.get(name)?.clone();
        let mut req = async_graphql::Request::new(String::new());
        req.set_parsed_query(doc);
        Some(req)
    }
}
