//! A strict reader of the Prometheus text exposition format (0.0.4), for
//! tests that scrape `/metrics`: every line must be a comment, a `# HELP` or
//! `# TYPE` line or a well-formed sample of a family whose type was declared
//! before it, and no series may appear twice.

use std::collections::{BTreeMap, HashMap, HashSet};

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A parsed scrape.
#[derive(Debug, Default)]
pub struct Exposition {
    /// Family name → declared type.
    pub types: HashMap<String, String>,
    pub samples: Vec<Sample>,
}

impl Exposition {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut out = Exposition::default();
        let mut seen = HashSet::new();
        for (n, line) in text.lines().enumerate() {
            let fail = |why: &str| format!("line {}: {why}: {line:?}", n + 1);
            if line.trim().is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').ok_or_else(|| fail("bad TYPE"))?;
                if !is_metric_name(name) {
                    return Err(fail("bad metric name"));
                }
                if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                    return Err(fail("unknown type"));
                }
                if out.types.insert(name.to_owned(), kind.to_owned()).is_some() {
                    return Err(fail("second TYPE for a family"));
                }
                continue;
            }
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap_or_default();
                if !is_metric_name(name) {
                    return Err(fail("bad metric name in HELP"));
                }
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let sample = parse_sample(line).map_err(|why| fail(&why))?;
            if out.family_of(&sample.name).is_none() {
                return Err(fail("sample of a family with no TYPE before it"));
            }
            if !seen.insert((sample.name.clone(), sample.labels.clone())) {
                return Err(fail("series appears twice"));
            }
            out.samples.push(sample);
        }
        Ok(out)
    }

    /// The declared family a sample name belongs to (`x_bucket`, `x_sum`
    /// and `x_count` belong to histogram or summary `x`).
    pub fn family_of(&self, sample: &str) -> Option<&str> {
        if let Some((name, _)) = self.types.get_key_value(sample) {
            return Some(name);
        }
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = sample.strip_suffix(suffix) {
                if let Some((name, kind)) = self.types.get_key_value(base) {
                    if kind == "histogram" || (kind == "summary" && suffix != "_bucket") {
                        return Some(name);
                    }
                }
            }
        }
        None
    }

    /// The sum of the samples named `name` whose labels include `labels`
    /// (0 if there are none: a counter not yet incremented is absent).
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
            .sum()
    }

    /// The samples named `name`.
    pub fn series(&self, name: &str) -> Vec<&Sample> {
        self.samples.iter().filter(|s| s.name == name).collect()
    }
}

fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or_else(|| "no value".to_owned())?;
    let name = &line[..name_end];
    if !is_metric_name(name) {
        return Err("bad metric name".into());
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(after) = rest.strip_prefix('{') {
        let mut chars = after.char_indices().peekable();
        loop {
            let start = match chars.peek() {
                Some((_, '}')) => {
                    chars.next();
                    break;
                }
                Some((i, _)) => *i,
                None => return Err("unterminated labels".into()),
            };
            let eq = after[start..]
                .find('=')
                .ok_or_else(|| "label without =".to_owned())?;
            let key = &after[start..start + eq];
            if !is_label_name(key) {
                return Err(format!("bad label name {key:?}"));
            }
            for _ in 0..=eq {
                chars.next();
            }
            if chars.next().map(|(_, c)| c) != Some('"') {
                return Err("label value not quoted".into());
            }
            let mut value = String::new();
            loop {
                match chars.next() {
                    Some((_, '\\')) => match chars.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, '\\')) => value.push('\\'),
                        Some((_, '"')) => value.push('"'),
                        _ => return Err("bad escape in label value".into()),
                    },
                    Some((_, '"')) => break,
                    Some((_, c)) => value.push(c),
                    None => return Err("unterminated label value".into()),
                }
            }
            if labels.insert(key.to_owned(), value).is_some() {
                return Err(format!("label {key} twice"));
            }
            match chars.next() {
                Some((_, ',')) => {}
                Some((_, '}')) => break,
                _ => return Err("expected , or } after a label".into()),
            }
        }
        let consumed = chars.peek().map_or(after.len(), |(i, _)| *i);
        rest = &after[consumed..];
    }
    let mut fields = rest
        .strip_prefix(' ')
        .ok_or_else(|| "no space before the value".to_owned())?
        .split(' ');
    let value = match fields.next() {
        Some("+Inf") => f64::INFINITY,
        Some("-Inf") => f64::NEG_INFINITY,
        Some("NaN") => f64::NAN,
        Some(v) => v.parse::<f64>().map_err(|_| format!("bad value {v:?}"))?,
        None => return Err("no value".into()),
    };
    if let Some(ts) = fields.next() {
        ts.parse::<i64>()
            .map_err(|_| format!("bad timestamp {ts:?}"))?;
    }
    if fields.next().is_some() {
        return Err("trailing fields".into());
    }
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_well_formed_scrape_and_refuses_malformed_ones() {
        let text = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\",y=\"q\\\"\"} 3\n\n\
                    # TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 0.5\nh_count 2\n";
        let e = Exposition::parse(text).expect("parse");
        assert_eq!(e.sum("a_total", &[("x", "1")]), 3.0);
        assert_eq!(e.sum("a_total", &[("y", "q\"")]), 3.0);
        assert_eq!(e.sum("h_count", &[]), 2.0);
        for bad in [
            "a_total 1\n",
            "# TYPE a counter\na{x=1} 1\n",
            "# TYPE a counter\na 1\na 2\n",
            "# TYPE a counter\na one\n",
            "# TYPE a counter\na{x=\"1\" 1\n",
            "# TYPE a kind\n",
        ] {
            assert!(Exposition::parse(bad).is_err(), "{bad}");
        }
    }
}
