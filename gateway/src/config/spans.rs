//! Where each key of a YAML document sits, so that every config error can name a line.
//!
//! serde gives us key paths (`routes[2].pool`) but no positions for values it accepted; the
//! semantic checks in `validate` only know paths. This index maps a path to the position of
//! the key (or sequence item) in the source text, built from yaml-rust2's marked events.
//!
//! Why a second YAML parser: serde_yaml (libyaml) deserializes, but it gives a position only
//! for the one error that stops it, and none for values it accepted. The gateway reports
//! every error of a file in one run, most of them found after deserialization, so it needs
//! the position of every key; yaml-rust2 reads the same text once more for exactly that. The
//! same reading also yields what serde_yaml reports without a usable position: the syntax
//! error and duplicate keys.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A 1-based line and column in the source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Position {
    pub(crate) line: usize,
    pub(crate) column: usize,
}

/// Key path -> position of that key in the source.
#[derive(Debug, Default)]
pub(crate) struct SpanIndex {
    positions: HashMap<String, Position>,
    syntax_error: Option<SyntaxError>,
    duplicates: Vec<Duplicate>,
}

/// Where the text stopped being YAML, and why.
#[derive(Debug, Clone)]
pub(crate) struct SyntaxError {
    pub(crate) at: Position,
    pub(crate) message: String,
}

/// A key set twice in one mapping.
#[derive(Debug, Clone)]
pub(crate) struct Duplicate {
    pub(crate) path: String,
    pub(crate) at: Position,
    pub(crate) first: Position,
}

impl SpanIndex {
    /// Index `text`. A syntax error truncates the index (positions found before it stay
    /// useful) and is kept for [`Self::syntax_error`].
    pub(crate) fn build(text: &str) -> Self {
        let mut builder = Builder::default();
        let mut parser = Parser::new_from_str(text);
        let syntax_error = parser.load(&mut builder, false).err().map(|e| SyntaxError {
            at: position(*e.marker()),
            message: e.info().to_owned(),
        });
        Self {
            positions: builder.positions,
            syntax_error,
            duplicates: builder.duplicates,
        }
    }

    pub(crate) fn syntax_error(&self) -> Option<&SyntaxError> {
        self.syntax_error.as_ref()
    }

    /// Keys set twice in the same mapping, in document order.
    pub(crate) fn duplicates(&self) -> &[Duplicate] {
        &self.duplicates
    }

    /// The position of `path`, or of its closest indexed ancestor.
    pub(crate) fn locate(&self, path: &str) -> Option<Position> {
        let mut candidate = path;
        loop {
            if let Some(pos) = self.positions.get(candidate) {
                return Some(*pos);
            }
            let cut = candidate.rfind(['.', '['])?;
            candidate = &candidate[..cut];
        }
    }
}

enum Frame {
    Mapping {
        path: String,
        /// The key whose value comes next, or `None` when a key comes next.
        key: Option<String>,
        /// A sequence item that is a mapping is located at its first key: the parser's
        /// mapping-start marker points at the next token, which may be further right.
        locate_at_first_key: bool,
        /// The keys seen so far, to find duplicates.
        seen: HashMap<String, Position>,
    },
    Sequence {
        path: String,
        next_index: usize,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    positions: HashMap<String, Position>,
    duplicates: Vec<Duplicate>,
}

/// yaml-rust2 markers count lines from 1 and columns from 0.
fn position(mark: Marker) -> Position {
    Position {
        line: mark.line(),
        column: mark.col() + 1,
    }
}

impl Builder {
    fn record(&mut self, path: String, mark: Marker) {
        self.positions.entry(path).or_insert(position(mark));
    }

    /// The path of the node that starts now, recording sequence items as they appear
    /// (unless `record_item` is false).
    fn child_path(&mut self, mark: Marker) -> Option<String> {
        self.child_path_with(mark, true)
    }

    fn child_path_with(&mut self, mark: Marker, record_item: bool) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Mapping { path, key, .. }) => {
                let key = key.take()?;
                Some(join(path, &key))
            }
            Some(Frame::Sequence { path, next_index }) => {
                let child = format!("{path}[{next_index}]");
                *next_index += 1;
                if record_item {
                    self.record(child.clone(), mark);
                }
                Some(child)
            }
        }
    }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(value, ..) => {
                if let Some(Frame::Mapping {
                    path,
                    key: key @ None,
                    locate_at_first_key,
                    seen,
                }) = self.stack.last_mut()
                {
                    let full = join(path, &value);
                    let item = std::mem::take(locate_at_first_key).then(|| path.clone());
                    if let Some(first) = seen.get(&value) {
                        self.duplicates.push(Duplicate {
                            path: full.clone(),
                            at: position(mark),
                            first: *first,
                        });
                    } else {
                        seen.insert(value.clone(), position(mark));
                    }
                    *key = Some(value);
                    self.record(full, mark);
                    if let Some(item) = item {
                        self.record(item, mark);
                    }
                } else {
                    self.child_path(mark);
                }
            }
            Event::Alias(_) => {
                self.child_path(mark);
            }
            Event::MappingStart(..) => {
                let in_sequence = matches!(self.stack.last(), Some(Frame::Sequence { .. }));
                let path = self.child_path_with(mark, !in_sequence).unwrap_or_default();
                self.stack.push(Frame::Mapping {
                    path,
                    key: None,
                    locate_at_first_key: in_sequence,
                    seen: HashMap::new(),
                });
            }
            Event::SequenceStart(..) => {
                let path = self.child_path(mark).unwrap_or_default();
                self.stack.push(Frame::Sequence {
                    path,
                    next_index: 0,
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
listeners:
  http: 0.0.0.0:80
routes:
  - match:
      path_prefix: /a
    pool: one
  - match: {path: /b}
    pool: two
";

    #[test]
    fn keys_are_located_with_one_based_line_and_column() {
        let index = SpanIndex::build(DOC);
        assert_eq!(
            index.locate("listeners.http"),
            Some(Position { line: 2, column: 3 })
        );
        assert_eq!(
            index.locate("routes[0].match.path_prefix"),
            Some(Position { line: 5, column: 7 })
        );
        assert_eq!(
            index.locate("routes[1].pool"),
            Some(Position { line: 8, column: 5 })
        );
        assert_eq!(
            index.locate("routes[1].match.path"),
            Some(Position {
                line: 7,
                column: 13
            })
        );
    }

    #[test]
    fn unknown_paths_fall_back_to_the_closest_ancestor() {
        let index = SpanIndex::build(DOC);
        assert_eq!(
            index.locate("routes[1].pool.nested[3]"),
            Some(Position { line: 8, column: 5 })
        );
        assert_eq!(
            index.locate("routes[1]"),
            Some(Position { line: 7, column: 5 })
        );
        assert_eq!(index.locate("nothing"), None);
    }
}
