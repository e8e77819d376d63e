//! The OpenAPI 3.1 document of the API, built from the code: its paths from
//! [`Operation`] (the routing table), its schemas from the request and response types the
//! handlers use (schemars), its statuses from what each handler and the gateway in front of
//! it answer. `GET /openapi.json` serves it; `backend/openapi.json` is the committed copy,
//! kept current by a test.

use std::sync::OnceLock;

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{json, Map, Value};

use super::auth::{Credentials, Registered, Token};
use super::health::Readiness;
use super::jobs::{Accepted, JobStatus, NewTodo};
use super::todos::{Patch, DEFAULT_LIMIT, MAX_LIMIT};
use super::Operation;
use crate::auth::tokens::JwkSet;
use crate::error::Problem;
use crate::http::{text, Reply};
use crate::todos::domain::{Page, Todo};

/// `GET /openapi.json`: the document, rendered once.
pub(crate) fn serve() -> Reply {
    static RENDERED: OnceLock<String> = OnceLock::new();
    let body = RENDERED.get_or_init(render);
    text(http::StatusCode::OK, "application/json", body.clone())
}

/// The document as pretty JSON with a final newline: the committed `backend/openapi.json`.
pub fn render() -> String {
    let mut text = serde_json::to_string_pretty(&document()).unwrap_or_default();
    text.push('\n');
    text
}

/// How a response's body is described.
enum Body {
    None,
    Json(Schema),
    Problem,
    Text,
}

/// What the document says of one operation.
struct Spec {
    id: &'static str,
    tag: &'static str,
    summary: &'static str,
    /// Needs `Authorization: Bearer` (the gateway checks it on these routes).
    bearer: bool,
    parameters: Vec<Value>,
    request: Option<Schema>,
    responses: Vec<(u16, &'static str, Body)>,
}

fn json_of<T: JsonSchema>(g: &mut SchemaGenerator) -> Body {
    Body::Json(g.subschema_for::<T>())
}

fn id_parameter(what: &str) -> Value {
    json!({
        "name": "id", "in": "path", "required": true,
        "description": format!("The {what}'s id (a UUID; any other value is 404)."),
        "schema": { "type": "string" },
    })
}

/// Answers the gateway in front of the API gives on the routes that carry them.
const RATE_LIMITED: (u16, &str) = (
    429,
    "A rate limit of the gateway refused the request; `Retry-After` says when to retry.",
);
const BUSY: (u16, &str) = (503, "A dependency (the database, Redis, password hashing) is saturated or down; retry after `Retry-After`.");

fn spec(op: Operation, g: &mut SchemaGenerator) -> Spec {
    let problem = |status, text| (status, text, Body::Problem);
    let bad_request = problem(400, "The request is invalid; `detail` says why.");
    let unauthorized = problem(401, "No valid bearer token.");
    let not_found = problem(
        404,
        "No such resource for this user (another user's counts as missing).",
    );
    let too_large = problem(413, "The body is larger than the route's limit.");
    let not_json = problem(415, "The body must be `application/json`.");
    let rate_limited = problem(RATE_LIMITED.0, RATE_LIMITED.1);
    let busy = problem(BUSY.0, BUSY.1);
    match op {
        Operation::Healthz => Spec {
            id: "healthz",
            tag: "health",
            summary: "Liveness: the process answers (replicas only, not routed by the gateway)",
            bearer: false,
            parameters: vec![],
            request: None,
            responses: vec![(200, "Alive: `ok`.", Body::Text)],
        },
        Operation::Readyz => Spec {
            id: "readyz",
            tag: "health",
            summary: "Readiness: PostgreSQL and Redis answer (replicas only)",
            bearer: false,
            parameters: vec![],
            request: None,
            responses: vec![
                (200, "Ready.", json_of::<Readiness>(g)),
                (
                    503,
                    "A dependency does not answer.",
                    json_of::<Readiness>(g),
                ),
            ],
        },
        Operation::Metrics => Spec {
            id: "metrics",
            tag: "health",
            summary: "Prometheus metrics of this replica (replicas only)",
            bearer: false,
            parameters: vec![],
            request: None,
            responses: vec![(200, "The Prometheus text format.", Body::Text)],
        },
        Operation::OpenApi => Spec {
            id: "openapi",
            tag: "meta",
            summary: "This document",
            bearer: false,
            parameters: vec![],
            request: None,
            responses: vec![(
                200,
                "The OpenAPI 3.1 document.",
                Body::Json(json_schema_object()),
            )],
        },
        Operation::Jwks => Spec {
            id: "jwks",
            tag: "auth",
            summary: "The public keys that verify this API's tokens",
            bearer: false,
            parameters: vec![],
            request: None,
            responses: vec![(200, "The JWK set.", json_of::<JwkSet>(g))],
        },
        Operation::Register => Spec {
            id: "register",
            tag: "auth",
            summary: "Create an account",
            bearer: false,
            parameters: vec![],
            request: Some(g.subschema_for::<Credentials>()),
            responses: vec![
                (201, "The account.", json_of::<Registered>(g)),
                bad_request,
                problem(409, "The username is taken."),
                too_large,
                not_json,
                rate_limited,
                busy,
            ],
        },
        Operation::Login => Spec {
            id: "login",
            tag: "auth",
            summary: "Exchange a username and password for a bearer token",
            bearer: false,
            parameters: vec![],
            request: Some(g.subschema_for::<Credentials>()),
            responses: vec![
                (200, "A token.", json_of::<Token>(g)),
                bad_request,
                problem(401, "Wrong username or password."),
                too_large,
                not_json,
                rate_limited,
                busy,
            ],
        },
        Operation::ListTodos => Spec {
            id: "listTodos",
            tag: "todos",
            summary: "The caller's todos, newest first, a page at a time",
            bearer: true,
            parameters: vec![
                json!({
                    "name": "limit", "in": "query", "required": false,
                    "description": "Todos per page.",
                    "schema": { "type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT },
                }),
                json!({
                    "name": "cursor", "in": "query", "required": false,
                    "description": "The `next_cursor` of the previous page.",
                    "schema": { "type": "string" },
                }),
            ],
            request: None,
            responses: vec![
                (200, "A page.", json_of::<Page>(g)),
                bad_request,
                unauthorized,
                rate_limited,
                busy,
            ],
        },
        Operation::CreateTodo => Spec {
            id: "createTodo",
            tag: "todos",
            summary: "Accept a job that creates a todo",
            bearer: true,
            parameters: vec![json!({
                "name": "Idempotency-Key", "in": "header", "required": false,
                "description": "Makes retries safe: a replay of the same request answers with the first job; the same key with another request is 422.",
                "schema": { "type": "string", "minLength": 1, "maxLength": 255 },
            })],
            request: Some(g.subschema_for::<NewTodo>()),
            responses: vec![
                (
                    202,
                    "Accepted; `Location` is the job's status URL.",
                    json_of::<Accepted>(g),
                ),
                bad_request,
                unauthorized,
                problem(
                    409,
                    "A concurrent request with the same `Idempotency-Key` won; retry.",
                ),
                too_large,
                not_json,
                problem(
                    422,
                    "This `Idempotency-Key` was used with a different request.",
                ),
                rate_limited,
                busy,
            ],
        },
        Operation::GetTodo => Spec {
            id: "getTodo",
            tag: "todos",
            summary: "One todo",
            bearer: true,
            parameters: vec![id_parameter("todo")],
            request: None,
            responses: vec![
                (200, "The todo.", json_of::<Todo>(g)),
                bad_request,
                unauthorized,
                not_found,
                rate_limited,
                busy,
            ],
        },
        Operation::UpdateTodo => Spec {
            id: "updateTodo",
            tag: "todos",
            summary: "Change a todo's title or done flag",
            bearer: true,
            parameters: vec![id_parameter("todo")],
            request: Some(g.subschema_for::<Patch>()),
            responses: vec![
                (200, "The todo as changed.", json_of::<Todo>(g)),
                bad_request,
                unauthorized,
                not_found,
                too_large,
                not_json,
                rate_limited,
                busy,
            ],
        },
        Operation::DeleteTodo => Spec {
            id: "deleteTodo",
            tag: "todos",
            summary: "Delete a todo",
            bearer: true,
            parameters: vec![id_parameter("todo")],
            request: None,
            responses: vec![
                (204, "Deleted.", Body::None),
                bad_request,
                unauthorized,
                not_found,
                rate_limited,
                busy,
            ],
        },
        Operation::GetJob => Spec {
            id: "getJob",
            tag: "jobs",
            summary: "Where a job is",
            bearer: true,
            parameters: vec![id_parameter("job")],
            request: None,
            responses: vec![
                (200, "The job.", json_of::<JobStatus>(g)),
                bad_request,
                unauthorized,
                not_found,
                rate_limited,
                busy,
            ],
        },
    }
}

/// Any JSON object (the document describing itself).
fn json_schema_object() -> Schema {
    schemars::json_schema!({ "type": "object" })
}

fn response(description: &str, body: Body) -> Value {
    let content = match body {
        Body::None => return json!({ "description": description }),
        Body::Json(schema) => json!({ "application/json": { "schema": schema } }),
        Body::Problem => json!({
            "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } }
        }),
        Body::Text => json!({ "text/plain": { "schema": { "type": "string" } } }),
    };
    json!({ "description": description, "content": content })
}

/// The whole document.
pub fn document() -> Value {
    let mut g = SchemaSettings::draft2020_12()
        .with(|s| {
            s.definitions_path = "/components/schemas".into();
            s.meta_schema = None;
        })
        .into_generator();
    g.subschema_for::<Problem>();
    let mut paths = Map::new();
    for op in Operation::ALL {
        let (method, template) = op.route();
        let spec = spec(op, &mut g);
        let mut responses = Map::new();
        for (status, description, body) in spec.responses {
            responses.insert(status.to_string(), response(description, body));
        }
        let mut operation = json!({
            "operationId": spec.id,
            "tags": [spec.tag],
            "summary": spec.summary,
            "responses": responses,
        });
        if !spec.parameters.is_empty() {
            operation["parameters"] = Value::Array(spec.parameters);
        }
        if let Some(schema) = spec.request {
            operation["requestBody"] = json!({
                "required": true,
                "content": { "application/json": { "schema": schema } },
            });
        }
        if spec.bearer {
            operation["security"] = json!([{ "bearer": [] }]);
        }
        let item = paths
            .entry(template)
            .or_insert_with(|| Value::Object(Map::new()));
        item[method.as_str().to_ascii_lowercase()] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "todo API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "A todo API behind the gateway: accounts and bearer tokens, todos (created through a job queue), jobs. Errors are RFC 9457 problem+json, from the API and from the gateway alike. Pages are cursor-based (`limit`, `next_cursor`). `POST /todos` takes an `Idempotency-Key`. The health operations are served by each replica, not routed by the gateway.",
            "license": { "name": "MIT OR Apache-2.0" },
        },
        "servers": [{ "url": "/" }],
        "tags": [
            { "name": "auth", "description": "Accounts and tokens." },
            { "name": "todos", "description": "The caller's todos." },
            { "name": "jobs", "description": "Jobs that create todos." },
            { "name": "health", "description": "Each replica's health and metrics." },
            { "name": "meta", "description": "This document." },
        ],
        "paths": paths,
        "components": {
            "schemas": g.take_definitions(true),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "`access_token` of `POST /auth/login`.",
                },
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The router serves exactly the documented operations: each documented method and path
    /// reaches its operation, and every other method on a documented path is 405.
    #[test]
    fn the_router_and_the_document_name_the_same_operations() {
        let doc = document();
        let paths = doc["paths"].as_object().unwrap();
        let mut documented = 0;
        for (template, item) in paths {
            let concrete = template.replace("{id}", "0192c3a4-0000-7000-8000-000000000000");
            let segments = super::super::canonical_segments(&concrete).unwrap();
            for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
                let method_key = method.to_ascii_lowercase();
                let resolved = super::super::resolve(&method.parse().unwrap(), &segments);
                match (item.get(&method_key), resolved) {
                    (Some(op), Ok((found, _))) => {
                        documented += 1;
                        assert_eq!(found.route(), (method.parse().unwrap(), template.as_str()));
                        assert!(op["operationId"].is_string());
                    }
                    (None, Err(crate::error::ApiError::MethodNotAllowed)) => {}
                    (doc, routed) => panic!(
                        "{method} {template}: documented {:?}, routed {routed:?}",
                        doc.is_some()
                    ),
                }
            }
        }
        assert_eq!(documented, Operation::ALL.len());
    }

    /// `Operation::ALL` lists every variant (a new one must be routed and documented).
    #[test]
    fn every_operation_is_in_the_table() {
        let index = |op: Operation| match op {
            Operation::Healthz => 0,
            Operation::Readyz => 1,
            Operation::Metrics => 2,
            Operation::OpenApi => 3,
            Operation::Jwks => 4,
            Operation::Register => 5,
            Operation::Login => 6,
            Operation::ListTodos => 7,
            Operation::CreateTodo => 8,
            Operation::GetTodo => 9,
            Operation::UpdateTodo => 10,
            Operation::DeleteTodo => 11,
            Operation::GetJob => 12,
        };
        let seen: Vec<usize> = Operation::ALL.iter().map(|op| index(*op)).collect();
        assert_eq!(seen, (0..Operation::ALL.len()).collect::<Vec<_>>());
    }
}
