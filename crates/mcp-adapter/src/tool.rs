//! The `get_user_request` tool's wire contract: its description, schemas, argument
//! parsing and result JSON (SPEC §3). Pure functions, so the contract is tested
//! without a transport.

use std::sync::Arc;

use queue_core::{AgentId, Fetch, FetchOutcome, QueueName, ResultType};
use rmcp::model::{JsonObject, Tool, ToolAnnotations};
use rmcp::schemars::JsonSchema;
use rmcp::schemars::generate::{Contract, SchemaSettings};
use serde::Serialize;
use serde_json::Value;

/// The one tool this server offers.
pub const TOOL_NAME: &str = "get_user_request";

/// The server's `instructions`, sent in the initialize result and discovery.
pub const INSTRUCTIONS: &str = "\
This server hands you instructions that a person queues for you in a web page or a terminal. \
Call the tool `get_user_request` to receive the next one. After you have carried out an \
instruction, or whenever a call returns without one, call `get_user_request` again. Keep \
calling it for the whole session: never end your session or your turn on your own, because \
the person may queue more work at any moment. A call that finds the queue empty waits for a \
while and then tells you to call again; that is normal, just call again. Instructions come \
from your project's queue (named after its folder); pass `queue` only when the person tells \
you to use another one.";

/// The tool description the agent reads.
pub const DESCRIPTION: &str = "\
Fetch the next instruction the person queued for you, oldest first; each instruction is \
delivered exactly once. If the queue is empty the call waits until one arrives or the \
server's wait time runs out, then returns result_type `empty` or `default_response`. \
ALWAYS call this tool again after you finish an instruction or receive an empty or default \
response: do not end your session on your own. Optional `agent_id` names you (1-128 \
characters of A-Z a-z 0-9 . _ : @ -) so that several agents can be told apart. Optional \
`queue` (same characters) picks the queue to take from; leave it out to use your project's \
queue, which the server works out itself.";

/// The tool as listed by `tools/list`.
pub fn tool() -> Tool {
    Tool::new_with_raw(
        TOOL_NAME,
        Some(DESCRIPTION.into()),
        Arc::new(input_schema()),
    )
    .with_title("Get the next user request")
    .with_raw_output_schema(Arc::new(output_schema()))
    .with_annotations(
        ToolAnnotations::new()
            .read_only(false)
            .destructive(false)
            .idempotent(false)
            .open_world(false),
    )
}

/// The characters an agent or queue name may hold, as a JSON Schema `pattern`.
const NAME_PATTERN: &str = "^[A-Za-z0-9._:@-]+$";

/// The tool's arguments, for the input schema. The call's arguments are read by
/// [`parse_arguments`] instead of serde: its refusals tell the agent exactly
/// which argument was wrong and that nothing was consumed.
#[derive(JsonSchema)]
#[schemars(crate = "rmcp::schemars", deny_unknown_fields)]
#[expect(dead_code, reason = "only its schema is used; see above")]
struct Input {
    /// Who is asking. Defaults to the client's name, else `default`.
    #[schemars(
        with = "String",
        default,
        length(min = 1, max = AgentId::MAX_LEN),
        regex(pattern = NAME_PATTERN),
        transform = no_default
    )]
    agent_id: Option<String>,
    /// The queue to take from. Defaults to the queue of your project (the server's --queue or URL, else your workspace's folder name), else `default`.
    #[schemars(
        with = "String",
        default,
        length(min = 1, max = QueueName::MAX_LEN),
        regex(pattern = NAME_PATTERN),
        transform = no_default
    )]
    queue: Option<String>,
}

/// The structured result of a finished call (SPEC §3), as it is sent.
#[derive(Serialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
struct Output<'a> {
    status: Status,
    /// The queue this call took from (or waited on).
    queue: &'a str,
    result_type: ResultTypeJson,
    /// The delivered instruction, or null when none came.
    instruction: Option<Delivered<'a>>,
    /// With `empty` or `default_response`: what to do next.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String")]
    response: Option<&'a str>,
    #[schemars(transform = no_format)]
    remaining_pending: u64,
    #[schemars(range(min = 0), transform = no_format)]
    waited_seconds: f64,
}

// The `status` of every finished call. (A `//` comment: a doc comment would
// become the property's description.)
#[derive(Serialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars", inline)]
enum Status {
    #[serde(rename = "ok")]
    Ok,
}

// What a call returned, as `result_type` names it.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(crate = "rmcp::schemars", inline)]
enum ResultTypeJson {
    Instruction,
    Empty,
    DefaultResponse,
}

// The instruction a call delivered.
#[derive(Serialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars", inline)]
struct Delivered<'a> {
    #[schemars(with = "String", extend("format" = "uuid"))]
    id: String,
    content: &'a str,
    // A delivered instruction always carries the time it was consumed.
    #[schemars(with = "String", extend("format" = "date-time"))]
    consumed_at: Option<String>,
}

/// Leaves out the `"default": null` that schemars writes for an optional
/// argument: absent means the server picks, which the description says.
fn no_default(schema: &mut rmcp::schemars::Schema) {
    schema.remove("default");
}

/// Leaves the Rust width (`uint64`, `double`) out of a number's schema: the
/// agent needs only the JSON type and its bounds.
fn no_format(schema: &mut rmcp::schemars::Schema) {
    schema.remove("format");
}

/// The schema of `T` as a tool publishes it: JSON Schema 2020-12 (the MCP
/// dialect), without the `$schema`, `title` and `description` that schemars
/// adds at the root (the Rust type's name and doc, noise to an agent).
fn schema_of<T: JsonSchema>(contract: Contract) -> JsonObject {
    let mut settings = SchemaSettings::draft2020_12();
    settings.meta_schema = None;
    settings.contract = contract;
    let schema = settings.into_generator().into_root_schema_for::<T>();
    let mut object = match schema.to_value() {
        Value::Object(map) => map,
        _ => JsonObject::new(),
    };
    object.remove("title");
    object.remove("description");
    object
}

/// The input schema: optional, validated `agent_id` and `queue`; nothing else
/// accepted.
pub fn input_schema() -> JsonObject {
    schema_of::<Input>(Contract::Deserialize)
}

/// The published `outputSchema` of the structured result.
pub fn output_schema() -> JsonObject {
    schema_of::<Output<'static>>(Contract::Serialize)
}

/// What a call's arguments name; `None` where they leave it to the server.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Arguments {
    /// The caller's `agent_id`.
    pub agent: Option<AgentId>,
    /// The `queue` to take from.
    pub queue: Option<QueueName>,
}

/// Parses the call's arguments. The message of an error is meant for the agent:
/// it says what was wrong and what is allowed.
pub fn parse_arguments(arguments: Option<&JsonObject>) -> Result<Arguments, String> {
    let Some(arguments) = arguments else {
        return Ok(Arguments::default());
    };
    if let Some(unknown) = arguments
        .keys()
        .find(|k| !matches!(k.as_str(), "agent_id" | "queue"))
    {
        return Err(format!(
            "unknown argument `{unknown}`: {TOOL_NAME} takes only an optional `agent_id` and an optional `queue`"
        ));
    }
    Ok(Arguments {
        agent: name(arguments, "agent_id", AgentId::parse)?,
        queue: name(arguments, "queue", QueueName::parse)?,
    })
}

fn name<T>(
    arguments: &JsonObject,
    key: &str,
    parse: impl Fn(&str) -> Result<T, queue_core::ValidationError>,
) -> Result<Option<T>, String> {
    match arguments.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => parse(text)
            .map(Some)
            .map_err(|e| format!("invalid `{key}`: {}; nothing was consumed", e.message)),
        Some(other) => Err(format!(
            "invalid `{key}`: expected a string, got {}; nothing was consumed",
            kind(other)
        )),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The agent id to use when the call names none: the client's name from the
/// handshake when it makes a valid id, else `default`.
pub fn default_agent(client_name: Option<&str>) -> AgentId {
    client_name
        .and_then(AgentId::sanitize)
        .unwrap_or_else(AgentId::default_agent)
}

/// The structured result of a finished call (SPEC §3).
pub fn result_json(fetch: &Fetch) -> Value {
    let waited = (fetch.waited.as_secs_f64() * 1000.0).round() / 1000.0;
    let (instruction, response) = match &fetch.outcome {
        FetchOutcome::Instruction(item) => (
            Some(Delivered {
                id: item.id.to_string(),
                content: item.content.as_str(),
                consumed_at: item.consumed_at.map(|t| t.to_rfc3339()),
            }),
            None,
        ),
        FetchOutcome::Empty => (None, Some("")),
        FetchOutcome::DefaultResponse(text) => (None, Some(text.as_str())),
    };
    let output = Output {
        status: Status::Ok,
        queue: fetch.queue.as_str(),
        result_type: match fetch.outcome.result_type() {
            ResultType::Instruction => ResultTypeJson::Instruction,
            ResultType::Empty => ResultTypeJson::Empty,
            ResultType::DefaultResponse => ResultTypeJson::DefaultResponse,
        },
        instruction,
        response,
        remaining_pending: fetch.remaining_pending,
        waited_seconds: waited,
    };
    // Strings and numbers only; the waited time is a finite number of seconds.
    serde_json::to_value(output).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use queue_core::{Content, EndReason, Instruction, InstructionId, NewInstruction, Timestamp};
    use serde_json::json;
    use std::time::Duration;

    fn args(value: Value) -> JsonObject {
        match value {
            Value::Object(map) => map,
            _ => JsonObject::new(),
        }
    }

    #[test]
    fn arguments_are_checked() {
        assert_eq!(parse_arguments(None), Ok(Arguments::default()));
        assert_eq!(
            parse_arguments(Some(&args(json!({})))),
            Ok(Arguments::default())
        );
        assert_eq!(
            parse_arguments(Some(&args(json!({"agent_id": "claude-1"})))),
            Ok(Arguments {
                agent: Some(AgentId::parse("claude-1").unwrap()),
                queue: None
            })
        );
        assert_eq!(
            parse_arguments(Some(&args(json!({"queue": "shop", "agent_id": null})))),
            Ok(Arguments {
                agent: None,
                queue: Some(QueueName::parse("shop").unwrap())
            })
        );
        let bad_queue = parse_arguments(Some(&args(json!({"queue": "my shop"})))).unwrap_err();
        assert!(bad_queue.starts_with("invalid `queue`"), "{bad_queue}");
        assert!(bad_queue.contains("nothing was consumed"), "{bad_queue}");
        let empty_queue = parse_arguments(Some(&args(json!({"queue": ""})))).unwrap_err();
        assert!(empty_queue.contains("must not be empty"), "{empty_queue}");
        let list = parse_arguments(Some(&args(json!({"queue": ["a"]})))).unwrap_err();
        assert!(list.contains("expected a string, got an array"), "{list}");
        let unknown = parse_arguments(Some(&args(json!({"agent": "x"})))).unwrap_err();
        assert!(unknown.contains("unknown argument `agent`"), "{unknown}");
        let bad = parse_arguments(Some(&args(json!({"agent_id": "has space"})))).unwrap_err();
        assert!(bad.starts_with("invalid `agent_id`"), "{bad}");
        let long = "a".repeat(129);
        assert!(parse_arguments(Some(&args(json!({ "agent_id": long })))).is_err());
        let number = parse_arguments(Some(&args(json!({"agent_id": 7})))).unwrap_err();
        assert!(
            number.contains("expected a string, got a number"),
            "{number}"
        );
    }

    #[test]
    fn default_agent_comes_from_the_client_name() {
        assert_eq!(default_agent(None).as_str(), "default");
        assert_eq!(default_agent(Some("claude-code")).as_str(), "claude-code");
        assert_eq!(default_agent(Some("")).as_str(), "default");
    }

    #[test]
    fn results_have_the_documented_shape() {
        let at = Timestamp::from_micros(1_700_000_000_000_000);
        let item = Instruction::pending(
            NewInstruction::new(
                InstructionId::from_u128(1),
                Content::parse("do it").unwrap(),
            ),
            at,
            0,
        )
        .consumed(&AgentId::default_agent().into(), at)
        .unwrap();
        let fetch = Fetch {
            agent: AgentId::default_agent(),
            queue: QueueName::parse("shop").unwrap(),
            outcome: FetchOutcome::Instruction(item),
            reason: EndReason::Delivered,
            remaining_pending: 3,
            count_error: None,
            waited: Duration::from_millis(1500),
        };
        let expected = json!({
            "status": "ok",
            "queue": "shop",
            "result_type": "instruction",
            "instruction": {
                "id": "00000000-0000-0000-0000-000000000001",
                "content": "do it",
                "consumed_at": "2023-11-14T22:13:20.000000Z"
            },
            "remaining_pending": 3,
            "waited_seconds": 1.5
        });
        assert_eq!(result_json(&fetch), expected);

        let empty = Fetch {
            outcome: FetchOutcome::DefaultResponse("call again".into()),
            reason: EndReason::TimedOut,
            remaining_pending: 0,
            ..fetch
        };
        let value = result_json(&empty);
        assert_eq!(value["result_type"], "default_response");
        assert_eq!(value["instruction"], Value::Null);
        assert_eq!(value["response"], "call again");
    }

    /// The derived schemas say what the hand-written ones of earlier versions
    /// said, keyword for keyword, but for `instruction`: `"type": ["object",
    /// "null"]` where `oneOf` a null and an object stood, which means the same.
    #[test]
    fn derived_schemas_match_the_published_contract() {
        let input = json!({
            "type": "object",
            "properties": {
                "agent_id": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": AgentId::MAX_LEN,
                    "pattern": "^[A-Za-z0-9._:@-]+$",
                    "description": "Who is asking. Defaults to the client's name, else `default`."
                },
                "queue": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": QueueName::MAX_LEN,
                    "pattern": "^[A-Za-z0-9._:@-]+$",
                    "description": "The queue to take from. Defaults to the queue of your project (the server's --queue or URL, else your workspace's folder name), else `default`."
                }
            },
            "additionalProperties": false
        });
        assert_eq!(Value::Object(input_schema()), input);
        let output = json!({
            "type": "object",
            "properties": {
                "status": { "type": "string", "enum": ["ok"] },
                "queue": {
                    "type": "string",
                    "description": "The queue this call took from (or waited on)."
                },
                "result_type": {
                    "type": "string",
                    "enum": ["instruction", "empty", "default_response"]
                },
                "instruction": {
                    "description": "The delivered instruction, or null when none came.",
                    "type": ["object", "null"],
                    "properties": {
                        "id": { "type": "string", "format": "uuid" },
                        "content": { "type": "string" },
                        "consumed_at": { "type": "string", "format": "date-time" }
                    },
                    "required": ["id", "content", "consumed_at"]
                },
                "response": {
                    "type": "string",
                    "description": "With `empty` or `default_response`: what to do next."
                },
                "remaining_pending": { "type": "integer", "minimum": 0 },
                "waited_seconds": { "type": "number", "minimum": 0 }
            },
            "required": ["status", "queue", "result_type", "instruction", "remaining_pending", "waited_seconds"]
        });
        assert_eq!(Value::Object(output_schema()), output);
    }

    #[test]
    fn schemas_forbid_unknown_fields_and_require_the_documented_keys() {
        assert_eq!(input_schema()["additionalProperties"], json!(false));
        let required = output_schema()["required"].clone();
        for key in [
            "status",
            "queue",
            "result_type",
            "instruction",
            "remaining_pending",
        ] {
            assert!(required.as_array().unwrap().contains(&json!(key)), "{key}");
        }
        let tool = tool();
        assert_eq!(tool.name, TOOL_NAME);
        assert!(tool.output_schema.is_some());
        assert!(DESCRIPTION.contains("ALWAYS call this tool again"));
    }
}
