//! The JSON Schema of `gateway.yaml`, generated from the `file` types that read it, so the
//! two cannot drift apart: `gateway schema` prints it, `config/gateway.schema.json` is the
//! committed copy editors load (a test keeps it current).
//!
//! The schema checks shape only (keys, types, enumerations, units, simple bounds). What needs
//! the whole file or the disk (a route's pool exists, a key file parses, two routes overlap)
//! only `gateway check` knows; no file the gateway accepts fails the schema.

use schemars::generate::SchemaSettings;
use schemars::transform::RecursiveTransform;
use schemars::Schema;

use super::file::TopFile;

/// The schema as pretty-printed JSON, with a final newline.
pub fn schema() -> String {
    render_schema::<TopFile>()
}

/// The JSON Schema of `T` as the gateway publishes its schemas: draft 7 (the newest draft
/// every YAML editor plugin reads), descriptions unwrapped, pretty, with a final newline.
pub(crate) fn render_schema<T: schemars::JsonSchema>() -> String {
    let generator = SchemaSettings::draft07()
        .with_transform(RecursiveTransform(unwrap_description))
        .into_generator();
    let schema = generator.into_root_schema_for::<T>();
    let mut text = serde_json::to_string_pretty(&schema).expect("a schema is plain JSON");
    text.push('\n');
    text
}

/// Doc comments are wrapped at 100 columns; an editor's hover wraps by itself, so a
/// description keeps only its paragraph breaks.
fn unwrap_description(schema: &mut Schema) {
    if let Some(serde_json::Value::String(text)) = schema.get_mut("description") {
        *text = text
            .split("\n\n")
            .map(|paragraph| {
                paragraph
                    .split('\n')
                    .map(str::trim)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect::<Vec<_>>()
            .join("\n\n");
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::schema;

    /// Every key an editor offers says what it does, and every key that may be left out says
    /// what leaving it out means (its default; `null` for "not set").
    #[test]
    fn every_key_has_a_description_and_every_optional_key_a_default() {
        let root: Value = serde_json::from_str(&schema()).unwrap();
        let mut missing = Vec::new();
        let mut objects = vec![("".to_owned(), &root)];
        for (name, def) in root["definitions"].as_object().unwrap() {
            objects.push((name.clone(), def));
        }
        let mut seen = 0;
        while let Some((at, node)) = objects.pop() {
            // Untagged enums hold their object forms in anyOf.
            for key in ["anyOf", "oneOf", "allOf"] {
                for (i, sub) in node[key].as_array().into_iter().flatten().enumerate() {
                    objects.push((format!("{at}.{key}[{i}]"), sub));
                }
            }
            let Some(properties) = node["properties"].as_object() else {
                continue;
            };
            let required: Vec<&str> = node["required"]
                .as_array()
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            for (key, property) in properties {
                seen += 1;
                let described = property["description"]
                    .as_str()
                    .is_some_and(|d| !d.is_empty());
                if !described {
                    missing.push(format!("{at}.{key}: no description"));
                }
                if !required.contains(&key.as_str()) && property.get("default").is_none() {
                    missing.push(format!("{at}.{key}: optional without a default"));
                }
                objects.push((format!("{at}.{key}"), property));
            }
        }
        assert!(
            seen > 150,
            "walked only {seen} keys: the schema's layout changed"
        );
        assert!(missing.is_empty(), "{}", missing.join("\n"));
    }
}
