//! The metrics as JSON (`GET /api/events/metrics` with `Accept: application/json`): the
//! OpenMetrics text the registry writes, read back into families and samples, so both forms
//! always hold the same values.

use serde_json::{Map, Value, json};

/// Turns OpenMetrics text into `{"metrics":[{"name","type","help","unit","samples":[{"name",
/// "labels":{..},"value"}]}]}`. Values that are not finite numbers (`+Inf`, `NaN`) are strings.
///
/// ```
/// let text = "# TYPE evlog_x counter\n# HELP evlog_x Things.\nevlog_x_total{h=\"a\"} 3\n# EOF\n";
/// let json = evlog::metrics::text_to_json(text);
/// assert_eq!(json["metrics"][0]["samples"][0]["value"], 3.0);
/// assert_eq!(json["metrics"][0]["samples"][0]["labels"]["h"], "a");
/// ```
pub fn text_to_json(text: &str) -> Value {
    let mut families: Vec<Map<String, Value>> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (Some(kind), Some(name)) = (parts.next(), parts.next()) else {
                continue;
            };
            let value = parts.next().unwrap_or("");
            let key = match kind {
                "TYPE" => "type",
                "HELP" => "help",
                "UNIT" => "unit",
                _ => continue,
            };
            if families.last().is_none_or(|f| f["name"] != name) {
                let mut f = Map::new();
                f.insert("name".into(), json!(name));
                f.insert("samples".into(), json!([]));
                families.push(f);
            }
            let f = families.last_mut().expect("pushed above");
            f.insert(key.into(), json!(value));
            continue;
        }
        let Some(sample) = parse_sample(line) else {
            continue;
        };
        if let Some(Value::Array(samples)) = families.last_mut().and_then(|f| f.get_mut("samples"))
        {
            samples.push(sample);
        }
    }
    json!({ "metrics": families })
}

/// `name{k="v",...} value`.
fn parse_sample(line: &str) -> Option<Value> {
    let (name, rest) = match line.find('{') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => {
            let (name, value) = line.split_once(' ')?;
            return Some(json!({"name": name, "labels": {}, "value": number(value)}));
        }
    };
    let mut labels = Map::new();
    let mut chars = rest.char_indices().peekable();
    let mut key = String::new();
    let end = loop {
        let (i, c) = chars.next()?;
        match c {
            '}' => break i,
            ',' => {}
            '=' => {
                if chars.next()?.1 != '"' {
                    return None;
                }
                let mut value = String::new();
                loop {
                    match chars.next()?.1 {
                        '"' => break,
                        '\\' => match chars.next()?.1 {
                            'n' => value.push('\n'),
                            other => value.push(other),
                        },
                        c => value.push(c),
                    }
                }
                labels.insert(std::mem::take(&mut key), json!(value));
            }
            c => key.push(c),
        }
    };
    let value = rest[end + 1..].trim();
    let value = value.split(' ').next().unwrap_or("");
    Some(json!({"name": name, "labels": labels, "value": number(value)}))
}

fn number(s: &str) -> Value {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() => json!(v),
        _ => json!(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_samples_escapes_and_infinities() {
        let text = "# HELP evlog_d Time.\n# TYPE evlog_d histogram\n# UNIT evlog_d seconds\n\
                    evlog_d_sum{handler=\"a \\\"b\\\"\",event_type=\"T\"} 0.5\n\
                    evlog_d_bucket{le=\"+Inf\",handler=\"x\"} 2\n\
                    # TYPE evlog_g gauge\nevlog_g 7\n# EOF\n";
        let j = text_to_json(text);
        let m = j["metrics"].as_array().unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(
            (&m[0]["type"], &m[0]["unit"], &m[0]["help"]),
            (&json!("histogram"), &json!("seconds"), &json!("Time."))
        );
        assert_eq!(m[0]["samples"][0]["labels"]["handler"], "a \"b\"");
        assert_eq!(m[0]["samples"][0]["value"], 0.5);
        assert_eq!(m[0]["samples"][1]["labels"]["le"], "+Inf");
        assert_eq!(
            m[1]["samples"][0],
            json!({"name":"evlog_g","labels":{},"value":7.0})
        );
    }
}
