//! A cheap, non-recursive look at the structure of a YAML text before the YAML parser sees it.
//!
//! The parser underneath (yaml-rust2, through marked-yaml) descends one stack frame per nesting
//! level, and so does everything that walks the tree afterwards: a 100 KB file nested 50,000 deep
//! aborts the process with a stack overflow, and one nested 20,000 deep takes gigabytes. So the
//! depth is measured here first, line by line with an explicit stack, and a deep text never reaches
//! anything recursive. The measure follows the parser's own rules closely enough to be exact on
//! ordinary files; where it cannot tell (a line that might be a key or a scalar), it counts the
//! deeper reading, so it may overestimate a strange file but never underestimates a real one.
//!
//! The same walk finds what the parser would silently drop (a second document after `---`) and
//! where a flow collection (`[`, `{`) was opened and never closed, which the parser reports only
//! lines later, wherever it finally gives up.

/// A 1-based line and column (in characters).
pub type Position = (usize, usize);

/// What the walk found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShapeError {
    /// The nesting first goes past the limit at this position.
    TooDeep(Position),
    /// A second document starts at this line.
    SecondDocument(usize),
}

/// The walk's results for a text within the limits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shape {
    /// The deepest nesting seen (the top-level mapping is 1).
    pub depth: usize,
    /// Flow collections still open at the end of the text, outermost first: where, and `[` or `{`.
    pub unclosed: Vec<(Position, char)>,
}

/// Walks `text` (NUL-free, without a byte-order mark), refusing nesting deeper than `max_depth`
/// and a second document.
pub fn scan(text: &str, max_depth: usize) -> Result<Shape, ShapeError> {
    let mut walk = Walk {
        max_depth,
        ..Walk::default()
    };
    for (i, line) in text.split('\n').enumerate() {
        let line: Vec<char> = line.strip_suffix('\r').unwrap_or(line).chars().collect();
        walk.line(i + 1, &line)?;
    }
    Ok(Shape {
        depth: walk.depth,
        unclosed: walk
            .flow
            .iter()
            .map(|f| ((f.line, f.column + 1), f.bracket))
            .collect(),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Mapping,
    Sequence,
    /// A sequence at the same column as its parent mapping's keys (`key:\n- item`).
    IndentlessSequence,
}

#[derive(Debug, Clone, Copy)]
struct Flow {
    line: usize,
    /// 0-based.
    column: usize,
    bracket: char,
}

/// A quoted scalar that continues on the next line.
#[derive(Debug, Clone, Copy)]
struct OpenQuote {
    quote: char,
}

/// A literal or folded block scalar (`|`, `>`): its lines are text, whatever they look like.
#[derive(Debug, Clone, Copy)]
struct BlockScalar {
    /// The indentation of the collection holding it; content is indented further.
    parent: isize,
    /// The content's indentation, known from its first non-blank line.
    content: Option<usize>,
}

#[derive(Debug, Default)]
struct Walk {
    max_depth: usize,
    depth: usize,
    block: Vec<(usize, Block)>,
    flow: Vec<Flow>,
    /// In flow context: the next character may start a node (so a quote opens a quoted scalar).
    flow_token_start: bool,
    quote: Option<OpenQuote>,
    block_scalar: Option<BlockScalar>,
    /// A plain scalar that may continue on more-indented lines; the value is its parent's indent.
    plain: Option<isize>,
    documents: usize,
    document_open: bool,
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Whether an indicator at `i` (`-`, `?`, `:`) is followed by a blank or the end of the line.
fn indicator(line: &[char], i: usize, c: char) -> bool {
    line.get(i) == Some(&c) && line.get(i + 1).is_none_or(|&n| is_blank(n))
}

fn skip_blanks(line: &[char], mut i: usize) -> usize {
    while line.get(i).is_some_and(|&c| is_blank(c)) {
        i += 1;
    }
    i
}

/// The end (exclusive) of a quoted scalar starting with the quote at `start`, if it closes on this
/// line.
fn close_quote(line: &[char], start: usize, quote: char) -> Option<usize> {
    let mut i = start;
    while i < line.len() {
        let c = line[i];
        if quote == '"' && c == '\\' {
            i += 2;
            continue;
        }
        if c == quote {
            if quote == '\'' && line.get(i + 1) == Some(&'\'') {
                i += 2;
                continue;
            }
            return Some(i + 1);
        }
        i += 1;
    }
    None
}

/// The index of the `:` that makes a plain scalar starting at `start` a key, if any: the first `:`
/// followed by a blank or the end of the line, before a comment.
fn plain_key_colon(line: &[char], start: usize) -> Option<usize> {
    let mut i = start;
    while i < line.len() {
        match line[i] {
            '#' if i > start && is_blank(line[i - 1]) => return None,
            ':' if line.get(i + 1).is_none_or(|&n| is_blank(n)) => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

impl Walk {
    fn nesting(&self) -> usize {
        self.block.len() + self.flow.len()
    }

    fn check(&mut self, line: usize, column: usize) -> Result<(), ShapeError> {
        let depth = self.nesting();
        self.depth = self.depth.max(depth);
        if depth > self.max_depth {
            return Err(ShapeError::TooDeep((line, column + 1)));
        }
        Ok(())
    }

    fn top(&self) -> Option<(usize, Block)> {
        self.block.last().copied()
    }

    fn parent_indent(&self) -> isize {
        self.top().map_or(-1, |(column, _)| column as isize)
    }

    fn push_sequence(&mut self, line: usize, column: usize) -> Result<(), ShapeError> {
        match self.top() {
            Some((c, Block::Sequence | Block::IndentlessSequence)) if c == column => return Ok(()),
            Some((c, Block::Mapping)) if c == column => {
                self.block.push((column, Block::IndentlessSequence));
            }
            _ => self.block.push((column, Block::Sequence)),
        }
        self.check(line, column)
    }

    fn push_mapping(&mut self, line: usize, column: usize) -> Result<(), ShapeError> {
        if matches!(self.top(), Some((c, Block::Mapping)) if c == column) {
            return Ok(());
        }
        self.block.push((column, Block::Mapping));
        self.check(line, column)
    }

    fn start_document(&mut self, line: usize) -> Result<(), ShapeError> {
        self.documents += 1;
        self.document_open = true;
        if self.documents > 1 {
            return Err(ShapeError::SecondDocument(line));
        }
        Ok(())
    }

    fn line(&mut self, n: usize, line: &[char]) -> Result<(), ShapeError> {
        let marker = |c: char| {
            line.len() >= 3
                && line[..3].iter().all(|&x| x == c)
                && line.get(3).is_none_or(|&x| is_blank(x))
        };
        if marker('-') || marker('.') {
            // Document markers end whatever was open: the parser starts afresh.
            self.block.clear();
            self.flow.clear();
            self.quote = None;
            self.block_scalar = None;
            self.plain = None;
            if line[0] == '.' {
                self.document_open = false;
                return Ok(());
            }
            self.start_document(n)?;
            let rest = skip_blanks(line, 3);
            return self.block_node(n, line, rest, false);
        }
        if let Some(open) = self.quote {
            match close_quote(line, 0, open.quote) {
                None => return Ok(()),
                Some(end) => {
                    self.quote = None;
                    if !self.flow.is_empty() {
                        self.flow_token_start = false;
                        return self.flow_chars(n, line, end);
                    }
                    return Ok(());
                }
            }
        }
        let indent = line.iter().take_while(|&&c| c == ' ').count();
        let blank = line[indent..].iter().all(|&c| is_blank(c));
        if let Some(scalar) = self.block_scalar {
            if blank {
                return Ok(());
            }
            let inside = match scalar.content {
                None if indent as isize > scalar.parent => {
                    self.block_scalar = Some(BlockScalar {
                        content: Some(indent),
                        ..scalar
                    });
                    true
                }
                None => false,
                Some(content) => indent >= content,
            };
            if inside {
                return Ok(());
            }
            self.block_scalar = None;
        }
        if !self.flow.is_empty() {
            return self.flow_chars(n, line, 0);
        }
        if blank {
            return Ok(());
        }
        let comment = line[indent] == '#';
        if let Some(parent) = self.plain {
            if comment {
                self.plain = None;
                return Ok(());
            }
            if indent as isize > parent {
                // A continuation line of a multi-line plain scalar: text, not structure.
                if (indent..line.len()).any(|i| line[i] == '#' && is_blank(line[i - 1])) {
                    self.plain = None;
                }
                return Ok(());
            }
            self.plain = None;
        }
        if comment {
            return Ok(());
        }
        if indent == 0 && line[0] == '%' && !self.document_open {
            return Ok(());
        }
        if !self.document_open {
            self.start_document(n)?;
        }
        while let Some((column, kind)) = self.top() {
            let ends = column > indent
                || (column == indent
                    && kind == Block::IndentlessSequence
                    && !indicator(line, indent, '-'));
            if !ends {
                break;
            }
            self.block.pop();
        }
        self.block_node(n, line, indent, false)
    }

    /// A node starting at `i` in block context; `value` when it follows `key:` on the same line,
    /// where only a scalar or a flow collection can start.
    fn block_node(
        &mut self,
        n: usize,
        line: &[char],
        mut i: usize,
        mut value: bool,
    ) -> Result<(), ShapeError> {
        loop {
            let Some(&c) = line.get(i) else {
                return Ok(());
            };
            match c {
                '-' | '?' | ':' if !value && indicator(line, i, c) => {
                    if c == '-' {
                        self.push_sequence(n, i)?;
                    } else {
                        // `? key` or `: value`, even without its `?`, opens a mapping here.
                        self.push_mapping(n, i)?;
                    }
                    i = skip_blanks(line, i + 1);
                }
                '&' | '!' => {
                    while line.get(i).is_some_and(|&c| !is_blank(c)) {
                        i += 1;
                    }
                    i = skip_blanks(line, i);
                }
                '#' => return Ok(()),
                '|' | '>' => {
                    self.block_scalar = Some(BlockScalar {
                        parent: self.parent_indent(),
                        content: None,
                    });
                    return Ok(());
                }
                '[' | '{' => {
                    self.flow_token_start = false;
                    return self.flow_chars(n, line, i);
                }
                '"' | '\'' => match close_quote(line, i + 1, c) {
                    None => {
                        self.quote = Some(OpenQuote { quote: c });
                        return Ok(());
                    }
                    Some(end) => {
                        let after = skip_blanks(line, end);
                        if value || !indicator(line, after, ':') {
                            return Ok(());
                        }
                        self.push_mapping(n, i)?;
                        i = skip_blanks(line, after + 1);
                        value = true;
                    }
                },
                _ => {
                    if value {
                        self.plain = Some(self.parent_indent());
                        return Ok(());
                    }
                    match plain_key_colon(line, i) {
                        Some(colon) => {
                            self.push_mapping(n, i)?;
                            i = skip_blanks(line, colon + 1);
                            value = true;
                        }
                        None => {
                            self.plain = Some(self.parent_indent());
                            return Ok(());
                        }
                    }
                }
            }
        }
    }

    /// Characters from `i` in flow context (or a flow collection starting at `i`).
    fn flow_chars(&mut self, n: usize, line: &[char], mut i: usize) -> Result<(), ShapeError> {
        while i < line.len() {
            let c = line[i];
            match c {
                '#' if i == 0 || is_blank(line[i - 1]) => return Ok(()),
                '[' | '{' => {
                    self.flow.push(Flow {
                        line: n,
                        column: i,
                        bracket: c,
                    });
                    self.check(n, i)?;
                    self.flow_token_start = true;
                }
                ']' | '}' => {
                    let opened = self.flow.pop();
                    self.flow_token_start = false;
                    if self.flow.is_empty() {
                        // Back in block context: the collection may have been a key.
                        let after = skip_blanks(line, i + 1);
                        if let Some(start) = opened
                            && start.line == n
                            && indicator(line, after, ':')
                        {
                            self.push_mapping(n, start.column)?;
                            return self.block_node(n, line, skip_blanks(line, after + 1), true);
                        }
                        return Ok(());
                    }
                }
                ',' => self.flow_token_start = true,
                ':' | '?'
                    if line
                        .get(i + 1)
                        .is_none_or(|&x| is_blank(x) || ",[]{}".contains(x)) =>
                {
                    self.flow_token_start = true;
                }
                '"' | '\'' if self.flow_token_start => match close_quote(line, i + 1, c) {
                    None => {
                        self.quote = Some(OpenQuote { quote: c });
                        return Ok(());
                    }
                    Some(end) => {
                        self.flow_token_start = false;
                        i = end;
                        continue;
                    }
                },
                c if is_blank(c) => {}
                _ => self.flow_token_start = false,
            }
            i += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth(text: &str) -> usize {
        scan(text, usize::MAX).unwrap().depth
    }

    #[test]
    fn ordinary_nesting_is_measured_exactly() {
        assert_eq!(depth("a: 1\n"), 1);
        assert_eq!(depth("a:\n  b: 1\n"), 2);
        assert_eq!(depth("a:\n  - b: 1\n    c: [1, {d: 2}]\n"), 5);
        assert_eq!(depth("a:\n- x\n- y\nb: 2\n"), 2);
        assert_eq!(depth("- - - x\n"), 3);
        assert_eq!(depth("a: 'x: [y'\nb: \"[[\"\n"), 1);
        assert_eq!(depth("a: |\n  - [[[\n  b: {\nc: 1\n"), 1);
        assert_eq!(depth("a: x\n  - [[[ y\nb: 1\n"), 1);
    }

    #[test]
    fn depth_past_the_limit_names_where_it_happens() {
        let text = format!("a: {}{}\n", "[".repeat(70), "]".repeat(70));
        assert_eq!(scan(&text, 64), Err(ShapeError::TooDeep((1, 67))));
        let mut block = String::new();
        for i in 0..70 {
            block.push_str(&format!("{}k{i}:\n", " ".repeat(i)));
        }
        assert_eq!(scan(&block, 64), Err(ShapeError::TooDeep((65, 65))));
    }

    #[test]
    fn second_documents_are_found_and_a_leading_marker_is_not_one() {
        assert_eq!(
            scan("a: 1\n---\nb: 2\n", 64),
            Err(ShapeError::SecondDocument(2))
        );
        assert_eq!(
            scan("# c\n---\na: 1\n...\nb: 2\n", 64),
            Err(ShapeError::SecondDocument(5))
        );
        assert!(scan("%YAML 1.2\n---\na: 1\n...\n# end\n", 64).is_ok());
    }

    #[test]
    fn unclosed_flow_collections_are_listed() {
        let shape = scan("a: 1\nb: [x, {y: 1}\nc: 2\n", 64).unwrap();
        assert_eq!(shape.unclosed, [((2, 4), '[')]);
    }
}
