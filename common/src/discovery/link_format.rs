//! CoRE link format (RFC 6690) as BRSKI discovery uses it: the links a `/.well-known/core`
//! answer lists, the query filter that selects them (§4.1), and a lenient reader of the links
//! another node sent. Sans I/O.

/// One link: its target (`</path>`, `<coaps://[addr]:port>`, `<>`) and its attributes in
/// order (RFC 6690 §2, §3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// The URI reference between `<` and `>`.
    pub target: String,
    /// `(name, value)`, the value unquoted; an attribute without a value has an empty one.
    pub attributes: Vec<(String, String)>,
}

impl Link {
    /// A link to `target` without attributes.
    pub fn new(target: impl Into<String>) -> Self {
        Self {
            target: target.into(),
            attributes: Vec::new(),
        }
    }

    /// The link with attribute `name=value` added.
    pub fn with(mut self, name: &str, value: impl Into<String>) -> Self {
        self.attributes.push((name.to_string(), value.into()));
        self
    }

    /// The value of the first attribute `name`.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the link has the relation type `rt` (a space-separated list, RFC 6690 §3.1).
    pub fn has_rt(&self, rt: &str) -> bool {
        self.attributes
            .iter()
            .any(|(n, v)| n == "rt" && v.split(' ').any(|t| t == rt))
    }

    /// Whether the query filter `name=want` selects the link (RFC 6690 §4.1: `href` filters
    /// on the target, any other name on that attribute; a trailing `*` matches a prefix;
    /// an attribute holding a space-separated list matches when one of its values does).
    pub fn selected_by(&self, name: &str, want: &str) -> bool {
        if name == "href" {
            return matches(&self.target, want);
        }
        self.attributes
            .iter()
            .any(|(n, v)| n == name && matches(v, want))
    }
}

impl std::fmt::Display for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<{}>", self.target)?;
        for (n, v) in &self.attributes {
            // Values that are not a plain token are quoted (RFC 6690 §2: ptoken or
            // quoted-string); numbers and relation types stay bare as the drafts show them.
            if v.is_empty() {
                write!(f, ";{n}")?;
            } else if v
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
            {
                write!(f, ";{n}={v}")?;
            } else {
                let escaped = v.replace('\\', "\\\\").replace('"', "\\\"");
                write!(f, ";{n}=\"{escaped}\"")?;
            }
        }
        Ok(())
    }
}

/// Whether `value` (a space-separated list, RFC 6690 §3) matches the filter `want`, which may
/// end in `*` for a prefix (RFC 6690 §4.1).
fn matches(value: &str, want: &str) -> bool {
    value.split(' ').any(|v| match want.strip_suffix('*') {
        Some(prefix) => v.starts_with(prefix),
        None => v == want,
    })
}

/// The links of `links` that the Uri-Query options `query` select (RFC 6690 §4.1: one filter
/// `name=value`; no query selects every link; a query that is not a filter selects none).
pub fn select<'a>(links: &'a [Link], query: &[String]) -> Vec<&'a Link> {
    match query.first() {
        None => links.iter().collect(),
        Some(q) => match q.split_once('=') {
            Some((name, want)) => links.iter().filter(|l| l.selected_by(name, want)).collect(),
            None => Vec::new(),
        },
    }
}

/// `links` in link format, comma-separated.
pub fn encode<'a>(links: impl IntoIterator<Item = &'a Link>) -> String {
    links
        .into_iter()
        .map(Link::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The links of a link-format document another node sent, read leniently: a link whose
/// target is not enclosed in `<>` ends the reading; attribute values may be quoted (and then
/// hold `,` and `;`), names are compared as sent.
pub fn parse(text: &str) -> Vec<Link> {
    let mut links = Vec::new();
    let mut rest = text.trim_start();
    while let Some(after) = rest.strip_prefix('<') {
        let Some(end) = after.find('>') else { break };
        let mut link = Link::new(&after[..end]);
        rest = &after[end + 1..];
        loop {
            rest = rest.trim_start();
            let Some(attr) = rest.strip_prefix(';') else {
                break;
            };
            let attr = attr.trim_start();
            let name_end = attr
                .find(|c: char| c == '=' || c == ';' || c == ',' || c.is_whitespace())
                .unwrap_or(attr.len());
            let name = &attr[..name_end];
            rest = &attr[name_end..];
            let value = match rest.strip_prefix('=') {
                Some(v) => {
                    let (value, after_value) = read_value(v);
                    rest = after_value;
                    value
                }
                None => String::new(),
            };
            if !name.is_empty() {
                link.attributes.push((name.to_string(), value));
            }
        }
        links.push(link);
        rest = rest.trim_start();
        match rest.strip_prefix(',') {
            Some(next) => rest = next.trim_start(),
            None => break,
        }
    }
    links
}

/// One attribute value (quoted-string with `\` escapes, or a token up to `;` or `,`) and what
/// follows it.
fn read_value(v: &str) -> (String, &str) {
    if let Some(quoted) = v.strip_prefix('"') {
        let mut value = String::new();
        let mut chars = quoted.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => return (value, &quoted[i + 1..]),
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(escaped);
                    }
                }
                c => value.push(c),
            }
        }
        (value, "")
    } else {
        let end = v.find([';', ',']).unwrap_or(v.len());
        (v[..end].trim().to_string(), &v[end..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Vec<String> {
        vec![s.to_string()]
    }

    #[test]
    fn rfc6690_2_links_encode_with_quotes_only_where_needed() {
        let l = Link::new("/.well-known/brski/vs")
            .with("rt", "brski.vs")
            .with("ct", "50 60");
        assert_eq!(
            l.to_string(),
            "</.well-known/brski/vs>;rt=brski.vs;ct=\"50 60\""
        );
        assert_eq!(
            Link::new("").with("brski-jp", "5684").to_string(),
            "<>;brski-jp=5684"
        );
    }

    #[test]
    fn rfc6690_4_1_filters_select_by_attribute_href_and_prefix() {
        let links = [
            Link::new("coaps://[fd00::1]:5684").with("rt", "brski"),
            Link::new("jpy://[fd00::1]:5685").with("rt", "brski.rjp"),
            Link::new("").with("brski-jp", "5684"),
        ];
        assert_eq!(select(&links, &[]).len(), 3);
        assert_eq!(select(&links, &q("rt=brski*")).len(), 2);
        assert_eq!(select(&links, &q("rt=brski")), vec![&links[0]]);
        assert_eq!(select(&links, &q("rt=brski.rjp")), vec![&links[1]]);
        assert_eq!(select(&links, &q("brski-jp=*")), vec![&links[2]]);
        assert_eq!(select(&links, &q("brski-jp=1")), Vec::<&Link>::new());
        assert_eq!(select(&links, &q("href=jpy*")), vec![&links[1]]);
        assert!(select(&links, &q("garbage")).is_empty());
    }

    #[test]
    fn rfc6690_parse_reads_back_what_encode_wrote_and_quoted_separators() {
        let links = vec![
            Link::new("coaps://[fd00::1]:5684/b").with("rt", "brski"),
            Link::new("/x").with("title", "a, b; c \"d\""),
            Link::new("").with("obs", ""),
        ];
        assert_eq!(parse(&encode(&links)), links);
        assert_eq!(
            parse("<>;brski-jp=\"8486\";var=\"c509 v2\" , </r>;rt=a"),
            vec![
                Link::new("")
                    .with("brski-jp", "8486")
                    .with("var", "c509 v2"),
                Link::new("/r").with("rt", "a"),
            ]
        );
        assert_eq!(parse("no link"), Vec::<Link>::new());
        assert_eq!(parse("<unterminated"), Vec::<Link>::new());
        assert!(parse("<a>;rt=\"x").first().is_some_and(|l| l.has_rt("x")));
    }
}
