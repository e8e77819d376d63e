//! Where each key of a YAML document sits, so that every config error can name a line.
//!
//! serde gives us key paths (`routes[2].pool`) but no positions for values it accepted; the
//! semantic checks in `validate` only know paths. This index maps a path to the position of
//! the key (or sequence item) in the source text, built from yaml-rust2's marked events.

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
}

impl SpanIndex {
    /// Index `text`. A document that does not parse yields an empty index; the syntax error
    /// itself is reported by serde_yaml, which has the better message.
    pub(crate) fn build(text: &str) -> Self {
        let mut builder = Builder::default();
        let mut parser = Parser::new_from_str(text);
        // A scan error only truncates the index; positions found so far stay useful.
        let _ = parser.load(&mut builder, false);
        Self {
            positions: builder.positions,
        }
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
}

impl Builder {
    fn record(&mut self, path: String, mark: Marker) {
        // yaml-rust2 markers count lines from 1 and columns from 0.
        let pos = Position {
            line: mark.line(),
            column: mark.col() + 1,
        };
        self.positions.entry(path).or_insert(pos);
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
                }) = self.stack.last_mut()
                {
                    let full = join(path, &value);
                    let item = std::mem::take(locate_at_first_key).then(|| path.clone());
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
