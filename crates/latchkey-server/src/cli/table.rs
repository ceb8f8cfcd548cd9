//! `--format table`: an operator command's JSON answer as plain text. A
//! list (the answer's one array of objects, e.g. `users` or `sessions`)
//! becomes a table with a header row; anything else one `key  value` line
//! per field.

use serde_json::Value;

/// The text of `answer`, ending in a newline-free last line.
pub fn render(answer: &Value) -> String {
    let Some(fields) = answer.as_object() else {
        return cell(answer);
    };
    let list = fields
        .iter()
        .find_map(|(_, v)| v.as_array().filter(|a| a.iter().all(Value::is_object)));
    match list {
        Some(rows) if fields.values().filter(|v| v.is_array()).count() == 1 => {
            let mut text = rows_table(rows);
            for (key, value) in fields.iter().filter(|(_, v)| !v.is_array()) {
                if !value.is_null() {
                    text.push_str(&format!("\n{key}: {}", cell(value)));
                }
            }
            text
        }
        _ => {
            let width = fields.keys().map(String::len).max().unwrap_or(0);
            fields
                .iter()
                .map(|(k, v)| format!("{k:width$}  {}", cell(v)))
                .collect::<Vec<_>>()
                .join("\n")
        }
    }
}

/// Columns are the first row's fields (in JSON's key order), each as wide as its widest cell.
fn rows_table(rows: &[Value]) -> String {
    let columns: Vec<&String> = rows
        .first()
        .and_then(Value::as_object)
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| columns.iter().map(|c| cell(&r[c.as_str()])).collect())
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            cells
                .iter()
                .map(|r| r[i].chars().count())
                .chain([c.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |values: Vec<&str>| {
        values
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    let mut out = vec![line(
        columns
            .iter()
            .map(|c| c.to_uppercase())
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str)
            .collect(),
    )];
    out.extend(
        cells
            .iter()
            .map(|r| line(r.iter().map(String::as_str).collect())),
    );
    out.join("\n")
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lists_become_tables_and_objects_lines() {
        let list = json!({"users": [{"id": "1", "username": "ann", "roles": ["a", "b"]},
                                    {"id": "22", "username": "bo", "roles": []}],
                          "next_cursor": null});
        assert_eq!(
            render(&list),
            "ID  ROLES  USERNAME\n1   a,b    ann\n22         bo"
        );
        let one = json!({"id": "1", "disabled": true, "email": null});
        assert_eq!(render(&one), "disabled  true\nemail     -\nid        1");
    }
}
