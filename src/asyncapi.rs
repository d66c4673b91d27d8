//! The AsyncAPI 3.0 documents: one per module that publishes events, generated from the module table's
//! declared events. `shop openapi` writes them beside the OpenAPI documents (`openapi/<module>.asyncapi.json`)
//! and checks them for drift the same way.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use shop_kernel::events::{Event, EventInfo, SchemaRefs};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema as _, ToSchema as _};

use crate::modules::{ALL, ModuleDef};

/// The AsyncAPI version the documents are written in.
pub const ASYNCAPI_VERSION: &str = "3.0.0";

/// The suffix of an AsyncAPI document's file name (`<module>.asyncapi.json`).
pub const FILE_SUFFIX: &str = ".asyncapi.json";

/// The modules of the table that subscribe to `event_type`, in table order (each module's `subscribes_to`,
/// which is its contract's list: the relay and this document cannot disagree about it).
pub fn subscribers(event_type: &str) -> Vec<&'static str> {
    ALL.iter()
        .filter(|def| def.subscribes_to.contains(&event_type))
        .map(|def| def.name)
        .collect()
}

/// `user_registered` → `UserRegistered`: the component name of a payload schema. `EventInfo` carries no
/// type name, so the name is derived from the event's; later versions get a `V<n>` suffix so that every
/// version keeps its own schema.
fn payload_schema_name(local_name: &str, version: u32) -> String {
    let mut name: String = local_name
        .split('_')
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|first| first.to_uppercase().chain(chars).collect::<String>())
                .unwrap_or_default()
        })
        .collect();
    if version > 1 {
        name.push_str(&format!("V{version}"));
    }
    name
}

fn to_value(schema: &RefOr<Schema>, what: &str) -> Result<Value, String> {
    serde_json::to_value(schema).map_err(|e| format!("{what}: {e}"))
}

/// Adds a named schema; the same name with a different schema is an error rather than a silent overwrite.
fn add_schema(
    schemas: &mut BTreeMap<String, Value>,
    name: String,
    schema: Value,
) -> Result<(), String> {
    match schemas.get(&name) {
        Some(existing) if *existing != schema => Err(format!(
            "two different schemas are named {name}: rename one payload type"
        )),
        Some(_) => Ok(()),
        None => {
            schemas.insert(name, schema);
            Ok(())
        }
    }
}

fn add_refs(schemas: &mut BTreeMap<String, Value>, refs: SchemaRefs) -> Result<(), String> {
    for (name, mut schema) in refs {
        // The same pinning as in the OpenAPI documents, so both say which currency a `Money` carries.
        if name == shop_kernel::Money::name() {
            crate::openapi::pin_money_currency(&mut schema, crate::openapi::DOCUMENTED_CURRENCY);
        }
        let value = to_value(&schema, &name)?;
        add_schema(schemas, name, value)?;
    }
    Ok(())
}

fn info_description(module: &str) -> String {
    format!(
        "The events the {module} module publishes, one channel per event type (the channel address is the \
         type).\n\n\
         Every message is the `Event` envelope: `id` (UUID v7), `type` (`<module>.<name>`), `version` (the \
         payload's version), `occurred_at` (when the change happened) and the `payload` that type and version \
         declare. A change to a payload that is not backward compatible is published as a new version: \
         another message in the same channel.\n\n\
         Delivery is at least once and unordered. The module writes each event to its outbox in the \
         transaction of the change, and a relay delivers it with retries and backoff, so a subscriber may \
         receive an event more than once and in any order relative to other events: it deduplicates by `id` \
         (its inbox) and must not depend on order.\n\n\
         Transport today: the relay calls each subscriber's contract operation `handle_event` — in-process \
         when the subscriber runs in the same process, otherwise `POST /internal/<subscriber>/handle_event` \
         with the JSON body `{{\"event\": <Event>}}` and the service credential (see the subscriber's OpenAPI \
         document, `<subscriber>.json`). A broker may carry the same messages later; the channels and messages \
         stay as documented here."
    )
}

fn subscribers_description(subscribers: &[&str]) -> String {
    if subscribers.is_empty() {
        return "Subscribers: none yet.".to_string();
    }
    let list: Vec<String> = subscribers
        .iter()
        .map(|s| format!("`{s}` (`POST /internal/{s}/handle_event` when it runs elsewhere)"))
        .collect();
    format!("Subscribers: {}.", list.join(", "))
}

/// The AsyncAPI document of one module's events.
fn module_document(def: &ModuleDef) -> Result<Value, String> {
    let module = def.name;
    let mut schemas = BTreeMap::new();
    let envelope = Event::name().to_string();
    let mut refs = SchemaRefs::new();
    Event::schemas(&mut refs);
    add_refs(&mut schemas, refs)?;
    add_schema(
        &mut schemas,
        envelope.clone(),
        to_value(&Event::schema(), &envelope)?,
    )?;

    // Versions of one event type share a channel, so group them by type (in declaration order).
    let mut by_type: Vec<(&str, Vec<&EventInfo>)> = Vec::new();
    for info in def.events {
        match by_type.iter_mut().find(|(name, _)| *name == info.name) {
            Some((_, versions)) => versions.push(info),
            None => by_type.push((info.name, vec![info])),
        }
    }

    let mut channels = serde_json::Map::new();
    let mut operations = serde_json::Map::new();
    for (event_type, versions) in by_type {
        let local = event_type
            .strip_prefix(module)
            .and_then(|rest| rest.strip_prefix('.'))
            .filter(|rest| !rest.is_empty())
            .ok_or_else(|| {
                format!("{module}: the event {event_type} is not named {module}.<name>")
            })?;
        let subscribers = subscribers(event_type);
        let mut messages = serde_json::Map::new();
        let mut message_refs = Vec::new();
        for info in &versions {
            let mut refs = SchemaRefs::new();
            let payload = (info.schema)(&mut refs);
            add_refs(&mut schemas, refs)?;
            let payload_name = payload_schema_name(local, info.version);
            add_schema(
                &mut schemas,
                payload_name.clone(),
                to_value(&payload, &payload_name)?,
            )?;
            let message_id = format!("{local}_v{}", info.version);
            messages.insert(
                message_id.clone(),
                json!({
                    "name": format!("{event_type}.v{}", info.version),
                    "title": format!("{event_type} v{}", info.version),
                    "summary": info.summary,
                    "contentType": "application/json",
                    "payload": {
                        "allOf": [
                            { "$ref": format!("#/components/schemas/{envelope}") },
                            {
                                "type": "object",
                                "properties": {
                                    "type": { "const": event_type },
                                    "version": { "const": info.version },
                                    "payload": { "$ref": format!("#/components/schemas/{payload_name}") }
                                }
                            }
                        ]
                    }
                }),
            );
            message_refs
                .push(json!({ "$ref": format!("#/channels/{local}/messages/{message_id}") }));
        }
        let summary = versions.last().map(|info| info.summary).unwrap_or_default();
        channels.insert(
            local.to_string(),
            json!({
                "address": event_type,
                "title": event_type,
                "summary": summary,
                "description": subscribers_description(&subscribers),
                "messages": messages,
                "x-shop-subscribers": subscribers,
            }),
        );
        operations.insert(
            format!("send_{local}"),
            json!({
                "action": "send",
                "channel": { "$ref": format!("#/channels/{local}") },
                "title": format!("{module} publishes {event_type}"),
                "summary": summary,
                "description": format!(
                    "{module} writes the event to its outbox in the transaction of the change; its relay \
                     delivers it at least once, in no particular order, to every subscriber. {}",
                    subscribers_description(&subscribers)
                ),
                "messages": message_refs,
            }),
        );
    }

    Ok(json!({
        "asyncapi": ASYNCAPI_VERSION,
        "id": format!("urn:shop:{module}:events"),
        "info": {
            "title": format!("shop {module} events"),
            "version": env!("CARGO_PKG_VERSION"),
            "description": info_description(module),
            "license": { "name": env!("CARGO_PKG_LICENSE") },
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": { "schemas": schemas },
    }))
}

/// One document per module that publishes events, by file name (`<module>.asyncapi.json`).
pub fn documents() -> Result<Vec<(String, Value)>, String> {
    ALL.iter()
        .filter(|def| !def.events.is_empty())
        .map(|def| Ok((format!("{}{FILE_SUFFIX}", def.name), module_document(def)?)))
        .collect()
}

/// The exact bytes written for a document: pretty JSON with a trailing newline, like the OpenAPI files.
pub fn render(doc: &Value) -> Result<String, String> {
    serde_json::to_string_pretty(doc)
        .map(|mut s| {
            s.push('\n');
            s
        })
        .map_err(|e| e.to_string())
}

/// Every document rendered, by file name.
pub fn rendered() -> Result<Vec<(String, String)>, String> {
    documents()?
        .into_iter()
        .map(|(name, doc)| Ok((name, render(&doc)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn the_committed_asyncapi_documents_match_the_code() -> Result<(), String> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi");
        let mut drift = Vec::new();
        for (name, expected) in rendered()? {
            if std::fs::read_to_string(dir.join(&name)).unwrap_or_default() != expected {
                drift.push(name);
            }
        }
        assert!(
            drift.is_empty(),
            "openapi/ is stale ({drift:?}): run `cargo run -- openapi`"
        );
        Ok(())
    }

    fn collect_refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                for (key, v) in map {
                    match (key.as_str(), v) {
                        ("$ref", Value::String(r)) => out.push(r),
                        _ => collect_refs(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn every_publishing_module_documents_its_events_with_resolvable_schemas() -> Result<(), String>
    {
        let docs = documents()?;
        let publishers: Vec<&str> = ALL
            .iter()
            .filter(|d| !d.events.is_empty())
            .map(|d| d.name)
            .collect();
        assert_eq!(
            docs.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
            publishers
                .iter()
                .map(|m| format!("{m}{FILE_SUFFIX}"))
                .collect::<Vec<_>>()
        );
        for ((name, doc), module) in docs.iter().zip(&publishers) {
            assert_eq!(doc["asyncapi"], "3.0.0", "{name}");
            let def = crate::modules::find(module).ok_or("not in the table")?;
            let channels = doc["channels"].as_object().ok_or("no channels")?;
            for info in def.events {
                let (id, channel) = channels
                    .iter()
                    .find(|(_, c)| c["address"] == info.name)
                    .ok_or_else(|| format!("{name}: no channel for {}", info.name))?;
                let message = channel["messages"]
                    .as_object()
                    .and_then(|m| {
                        m.values().find(|m| {
                            m["payload"]["allOf"][1]["properties"]["version"]["const"]
                                == info.version
                        })
                    })
                    .ok_or_else(|| format!("{name}: no message for {info:?}"))?;
                let payload_ref = message["payload"]["allOf"][1]["properties"]["payload"]["$ref"]
                    .as_str()
                    .ok_or_else(|| format!("{name}: {info:?} has no payload schema"))?;
                assert!(
                    payload_ref.starts_with("#/components/schemas/"),
                    "{payload_ref}"
                );
                let sends = doc["operations"]
                    .as_object()
                    .ok_or("no operations")?
                    .values()
                    .any(|op| {
                        op["action"] == "send"
                            && op["channel"]["$ref"] == format!("#/channels/{id}")
                    });
                assert!(sends, "{name}: no send operation for {}", info.name);
            }
            let mut refs = Vec::new();
            collect_refs(doc, &mut refs);
            assert!(!refs.is_empty(), "{name}");
            for r in refs {
                let pointer = r
                    .strip_prefix('#')
                    .ok_or_else(|| format!("{name}: {r} is not local"))?;
                assert!(doc.pointer(pointer).is_some(), "{name}: {r} points nowhere");
            }
        }
        Ok(())
    }

    #[test]
    fn subscriptions_name_modules_of_the_table_and_events_someone_publishes() {
        for def in ALL {
            let module = &def.name;
            for t in def.subscribes_to {
                assert!(
                    ALL.iter().any(|d| d.events.iter().any(|e| e.name == *t)),
                    "{module} subscribes to {t}, which no module publishes"
                );
                assert!(subscribers(t).contains(module), "{t}");
            }
        }
    }

    #[test]
    fn payload_schema_names_follow_the_event_name() {
        assert_eq!(payload_schema_name("user_registered", 1), "UserRegistered");
        assert_eq!(
            payload_schema_name("order_confirmed", 2),
            "OrderConfirmedV2"
        );
    }
}
