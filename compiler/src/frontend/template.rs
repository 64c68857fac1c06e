//! Templates: text with `${...}` references to inputs, nodes and scope variables.
//!
//! `${inputs.name}`, `${node}`, `${node.field.0}`, `${item}`; `$${` writes a literal `${`.

use serde::Serialize;

/// What a reference names before resolution: an input, or a node / scope variable.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum RefRoot {
    Input(String),
    Name(String),
}

/// A parsed `${...}` reference. `offset` is its byte offset in the template's text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Reference {
    pub root: RefRoot,
    pub path: Vec<String>,
    pub offset: usize,
    pub text: String,
}

impl Reference {
    /// The name as written, without `${}`: `inputs.q`, `node.field`.
    pub fn display(&self) -> String {
        self.text.clone()
    }

    pub fn root_display(&self) -> String {
        match &self.root {
            RefRoot::Input(name) => format!("inputs.{name}"),
            RefRoot::Name(name) => name.clone(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Segment {
    Text(String),
    Ref(Reference),
}

/// A parsed template.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize)]
pub struct Template {
    pub source: String,
    pub segments: Vec<Segment>,
}

/// A malformed placeholder, at byte `offset` of the template text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateError {
    pub offset: usize,
    pub message: String,
    pub hint: String,
}

const REF_HINT: &str = "a reference looks like `${node}`, `${node.field}`, `${inputs.name}`; write `$${` for a literal `${`";

impl Template {
    pub fn parse(source: &str) -> Result<Template, TemplateError> {
        let mut segments = Vec::new();
        let mut text = String::new();
        let mut rest = source;
        let mut offset = 0;
        while let Some(i) = rest.find('$') {
            text.push_str(&rest[..i]);
            let after = &rest[i..];
            if let Some(stripped) = after.strip_prefix("$${") {
                text.push_str("${");
                rest = stripped;
                offset += i + 3;
            } else if let Some(body_and_rest) = after.strip_prefix("${") {
                let start = offset + i;
                let Some(close) = body_and_rest.find('}') else {
                    return Err(TemplateError {
                        offset: start,
                        message: "unclosed placeholder `${`".into(),
                        hint: REF_HINT.into(),
                    });
                };
                let body = &body_and_rest[..close];
                let reference = parse_reference(body, start)?;
                if !text.is_empty() {
                    segments.push(Segment::Text(std::mem::take(&mut text)));
                }
                segments.push(Segment::Ref(reference));
                rest = &body_and_rest[close + 1..];
                offset = start + 2 + close + 1;
            } else {
                text.push('$');
                rest = &after[1..];
                offset += i + 1;
            }
        }
        text.push_str(rest);
        if !text.is_empty() {
            segments.push(Segment::Text(text));
        }
        Ok(Template {
            source: source.to_string(),
            segments,
        })
    }

    pub fn refs(&self) -> impl Iterator<Item = &Reference> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Ref(r) => Some(r),
            Segment::Text(_) => None,
        })
    }

    /// The single reference this template consists of, with no text around it.
    pub fn sole_ref(&self) -> Option<&Reference> {
        match self.segments.as_slice() {
            [Segment::Ref(r)] => Some(r),
            _ => None,
        }
    }
}

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_field(s: &str) -> bool {
    is_ident(s) || (!s.is_empty() && s.chars().all(|c| c.is_ascii_digit()))
}

/// Parses the inside of `${...}` (`body`), found at byte `offset` of the template.
pub fn parse_reference(body: &str, offset: usize) -> Result<Reference, TemplateError> {
    let bad = |message: String| TemplateError {
        offset,
        message,
        hint: REF_HINT.into(),
    };
    let trimmed = body.trim();
    if trimmed.is_empty() {
        return Err(bad("empty placeholder `${}`".into()));
    }
    let parts: Vec<&str> = trimmed.split('.').collect();
    if !is_ident(parts[0]) || !parts[1..].iter().all(|p| is_field(p)) {
        return Err(bad(format!("malformed placeholder `${{{body}}}`")));
    }
    let (root, path) = if parts[0] == "inputs" {
        match parts.get(1) {
            Some(name) if is_ident(name) => (RefRoot::Input(name.to_string()), &parts[2..]),
            _ => {
                return Err(bad(
                    "`${inputs}` needs an input name, as in `${inputs.question}`".into(),
                ));
            }
        }
    } else {
        (RefRoot::Name(parts[0].to_string()), &parts[1..])
    };
    Ok(Reference {
        root,
        path: path.iter().map(|p| p.to_string()).collect(),
        offset,
        text: trimmed.to_string(),
    })
}

/// Renders a template with each reference replaced by `f(reference)`, escaping literal `${`.
pub fn render_with(template: &Template, mut f: impl FnMut(&Reference) -> String) -> String {
    let mut out = String::new();
    for segment in &template.segments {
        match segment {
            Segment::Text(t) => out.push_str(&t.replace("${", "$${")),
            Segment::Ref(r) => out.push_str(&f(r)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(src: &str) -> Vec<String> {
        Template::parse(src)
            .unwrap()
            .refs()
            .map(|r| format!("{}@{}", r.display(), r.offset))
            .collect()
    }

    #[test]
    fn parses_references_and_escapes() {
        assert_eq!(
            refs("Q: ${inputs.q} A: ${ans.items.0} $5 $${lit}"),
            vec!["inputs.q@3", "ans.items.0@18"]
        );
        // Escapes are read left to right: `$` then `$${`, so no reference here.
        let t = Template::parse("cost $$${x}").unwrap();
        assert_eq!(t.segments, vec![Segment::Text("cost $${x}".into())]);
        let t = Template::parse("$ ${x}").unwrap();
        assert_eq!(
            t.segments,
            vec![
                Segment::Text("$ ".into()),
                Segment::Ref(parse_reference("x", 2).unwrap())
            ]
        );
        let t = Template::parse("a $${b} c").unwrap();
        assert_eq!(t.segments, vec![Segment::Text("a ${b} c".into())]);
        assert_eq!(render_with(&t, |_| String::new()), "a $${b} c");
    }

    #[test]
    fn rejects_bad_placeholders_with_exact_messages() {
        let e = |s: &str| Template::parse(s).unwrap_err();
        assert_eq!(e("x ${").message, "unclosed placeholder `${`");
        assert_eq!(e("x ${").offset, 2);
        assert_eq!(e("${}").message, "empty placeholder `${}`");
        assert_eq!(e("${a b}").message, "malformed placeholder `${a b}`");
        assert_eq!(e("${a..b}").message, "malformed placeholder `${a..b}`");
        assert_eq!(
            e("${inputs}").message,
            "`${inputs}` needs an input name, as in `${inputs.question}`"
        );
    }

    #[test]
    fn sole_ref_only_without_text() {
        assert!(Template::parse("${a}").unwrap().sole_ref().is_some());
        assert!(Template::parse(" ${a}").unwrap().sole_ref().is_none());
    }
}
