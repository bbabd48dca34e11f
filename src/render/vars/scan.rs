//! Which template variables a Tera source reads. Tera keeps no list of the variables a template
//! reads, so this scans the source: `{{ … }}` and `{% … %}` only, outside string literals,
//! comments and `{% raw %}` blocks. It errs on the side of refusing (`vars` read as a whole).

use std::collections::BTreeSet;

/// One read of the template variables found in a template's source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    /// `None` when the template reads `vars` as a whole (`{% for k in vars %}`), which cannot be
    /// checked against the declarations.
    pub name: Option<String>,
    /// Byte offset of `vars` in the source.
    pub offset: usize,
}

/// What a template's source reads and pulls in.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Scan {
    pub reads: Vec<Read>,
    /// Templates named by `include`, `extends` and `import` tags.
    pub references: BTreeSet<String>,
}

/// Finds the `vars` reads and the templates pulled in.
pub fn scan(text: &str) -> Scan {
    let mut out = Scan::default();
    let mut i = 0;
    while let Some(rel) = text[i..].find('{') {
        let start = i + rel;
        match text.as_bytes().get(start + 1) {
            Some(b'#') => {
                i = text[start + 2..]
                    .find("#}")
                    .map_or(text.len(), |e| start + 2 + e + 2);
            }
            Some(&open @ (b'{' | b'%')) => {
                let close = if open == b'{' { "}}" } else { "%}" };
                let body_start = start + 2;
                let end = find_close(text, body_start, close);
                let body = &text[body_start..end];
                i = (end + 2).min(text.len());
                if open == b'%' {
                    match tag_name(body) {
                        "raw" => {
                            i = end_of_raw(text, i);
                            continue;
                        }
                        "include" | "extends" | "import" => {
                            out.references.extend(strings(body));
                        }
                        _ => {}
                    }
                }
                reads(body, body_start, &mut out.reads);
            }
            _ => i = start + 1,
        }
    }
    out
}

/// The index of `close` after `from`, skipping string literals; the end of the text if none.
fn find_close(text: &str, from: usize, close: &str) -> usize {
    let mut quote: Option<char> = None;
    for (k, c) in text[from..].char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if matches!(c, '"' | '\'' | '`') => quote = Some(c),
            None if text[from + k..].starts_with(close) => return from + k,
            None => {}
        }
    }
    text.len()
}

fn tag_name(body: &str) -> &str {
    let body = body.trim_start_matches('-').trim_start();
    let end = body
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(body.len());
    &body[..end]
}

/// Past the `{% endraw %}` that closes a raw block starting at `from`.
fn end_of_raw(text: &str, mut from: usize) -> usize {
    while let Some(rel) = text[from..].find("{%") {
        let start = from + rel;
        let end = find_close(text, start + 2, "%}");
        from = (end + 2).min(text.len());
        if tag_name(&text[start + 2..end]) == "endraw" {
            return from;
        }
    }
    text.len()
}

/// The string literals in a tag body.
fn strings(body: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = body.char_indices();
    while let Some((k, c)) = chars.next() {
        if matches!(c, '"' | '\'' | '`') {
            let rest = &body[k + 1..];
            let len = rest.find(c).unwrap_or(rest.len());
            out.push(rest[..len].to_owned());
            chars.nth(rest[..len].chars().count());
        }
    }
    out
}

fn reads(body: &str, base: usize, out: &mut Vec<Read>) {
    let bytes = body.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut k = 0;
    while k < bytes.len() {
        let b = bytes[k];
        if matches!(b, b'"' | b'\'' | b'`') {
            k = body[k + 1..]
                .find(b as char)
                .map_or(bytes.len(), |e| k + 1 + e + 1);
            continue;
        }
        if !(b.is_ascii_alphabetic() || b == b'_')
            || (k > 0 && (ident(bytes[k - 1]) || bytes[k - 1] == b'.'))
        {
            k += 1;
            continue;
        }
        let end = (k..bytes.len())
            .find(|&e| !ident(bytes[e]))
            .unwrap_or(bytes.len());
        if &body[k..end] == "vars" {
            let name = match bytes.get(end) {
                Some(b'.') => {
                    let after = end + 1;
                    let stop = (after..bytes.len())
                        .find(|&e| !ident(bytes[e]))
                        .unwrap_or(bytes.len());
                    (stop > after).then(|| body[after..stop].to_owned())
                }
                Some(b'[') => {
                    let quoted = &body[end + 1..];
                    quoted
                        .chars()
                        .next()
                        .filter(|q| matches!(q, '"' | '\''))
                        .and_then(|q| {
                            let inner = &quoted[1..];
                            let close = inner.find(q)?;
                            inner[close + 1..]
                                .starts_with(']')
                                .then(|| inner[..close].to_owned())
                        })
                }
                _ => None,
            };
            out.push(Read {
                name,
                offset: base + k,
            });
        }
        k = end;
    }
}

/// 1-based line and column of a byte offset.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before[before.rfind('\n').map_or(0, |n| n + 1)..]
        .chars()
        .count()
        + 1;
    (line, column)
}
