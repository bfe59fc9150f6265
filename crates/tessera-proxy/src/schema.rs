//! `tessera schema`: the JSON Schema of `proxy.yaml`, generated from the config structs, with
//! the filter and handler placeholders filled in from the registry, and each registered
//! resource's section added at the top level.

use crate::config::Config;
use crate::plugin::Registry;
use schemars::generate::SchemaSettings;
use serde_json::{json, Map, Value};

fn one_key_object(name: &str, schema: Value) -> Value {
    json!({
        "type": "object",
        "properties": { name: schema },
        "required": [name],
        "additionalProperties": false
    })
}

pub fn generate(registry: &Registry) -> Value {
    let mut generator = SchemaSettings::draft2020_12().into_generator();
    let root = generator.root_schema_for::<Config>();

    let mut filters = vec![json!({ "enum": registry.filter_names() })];
    for (name, f) in &registry.filters {
        filters.push(one_key_object(name, f.schema(&mut generator).to_value()));
    }
    let mut handlers = vec![json!({ "enum": registry.handler_names() })];
    for (name, h) in &registry.handlers {
        handlers.push(one_key_object(name, h.schema(&mut generator).to_value()));
    }

    let mut sections = Map::new();
    for (section, factory) in &registry.resources {
        sections.insert(section.clone(), factory.schema(&mut generator).to_value());
    }

    let mut root = root.to_value();
    if let Some(Value::Object(props)) = root.get_mut("properties") {
        props.extend(sections);
    }
    // Keys that are neither the engine's nor a resource's are refused.
    if let Some(obj) = root.as_object_mut() {
        obj.insert("additionalProperties".into(), Value::Bool(false));
    }
    let defs = root
        .as_object_mut()
        .expect("a root schema is an object")
        .entry("$defs")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(defs) = defs {
        for (k, v) in generator.definitions() {
            defs.entry(k.clone()).or_insert_with(|| v.clone());
        }
        defs.insert(
            "FilterSpec".into(),
            json!({ "description": "A filter: its name, or a one-key map {name: config}.", "oneOf": filters }),
        );
        defs.insert(
            "HandlerSpec".into(),
            json!({ "description": "A handler: its name, or a one-key map {name: config}.", "oneOf": handlers }),
        );
    }
    root
}
