//! The YAML tree of an environment with the provenance of every node, and the operations that must
//! keep it: `extends:` merging, finding the node behind a key path, and the secret scan.
//!
//! Each node's marker carries the index of the file it was read from, so after merging a child over
//! its parents an error still points at the file and line that set the offending value.

use marked_yaml::Node;
use marked_yaml::types::{MarkedMappingNode, MarkedScalarNode};

use super::diagnostic::Location;

/// The files an environment was read from; a marker's `source()` indexes into it.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    files: Vec<String>,
}

impl Sources {
    pub fn add(&mut self, file: impl Into<String>) -> usize {
        self.files.push(file.into());
        self.files.len() - 1
    }

    pub fn file(&self, index: usize) -> &str {
        self.files
            .get(index)
            .map(String::as_str)
            .unwrap_or("<unknown>")
    }

    pub fn location(&self, marker: Option<&marked_yaml::Marker>) -> Option<Location> {
        marker.map(|m| Location {
            file: self.file(m.source()).to_owned(),
            line: m.line(),
            column: m.column(),
        })
    }
}

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// A key path such as `foundry.deployments[0].sku.capacity`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPath(pub Vec<Segment>);

impl KeyPath {
    /// Parses the form serde's path tracker prints (`a.b[0].c`); keys never contain `.` or `[` in
    /// our schema, except in free maps, where a miss just points at the parent.
    pub fn parse(text: &str) -> KeyPath {
        let mut segments = Vec::new();
        for part in text.split('.').filter(|p| !p.is_empty() && *p != "?") {
            let mut rest = part;
            if let Some(open) = rest.find('[') {
                let key = &rest[..open];
                if !key.is_empty() {
                    segments.push(Segment::Key(key.to_owned()));
                }
                rest = &rest[open..];
                while let Some(stripped) = rest.strip_prefix('[') {
                    let close = stripped.find(']').unwrap_or(stripped.len());
                    if let Ok(i) = stripped[..close].parse() {
                        segments.push(Segment::Index(i));
                    }
                    rest = stripped.get(close + 1..).unwrap_or("");
                }
            } else {
                segments.push(Segment::Key(rest.to_owned()));
            }
        }
        KeyPath(segments)
    }

    pub fn key(&self, key: &str) -> KeyPath {
        let mut p = self.clone();
        p.0.push(Segment::Key(key.to_owned()));
        p
    }

    pub fn index(&self, i: usize) -> KeyPath {
        let mut p = self.clone();
        p.0.push(Segment::Index(i));
        p
    }
}

impl std::fmt::Display for KeyPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            match s {
                Segment::Key(k) if i == 0 => f.write_str(k)?,
                Segment::Key(k) => write!(f, ".{k}")?,
                Segment::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// Merges `child` over `parent`: maps key by key, lists and scalars replace (the documented
/// `extends:` rule). Keys keep the child's markers so errors point at the file that set them.
pub fn merge(parent: Node, child: Node) -> Node {
    match (parent, child) {
        (Node::Mapping(mut base), Node::Mapping(over)) => {
            for (key, value) in over.iter() {
                let merged = match base.get(key) {
                    Some(existing) => merge(existing.clone(), value.clone()),
                    None => value.clone(),
                };
                // Remove first so the child's key (and its marker) replaces the parent's.
                base.remove(key);
                base.insert(key.clone(), merged);
            }
            Node::Mapping(base)
        }
        (_, child) => child,
    }
}

/// Where a key path is: the key of the deepest existing map entry on the path (the eye looks at the
/// key), or the element for list items. A path that leaves the tree points at its last existing node.
/// Map lookups here and in [`get`] are hashed: the checker looks up every key of a map (each
/// `policy.vars` entry), and a scan per lookup made that quadratic.
pub fn locate<'a>(root: &'a Node, path: &KeyPath) -> Option<&'a marked_yaml::Marker> {
    let mut node = root;
    let mut marker = root.span().start();
    for segment in &path.0 {
        match (segment, node) {
            (Segment::Key(k), Node::Mapping(map)) => match map.get_key_value(k.as_str()) {
                Some((key, value)) => {
                    marker = key.span().start().or(marker);
                    node = value;
                }
                None => break,
            },
            (Segment::Index(i), Node::Sequence(seq)) => match seq.get(*i) {
                Some(item) => {
                    marker = item.span().start().or(marker);
                    node = item;
                }
                None => break,
            },
            _ => break,
        }
    }
    marker
}

/// The value node at a path, if the whole path exists.
pub fn get<'a>(root: &'a Node, path: &KeyPath) -> Option<&'a Node> {
    let mut node = root;
    for segment in &path.0 {
        node = match (segment, node) {
            (Segment::Key(k), Node::Mapping(map)) => map.get_node(k)?,
            (Segment::Index(i), Node::Sequence(seq)) => seq.get(*i)?,
            _ => return None,
        };
    }
    Some(node)
}

/// A key that holds a secret, or a value that is one, found in an environment tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretFinding {
    pub path: KeyPath,
    pub marker: Option<marked_yaml::Marker>,
    pub reason: String,
}

/// Words that, as the last part of a key name, mean the value is a credential.
const SECRET_WORDS: [&str; 10] = [
    "secret",
    "password",
    "passwd",
    "pwd",
    "key",
    "apikey",
    "token",
    "sas",
    "connectionstring",
    "credential",
];

fn is_secret_key(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    let compact: String = lower
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    let last_word = lower.rsplit(['_', '-', '.']).next().unwrap_or(&lower);
    SECRET_WORDS.contains(&last_word)
        || [
            "clientsecret",
            "connectionstring",
            "accountkey",
            "apikey",
            "accesstoken",
        ]
        .iter()
        .any(|w| compact.ends_with(w))
}

/// A value that is unmistakably a credential whatever its key: a JWT.
fn looks_like_jwt(value: &str) -> bool {
    value.starts_with("eyJ") && value.split('.').count() == 3 && value.len() > 40
}

/// Finds secret-looking keys with non-empty values, and values that are tokens, anywhere in the tree.
pub fn find_secrets(root: &Node) -> Vec<SecretFinding> {
    let mut found = Vec::new();
    walk_secrets(root, &KeyPath::default(), &mut found);
    found
}

fn walk_secrets(node: &Node, path: &KeyPath, found: &mut Vec<SecretFinding>) {
    match node {
        Node::Mapping(map) => {
            for (key, value) in map.iter() {
                let here = path.key(key.as_str());
                if is_secret_key(key.as_str()) && !is_empty(value) {
                    found.push(SecretFinding {
                        path: here.clone(),
                        marker: key.span().start().copied(),
                        reason: format!(
                            "`{}` looks like a secret; secrets do not belong in environment files",
                            key.as_str()
                        ),
                    });
                    continue;
                }
                walk_secrets(value, &here, found);
            }
        }
        Node::Sequence(seq) => {
            for (i, item) in seq.iter().enumerate() {
                walk_secrets(item, &path.index(i), found);
            }
        }
        Node::Scalar(s) if looks_like_jwt(s.as_str()) => found.push(SecretFinding {
            path: path.clone(),
            marker: s.span().start().copied(),
            reason: "this value is a JSON Web Token; tokens do not belong in environment files"
                .to_owned(),
        }),
        Node::Scalar(_) => {}
    }
}

fn is_empty(node: &Node) -> bool {
    match node {
        Node::Scalar(s) => {
            s.as_str().is_empty() || (s.may_coerce() && ["~", "null"].contains(&s.as_str()))
        }
        Node::Mapping(m) => m.is_empty(),
        Node::Sequence(s) => s.is_empty(),
    }
}

/// Takes a scalar entry out of a mapping (used for `extends:` and `abstract:`, which are about the
/// file itself and are not inherited).
pub fn take_scalar(
    map: &mut MarkedMappingNode,
    key: &str,
) -> Option<Result<MarkedScalarNode, Option<marked_yaml::Marker>>> {
    let found = map
        .get_key_value(key)
        .map(|(k, v)| (k.clone(), v.clone()))?;
    map.remove(&found.0);
    Some(match found.1 {
        Node::Scalar(s) => Ok(s),
        other => Err(other.span().start().copied()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(source: usize, yaml: &str) -> Node {
        marked_yaml::parse_yaml(source, yaml).unwrap()
    }

    #[test]
    fn maps_merge_lists_and_scalars_replace() {
        let parent = parse(0, "a: {x: 1, y: 2}\nl: [1, 2]\ns: p\n");
        let child = parse(1, "a: {y: 3}\nl: [9]\n");
        let merged = merge(parent, child);
        let map = merged.as_mapping().unwrap();
        let a = map.get_mapping("a").unwrap();
        assert_eq!(a.get_scalar("x").unwrap().as_str(), "1");
        assert_eq!(a.get_scalar("y").unwrap().as_str(), "3");
        assert_eq!(map.get_sequence("l").unwrap().len(), 1);
        assert_eq!(map.get_scalar("s").unwrap().as_str(), "p");
        // The overriding value remembers the child's file.
        assert_eq!(
            a.get_scalar("y").unwrap().span().start().unwrap().source(),
            1
        );
        assert_eq!(
            a.get_scalar("x").unwrap().span().start().unwrap().source(),
            0
        );
    }

    #[test]
    fn key_paths_round_trip() {
        let p = KeyPath::parse("foundry.deployments[0].sku.capacity");
        assert_eq!(p.to_string(), "foundry.deployments[0].sku.capacity");
        assert_eq!(p.0.len(), 5);
    }

    #[test]
    fn locate_points_at_the_key() {
        let root = parse(
            0,
            "foundry:\n  deployments:\n    - name: x\n      sku:\n        capacity: 0\n",
        );
        let m = locate(
            &root,
            &KeyPath::parse("foundry.deployments[0].sku.capacity"),
        )
        .unwrap();
        assert_eq!((m.line(), m.column()), (5, 9));
    }

    #[test]
    fn secrets_are_found_by_key_and_by_value() {
        let root = parse(
            0,
            "a:\n  client_secret: abc\n  counter: x\n  api_key: ''\nb: eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJl\n",
        );
        let found = find_secrets(&root);
        let paths: Vec<String> = found.iter().map(|f| f.path.to_string()).collect();
        assert_eq!(paths, vec!["a.client_secret", "b"]);
    }

    #[test]
    fn secret_words_are_whole_words() {
        assert!(is_secret_key("password"));
        assert!(is_secret_key("storage-account-key"));
        assert!(is_secret_key("ClientSecret"));
        assert!(!is_secret_key("tokens_per_minute"));
        assert!(!is_secret_key("keyvault_name"));
        assert!(!is_secret_key("monkey"));
    }
}
