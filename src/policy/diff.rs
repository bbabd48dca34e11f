//! What changes in meaning between two policies: the canonical forms compared element by element,
//! so a diff between a rendered policy and APIM's echo of it is empty, and a diff between two
//! versions names each attribute, text and element that differs, in document order.

use std::fmt;

use super::canonical::{Canonical, CanonicalNode, canonical};
use super::document::Document;

/// One difference. `path` names the element from the section down (`inbound/set-header`), with
/// the root `policies` left out unless the difference is on the root itself, a 1-based `[n]` when
/// the parent has several children of that name (counted in the new document), and `@name` when
/// the difference is in an attribute. An added or removed element is reported at its parent's
/// path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub path: String,
    pub change: Change,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Only in the new document: an element (its text if it holds only text, else its canonical
    /// XML), a text or an attribute value.
    Added(String),
    /// Only in the old document, shown as for `Added`.
    Removed(String),
    /// A text or attribute value in both documents that differs.
    Changed { old: String, new: String },
}

impl Difference {
    /// The attribute this difference is in, if it is in one.
    pub fn attribute(&self) -> Option<&str> {
        self.path.split_once('@').map(|(_, a)| a)
    }
}

/// `path: + value`, `path: - value`, `path: "old" → "new"`; attribute values are quoted in all
/// three (`path@attr: + "v"`). Line breaks and tabs in values are shown escaped so that every
/// difference is one line.
impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let quoted = self.attribute().is_some();
        let value = |v: &str| {
            let v = one_line(v);
            if quoted { format!("\"{v}\"") } else { v }
        };
        match &self.change {
            Change::Added(v) => write!(f, "{}: + {}", self.path, value(v)),
            Change::Removed(v) => write!(f, "{}: - {}", self.path, value(v)),
            Change::Changed { old, new } => write!(
                f,
                "{}: \"{}\" → \"{}\"",
                self.path,
                one_line(old),
                one_line(new)
            ),
        }
    }
}

fn one_line(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
        .replace('\t', "\\t")
}

/// The differences in meaning from `old` to `new`, in document order; empty when the two differ
/// only in how they are written (see [`Canonical`]).
pub fn diff(old: &Document, new: &Document) -> Vec<Difference> {
    diff_canonical(&canonical(old), &canonical(new))
}

/// [`diff`] for canonical forms already at hand.
pub fn diff_canonical(old: &Canonical, new: &Canonical) -> Vec<Difference> {
    let mut out = Vec::new();
    if old.name() == new.name() {
        Walk {
            root: new.name(),
            out: &mut out,
        }
        .element("", old, new);
    } else {
        out.push(Difference {
            path: old.name().to_owned(),
            change: Change::Removed(old.to_xml()),
        });
        out.push(Difference {
            path: new.name().to_owned(),
            change: Change::Added(new.to_xml()),
        });
    }
    out
}

struct Walk<'a> {
    root: &'a str,
    out: &'a mut Vec<Difference>,
}

impl Walk<'_> {
    /// The path as shown: the root's own name where the path below it is empty.
    fn shown(&self, path: &str) -> String {
        if path.is_empty() {
            self.root.to_owned()
        } else {
            path.to_owned()
        }
    }

    fn push(&mut self, path: String, change: Change) {
        self.out.push(Difference { path, change });
    }

    /// Two elements with the same name: their attributes, then their children.
    fn element(&mut self, path: &str, old: &Canonical, new: &Canonical) {
        self.attributes(path, old.attributes(), new.attributes());
        self.children(path, old, new);
    }

    /// Both lists are sorted by name, so one merge walk finds every difference in name order.
    fn attributes(&mut self, path: &str, old: &[(String, String)], new: &[(String, String)]) {
        let element = self.shown(path);
        let at = |name: &str| format!("{element}@{name}");
        let (mut i, mut j) = (0, 0);
        while i < old.len() || j < new.len() {
            match (old.get(i), new.get(j)) {
                (Some((on, ov)), Some((nn, nv))) if on == nn => {
                    if ov != nv {
                        self.push(
                            at(on),
                            Change::Changed {
                                old: ov.clone(),
                                new: nv.clone(),
                            },
                        );
                    }
                    i += 1;
                    j += 1;
                }
                (Some((on, ov)), Some((nn, _))) if on < nn => {
                    self.push(at(on), Change::Removed(ov.clone()));
                    i += 1;
                }
                (Some((on, ov)), None) => {
                    self.push(at(on), Change::Removed(ov.clone()));
                    i += 1;
                }
                (_, Some((nn, nv))) => {
                    self.push(at(nn), Change::Added(nv.clone()));
                    j += 1;
                }
                (None, None) => unreachable!("the loop runs while either list has more"),
            }
        }
    }

    /// Children are aligned in two passes. Identical subtrees are matched first (a longest common
    /// subsequence), so an insertion or removal among unchanged siblings is reported as just that.
    /// In each gap between matches, what is left is paired by name (and text with text), again in
    /// order, and paired elements are compared inside; the rest is added or removed. Keeping
    /// order in both passes means a reordering shows up as a removal and an addition, as it should:
    /// policy statements run in order.
    fn children(&mut self, path: &str, old: &Canonical, new: &Canonical) {
        let (o, n) = (old.children(), new.children());
        // Subtrees are compared by hash first, so most of the alignment's comparisons are of
        // two numbers rather than of two subtrees.
        let (ho, hn) = (hashes(o), hashes(n));
        let steps = align(o.len(), n.len(), |i, j| ho[i] == hn[j] && o[i] == n[j]);
        let segments = segments(n);
        let (mut gap_old, mut gap_new) = (Vec::new(), Vec::new());
        for step in steps.into_iter().chain([Step::Both(o.len(), n.len())]) {
            match step {
                Step::Old(i) => gap_old.push(i),
                Step::New(j) => gap_new.push(j),
                Step::Both(..) => {
                    self.gap(path, &segments, &gap_old, &gap_new, o, n);
                    gap_old.clear();
                    gap_new.clear();
                }
            }
        }
    }

    fn gap(
        &mut self,
        path: &str,
        segments: &[String],
        gap_old: &[usize],
        gap_new: &[usize],
        o: &[CanonicalNode],
        n: &[CanonicalNode],
    ) {
        fn kind(node: &CanonicalNode) -> Option<&str> {
            match node {
                CanonicalNode::Element(e) => Some(e.name()),
                CanonicalNode::Text(_) => None,
            }
        }
        let pairs = align(gap_old.len(), gap_new.len(), |i, j| {
            kind(&o[gap_old[i]]) == kind(&n[gap_new[j]])
        });
        let here = self.shown(path);
        for step in pairs {
            match step {
                Step::Old(i) => self.push(here.clone(), Change::Removed(shown(&o[gap_old[i]]))),
                Step::New(j) => self.push(here.clone(), Change::Added(shown(&n[gap_new[j]]))),
                Step::Both(i, j) => match (&o[gap_old[i]], &n[gap_new[j]]) {
                    (CanonicalNode::Element(a), CanonicalNode::Element(b)) => {
                        let below = child_path(path, &segments[gap_new[j]]);
                        self.element(&below, a, b);
                    }
                    (CanonicalNode::Text(a), CanonicalNode::Text(b)) => self.push(
                        here.clone(),
                        Change::Changed {
                            old: a.clone(),
                            new: b.clone(),
                        },
                    ),
                    _ => unreachable!("only nodes of the same kind are paired"),
                },
            }
        }
    }
}

/// How an added or removed node reads: text as itself, an element that holds only text as that
/// text (trimmed, as APIM reads it), any other element as its compact canonical XML.
fn shown(node: &CanonicalNode) -> String {
    match node {
        CanonicalNode::Text(t) => t.clone(),
        CanonicalNode::Element(e) => match e.only_text() {
            Some(t) => t.trim().to_owned(),
            None => e.to_xml(),
        },
    }
}

fn hashes(nodes: &[CanonicalNode]) -> Vec<u64> {
    use std::hash::{Hash, Hasher};
    nodes
        .iter()
        .map(|node| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            node.hash(&mut h);
            h.finish()
        })
        .collect()
}

/// The path segment of each child that is an element: its name, with a 1-based `[n]` among its
/// same-name siblings when there are several. Counted once per parent, in linear time; counting
/// per child was quadratic in the number of siblings.
fn segments(children: &[CanonicalNode]) -> Vec<String> {
    fn name(node: &CanonicalNode) -> Option<&str> {
        match node {
            CanonicalNode::Element(e) => Some(e.name()),
            CanonicalNode::Text(_) => None,
        }
    }
    let mut totals: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for n in children.iter().filter_map(name) {
        *totals.entry(n).or_default() += 1;
    }
    let mut seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    children
        .iter()
        .map(|child| match name(child) {
            None => String::new(),
            Some(n) if totals[n] > 1 => {
                let nth = seen.entry(n).or_default();
                *nth += 1;
                format!("{n}[{nth}]")
            }
            Some(n) => n.to_owned(),
        })
        .collect()
}

fn child_path(path: &str, segment: &str) -> String {
    if path.is_empty() {
        segment.to_owned()
    } else {
        format!("{path}/{segment}")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Both(usize, usize),
    Old(usize),
    New(usize),
}

/// Cells of the alignment table beyond which [`align`] stops looking for the best alignment:
/// 16 MiB of table, reached only by two policies whose long runs of siblings differ throughout.
const ALIGN_CELLS: usize = 1 << 20;

/// An order-preserving alignment of `0..m` with `0..n` matching as many pairs as `same` allows
/// (a longest common subsequence). Among the longest, it takes the one whose matches move least
/// (smallest total `|i - j|`): with repeated equal siblings, plain LCS may match an item to its
/// twin one place over and report an edit as a removal here plus an addition there.
///
/// A common prefix and suffix are matched first, in linear time (all of a policy compared with
/// itself, or with one edit). The table for what is left costs `m × n`; past [`ALIGN_CELLS`] the
/// items are paired by position instead, which still reports every difference, if not the
/// fewest.
fn align(m: usize, n: usize, same: impl Fn(usize, usize) -> bool) -> Vec<Step> {
    let mut prefix = 0;
    while prefix < m.min(n) && same(prefix, prefix) {
        prefix += 1;
    }
    let mut suffix = 0;
    while suffix < (m - prefix).min(n - prefix) && same(m - 1 - suffix, n - 1 - suffix) {
        suffix += 1;
    }
    let (mm, nn) = (m - prefix - suffix, n - prefix - suffix);
    let mut steps = Vec::with_capacity(m.max(n));
    steps.extend((0..prefix).map(|k| Step::Both(k, k)));
    let middle = |i: usize, j: usize| same(prefix + i, prefix + j);
    let shift = |step: Step| match step {
        Step::Both(i, j) => Step::Both(prefix + i, prefix + j),
        Step::Old(i) => Step::Old(prefix + i),
        Step::New(j) => Step::New(prefix + j),
    };
    if (mm + 1).saturating_mul(nn + 1) <= ALIGN_CELLS {
        steps.extend(best_alignment(mm, nn, middle).into_iter().map(shift));
    } else {
        for k in 0..mm.max(nn) {
            if k < mm && k < nn && middle(k, k) {
                steps.push(shift(Step::Both(k, k)));
                continue;
            }
            if k < mm {
                steps.push(shift(Step::Old(k)));
            }
            if k < nn {
                steps.push(shift(Step::New(k)));
            }
        }
    }
    steps.extend((0..suffix).map(|k| Step::Both(m - suffix + k, n - suffix + k)));
    steps
}

/// The dynamic-programming alignment behind [`align`], in one flat table.
fn best_alignment(m: usize, n: usize, same: impl Fn(usize, usize) -> bool) -> Vec<Step> {
    // best[i][j]: (matches, -displacement) for the suffixes old[i..], new[j..]; larger is better.
    let width = n + 1;
    let mut best = vec![(0usize, 0isize); (m + 1) * width];
    let at = |i: usize, j: usize| i * width + j;
    for i in (0..m).rev() {
        for j in (0..n).rev() {
            let mut b = best[at(i + 1, j)].max(best[at(i, j + 1)]);
            if same(i, j) {
                let (k, d) = best[at(i + 1, j + 1)];
                b = b.max((k + 1, d - displacement(i, j)));
            }
            best[at(i, j)] = b;
        }
    }
    let mut steps = Vec::with_capacity(m.max(n));
    let (mut i, mut j) = (0, 0);
    while i < m || j < n {
        if i < m && j < n && same(i, j) {
            let (k, d) = best[at(i + 1, j + 1)];
            if (k + 1, d - displacement(i, j)) == best[at(i, j)] {
                steps.push(Step::Both(i, j));
                i += 1;
                j += 1;
                continue;
            }
        }
        if i < m && (j == n || best[at(i + 1, j)] == best[at(i, j)]) {
            steps.push(Step::Old(i));
            i += 1;
        } else {
            steps.push(Step::New(j));
            j += 1;
        }
    }
    steps
}

fn displacement(i: usize, j: usize) -> isize {
    isize::try_from(i.abs_diff(j)).unwrap_or(isize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Document {
        Document::parse(text).unwrap_or_else(|e| panic!("{e} in:\n{text}"))
    }

    fn shown(old: &str, new: &str) -> Vec<String> {
        diff(&parse(old), &parse(new))
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    /// The request and the 201 response body's policy of one of the APIM REST API's own examples:
    /// what was sent and what the service echoed back.
    fn apim_example(file: &str) -> (String, String) {
        let path = format!(
            "{}/tests/fixtures/azure-rest-api-specs/specification/apimanagement/resource-manager/Microsoft.ApiManagement/stable/2024-05-01/examples/{file}",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!("the APIM example fixture {path} must be present (tests/fixtures): {e}")
        });
        let json: serde_json::Value = serde_json::from_str(&text).expect("the example is JSON");
        let policy = |pointer: &str| {
            json.pointer(pointer)
                .and_then(serde_json::Value::as_str)
                .unwrap_or_else(|| panic!("{path} has no string at {pointer}"))
                .to_owned()
        };
        (
            policy("/parameters/parameters/properties/value"),
            policy("/responses/201/body/properties/value"),
        )
    }

    #[test]
    fn apim_echo_of_a_rawxml_policy_is_equal() {
        let (sent, echoed) = apim_example("ApiManagementCreateApiPolicyNonXmlEncoded.json");
        assert!(sent.contains("h => h.Ke==\"Via\"") && echoed.contains("h =&gt; h.Ke"));
        assert_eq!(shown(&sent, &echoed), Vec::<String>::new());

        let other_header = sent.replace("==\"Via\"", "==\"Host\"");
        assert_eq!(
            shown(&other_header, &echoed),
            [
                "inbound/set-header/value: \"\"@(context.Request.Headers.FirstOrDefault(h => h.Ke==\"Host\"))\" \" → \"\"@(context.Request.Headers.FirstOrDefault(h => h.Ke==\"Via\"))\" \""
            ]
        );
        let other_name = sent.replace("name=\"newvalue\"", "name=\"x-other\"");
        assert_eq!(
            shown(&echoed, &other_name),
            ["inbound/set-header@name: \"newvalue\" → \"x-other\""]
        );
        // The trailing space inside <value> is meaningful to APIM.
        let trimmed = sent.replace("\" </value>", "\"</value>");
        assert_eq!(diff(&parse(&trimmed), &parse(&echoed)).len(), 1);
    }

    #[test]
    fn apim_echo_of_an_xml_policy_is_equal() {
        let (sent, echoed) = apim_example("ApiManagementCreateApiPolicy.json");
        assert!(sent.contains("<inbound />") && echoed.contains("\r\n"));
        assert_eq!(shown(&sent, &echoed), Vec::<String>::new());

        let changed = sent.replace(
            "<inbound />",
            "<inbound><set-header name=\"x-via\" exists-action=\"override\"><value>apim</value></set-header></inbound>",
        );
        assert_eq!(
            shown(&echoed, &changed),
            [
                "inbound: + <set-header exists-action=\"override\" name=\"x-via\"><value>apim</value></set-header>"
            ]
        );
    }

    const POLICY: &str = r#"<policies>
  <inbound>
    <base />
    <validate-azure-ad-token tenant-id="7e5a0000-0000-4000-8000-000000000a01" header-name="Authorization" output-token-variable-name="jwt">
      <client-application-ids>
        <application-id>0c1c0000-0000-4000-8000-0000000000c1</application-id>
        <application-id>0c1c0000-0000-4000-8000-0000000000c2</application-id>
      </client-application-ids>
      <audiences>
        <audience>0a1a0000-0000-4000-8000-0000000000a1</audience>
      </audiences>
    </validate-azure-ad-token>
    <llm-token-limit counter-key="@(((Jwt)context.Variables[&quot;jwt&quot;]).Claims.GetValueOrDefault(&quot;oid&quot;, &quot;anonymous&quot;))" tokens-per-minute="50000" />
  </inbound>
  <backend>
    <base />
  </backend>
</policies>"#;

    #[test]
    fn a_removed_client_id_is_one_removal_at_its_list() {
        let removed = POLICY.replace(
            "        <application-id>0c1c0000-0000-4000-8000-0000000000c1</application-id>\n",
            "",
        );
        let differences = diff(&parse(POLICY), &parse(&removed));
        assert_eq!(
            differences,
            [Difference {
                path: "inbound/validate-azure-ad-token/client-application-ids".to_owned(),
                change: Change::Removed("0c1c0000-0000-4000-8000-0000000000c1".to_owned()),
            }]
        );
        assert_eq!(
            differences[0].to_string(),
            "inbound/validate-azure-ad-token/client-application-ids: - 0c1c0000-0000-4000-8000-0000000000c1"
        );
        assert_eq!(
            shown(&removed, POLICY),
            [
                "inbound/validate-azure-ad-token/client-application-ids: + 0c1c0000-0000-4000-8000-0000000000c1"
            ]
        );
    }

    #[test]
    fn rawxml_and_encoded_expressions_are_equal() {
        let raw = POLICY.replace("&quot;", "\"");
        assert_ne!(raw, POLICY);
        assert_eq!(shown(&raw, POLICY), Vec::<String>::new());
        let other = raw.replace("\"oid\"", "\"sub\"");
        assert_eq!(
            shown(POLICY, &other),
            [
                "inbound/llm-token-limit@counter-key: \"@(((Jwt)context.Variables[\"jwt\"]).Claims.GetValueOrDefault(\"oid\", \"anonymous\"))\" → \"@(((Jwt)context.Variables[\"jwt\"]).Claims.GetValueOrDefault(\"sub\", \"anonymous\"))\""
            ]
        );
    }

    #[test]
    fn same_name_siblings_are_indexed_and_edits_are_paired() {
        let edited = POLICY
            .replace("0000000000c2<", "0000000000c3<")
            .replace(
                " tokens-per-minute=\"50000\"",
                " tokens-per-minute=\"100\" estimate-prompt-tokens=\"false\"",
            )
            .replace(" header-name=\"Authorization\"", "");
        assert_eq!(
            shown(POLICY, &edited),
            [
                "inbound/validate-azure-ad-token@header-name: - \"Authorization\"",
                "inbound/validate-azure-ad-token/client-application-ids/application-id[2]: \"0c1c0000-0000-4000-8000-0000000000c2\" → \"0c1c0000-0000-4000-8000-0000000000c3\"",
                "inbound/llm-token-limit@estimate-prompt-tokens: + \"false\"",
                "inbound/llm-token-limit@tokens-per-minute: \"50000\" → \"100\"",
            ]
        );
    }

    #[test]
    fn a_reordering_is_a_removal_and_an_addition() {
        assert_eq!(
            shown(
                "<policies><inbound><a x=\"1\"/><b>t</b></inbound></policies>",
                "<policies><inbound><b>t</b><a x=\"1\"/></inbound></policies>",
            ),
            ["inbound: - <a x=\"1\" />", "inbound: + <a x=\"1\" />"]
        );
    }

    #[test]
    fn sections_and_the_root_are_named() {
        assert_eq!(
            shown(
                "<policies><inbound /></policies>",
                "<policies v=\"1\"><inbound /><outbound><base /></outbound></policies>",
            ),
            [
                "policies@v: + \"1\"",
                "policies: + <outbound><base /></outbound>"
            ]
        );
        assert_eq!(
            shown("<policies />", "<fragment />"),
            ["policies: - <policies />", "fragment: + <fragment />"]
        );
    }

    #[test]
    fn texts_are_paired_and_shown_on_one_line() {
        assert_eq!(
            shown(
                "<policies><outbound><set-body>a\nb</set-body></outbound></policies>",
                "<policies><outbound><set-body>a\r\nc</set-body></outbound></policies>",
            ),
            ["outbound/set-body: \"a\\nb\" → \"a\\nc\""]
        );
        assert_eq!(shown("<a><v>x</v></a>", "<a><v /></a>"), ["v: - x"]);
    }

    #[test]
    fn duplicate_siblings_align_with_the_least_movement() {
        let old = "<a><v>x</v><v>x</v><v>x</v></a>";
        let new = "<a><v>x</v><v>y</v><v>x</v></a>";
        assert_eq!(shown(old, new), ["v[2]: \"x\" → \"y\""]);
    }

    #[test]
    fn sixteen_thousand_siblings_diff_in_linear_time() {
        let siblings = |value: &str| {
            format!(
                "<policies><inbound>{}</inbound></policies>",
                format!("<a v=\"{value}\"/>").repeat(16_000)
            )
        };
        let (one, two) = (parse(&siblings("1")), parse(&siblings("2")));
        let started = std::time::Instant::now();
        assert_eq!(diff(&one, &one), []);
        // Nothing in common: past the table's limit, siblings are paired by position.
        let differences = diff(&one, &two);
        assert_eq!(differences.len(), 16_000);
        assert_eq!(
            differences[15_999].to_string(),
            "inbound/a[16000]@v: \"1\" → \"2\""
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn an_insertion_among_thousands_of_siblings_is_one_addition() {
        let siblings: Vec<String> = (0..5_000).map(|i| format!("<a v=\"{i}\"/>")).collect();
        let old = format!(
            "<policies><inbound>{}</inbound></policies>",
            siblings.concat()
        );
        let mut edited = siblings.clone();
        edited.insert(2_500, "<b/>".to_owned());
        let new = format!(
            "<policies><inbound>{}</inbound></policies>",
            edited.concat()
        );
        assert_eq!(shown(&old, &new), ["inbound: + <b />"]);
    }

    #[test]
    fn a_chain_at_the_depth_limit_diffs_on_a_small_stack() {
        let chain = |leaf: &str| {
            format!(
                "{}{leaf}{}",
                "<a>".repeat(crate::policy::MAX_DEPTH),
                "</a>".repeat(crate::policy::MAX_DEPTH)
            )
        };
        let (old, new) = (chain("x"), chain("y"));
        // Half the stack a test thread gets by default: the recursion has room to spare.
        let differences = std::thread::Builder::new()
            .stack_size(1 << 20)
            .spawn(move || {
                let (old, new) = (parse(&old), parse(&new));
                let c = canonical(&old);
                assert_eq!(canonical(&parse(&c.to_xml())), c);
                diff(&old, &new)
            })
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(differences.len(), 1);
        assert_eq!(
            differences[0].path,
            vec!["a"; crate::policy::MAX_DEPTH - 1].join("/")
        );
    }
}
